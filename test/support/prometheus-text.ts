/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), for tests:
 * it throws, naming the line, on anything a scraper could reject or misread. prom-client
 * only writes the format, so tests check its output with this independent reader.
 *
 * Checked: every line is blank, a comment, or `name{labels} value [timestamp]`; names,
 * label names and escapes are valid; values are floats as Go's ParseFloat reads them; a
 * family's # TYPE comes before its samples and at most once, as does # HELP; a family's
 * samples are contiguous; no series appears twice; histogram samples are _bucket (with
 * le), _sum and _count, buckets are cumulative and end with le="+Inf" equal to _count.
 */

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

export interface Sample {
  /** The sample's own name (e.g. x_bucket for a histogram family x). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly MetricType[] = ["counter", "gauge", "histogram", "summary", "untyped"];
const SUFFIXES: Record<MetricType, readonly string[]> = {
  counter: [""],
  gauge: [""],
  untyped: [""],
  histogram: ["_bucket", "_sum", "_count"],
  summary: ["", "_sum", "_count"],
};

/** Parses the exposition; returns its families by name. Throws on the first violation. */
export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seriesSeen = new Set<string>();
  const closed = new Set<string>();
  const typed = new Set<string>();
  let current: Family | undefined;
  if (text !== "" && !text.endsWith("\n")) throw new Error("the exposition must end with a newline");
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();

  const family = (name: string, lineNo: number): Family => {
    let f = families.get(name);
    if (!f) {
      f = { name, type: "untyped", samples: [] };
      families.set(name, f);
    }
    if (current !== f) {
      if (closed.has(name)) throw new Error(`line ${lineNo}: family ${name} is not contiguous`);
      if (current) closed.add(current.name);
      current = f;
    }
    return f;
  };

  lines.forEach((line, i) => {
    const lineNo = i + 1;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!METRIC_NAME.test(name)) throw new Error(`line ${lineNo}: invalid metric name "${name}"`);
      const f = family(name, lineNo);
      if (kind === "HELP") {
        if (f.help !== undefined) throw new Error(`line ${lineNo}: second HELP for ${name}`);
        f.help = unescapeHelp(rest, lineNo);
      } else {
        if (!TYPES.includes(rest as MetricType)) throw new Error(`line ${lineNo}: unknown type "${rest}"`);
        if (f.samples.length > 0 || typed.has(name)) throw new Error(`line ${lineNo}: TYPE for ${name} must come once, before its samples`);
        f.type = rest as MetricType;
        typed.add(name);
      }
      return;
    }
    const sample = parseSample(line, lineNo);
    const owner = ownerOf(sample.name, families, current);
    const f = family(owner, lineNo);
    if (!SUFFIXES[f.type].includes(sample.name.slice(owner.length))) {
      throw new Error(`line ${lineNo}: sample ${sample.name} does not belong to ${f.type} ${owner}`);
    }
    const key = `${sample.name}{${Object.entries(sample.labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",")}}`;
    if (seriesSeen.has(key)) throw new Error(`line ${lineNo}: duplicate series ${key}`);
    seriesSeen.add(key);
    f.samples.push(sample);
  });

  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

/** The family a sample belongs to: its own name, or its name without a histogram/summary suffix. */
function ownerOf(sampleName: string, families: Map<string, Family>, current: Family | undefined): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!sampleName.endsWith(suffix)) continue;
    const base = sampleName.slice(0, -suffix.length);
    const f = families.get(base);
    if (f && (f.type === "histogram" || f.type === "summary") && (current === f || !families.has(sampleName))) return base;
  }
  return sampleName;
}

function parseSample(line: string, lineNo: number): Sample {
  const fail = (why: string): never => {
    throw new Error(`line ${lineNo}: ${why}: ${line}`);
  };
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!nameMatch) return fail("expected a metric name");
  const name = nameMatch[0];
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === "{") {
    pos++;
    while (line[pos] !== "}") {
      const ln = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(pos));
      if (!ln || !LABEL_NAME.test(ln[0])) return fail("expected a label name");
      pos += ln[0].length;
      if (line[pos] !== "=" || line[pos + 1] !== '"') return fail(`expected ="…" after label ${ln[0]}`);
      pos += 2;
      let value = "";
      for (;;) {
        const c = line[pos];
        if (c === undefined) return fail("unterminated label value");
        if (c === '"') break;
        if (c === "\\") {
          const e = line[pos + 1];
          if (e === "\\") value += "\\";
          else if (e === '"') value += '"';
          else if (e === "n") value += "\n";
          else return fail(`invalid escape \\${e ?? ""}`);
          pos += 2;
        } else {
          value += c;
          pos++;
        }
      }
      pos++; // closing quote
      if (ln[0] in labels) return fail(`label ${ln[0]} twice`);
      labels[ln[0]] = value;
      if (line[pos] === ",") pos++;
      else if (line[pos] !== "}") return fail("expected , or } after a label");
    }
    pos++;
  }
  const rest = line.slice(pos);
  const m = /^ (\S+)(?: (-?\d+))?$/.exec(rest);
  if (!m) return fail("expected ' value [timestamp]'");
  return { name, labels, value: parseValue(m[1]!, fail) };
}

/**
 * The format defines values as Go's strconv.ParseFloat reads them: decimal floats, and
 * NaN and Inf/Infinity with an optional sign, in any case (prom-client writes "Nan").
 */
function parseValue(text: string, fail: (why: string) => never): number {
  const special = /^([-+]?)(nan|inf|infinity)$/i.exec(text);
  if (special) {
    if (special[2]!.toLowerCase() === "nan") return NaN;
    return special[1] === "-" ? -Infinity : Infinity;
  }
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return fail(`invalid value "${text}"`);
  return Number(text);
}

function unescapeHelp(text: string, lineNo: number): string {
  return text.replace(/\\(.?)/g, (_, e: string) => {
    if (e === "\\") return "\\";
    if (e === "n") return "\n";
    throw new Error(`line ${lineNo}: invalid escape in HELP: \\${e}`);
  });
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: { le: number; value: number }[]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)));
    let entry = series.get(key);
    if (!entry) series.set(key, (entry = { buckets: [] }));
    if (s.name.endsWith("_bucket")) {
      if (le === undefined) throw new Error(`${f.name}: bucket without le`);
      const bound = le === "+Inf" ? Infinity : Number(le);
      if (Number.isNaN(bound)) throw new Error(`${f.name}: invalid le "${le}"`);
      entry.buckets.push({ le: bound, value: s.value });
    } else if (s.name.endsWith("_count")) entry.count = s.value;
    else entry.sum = s.value;
  }
  for (const [key, e] of series) {
    if (e.count === undefined || e.sum === undefined) throw new Error(`${f.name}${key}: _count or _sum missing`);
    const sorted = [...e.buckets].sort((a, b) => a.le - b.le);
    if (sorted.at(-1)?.le !== Infinity) throw new Error(`${f.name}${key}: no le="+Inf" bucket`);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.value < sorted[i - 1]!.value) throw new Error(`${f.name}${key}: buckets are not cumulative`);
    }
    if (sorted.at(-1)!.value !== e.count) throw new Error(`${f.name}${key}: +Inf bucket ${sorted.at(-1)!.value} != _count ${e.count}`);
  }
}

/** The value of the one sample of family `name` whose labels include `labels` (0 when there is none). */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const sampleName = name;
  const familyName = families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, "");
  const f = families.get(familyName);
  if (!f) return 0;
  const matches = f.samples.filter((s) => s.name === sampleName && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (matches.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${matches.length} samples`);
  return matches[0]?.value ?? 0;
}
