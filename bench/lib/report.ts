/**
 * What every benchmark returns, and how the results are shown: one table row per figure
 * (agentorch, its same-run baseline, their ratio, the target and whether it is met), a
 * JSON file with every raw number, and the Markdown table for docs/benchmarks.md.
 */
import { round } from "./stats.js";
import type { Spread } from "./stats.js";

/** One figure of one benchmark. Values are medians over runs unless `value` is a plain number. */
export interface Figure {
  /** What is measured, with its unit, e.g. "StartAgent until RUNNING, p50 (ms)". */
  name: string;
  agentorch: Spread | number;
  /** The same-run baseline, when there is one. */
  baseline?: Spread | number;
  /** What the baseline is, e.g. "raw dockerode". */
  baselineName?: string;
  /** agentorch / baseline (or baseline / agentorch when lower is better and the target says so). */
  ratio?: number;
  /** The target as written in the issue, e.g. "ratio <= 1.10". */
  target?: string;
  met?: boolean;
}

export interface BenchResult {
  /** Short name, e.g. "cold-start". */
  id: string;
  title: string;
  figures: Figure[];
  /** Conditions and caveats worth printing with the table (sizes, concurrency, what was skipped). */
  notes: string[];
  /** Raw per-run data. */
  details: Record<string, unknown>;
  skipped?: string;
  durationS?: number;
  /** When it ran, and the 1-minute load average before and after. */
  measuredAt?: string;
  loadAverage?: { before: number; after: number };
}

export interface BenchContext {
  quick: boolean;
  log(message: string): void;
  /** Node flags for the service process (e.g. --cpu-prof). */
  serviceNodeArgs: string[];
}

export function valueOf(v: Spread | number | undefined): number {
  if (v === undefined) return NaN;
  return typeof v === "number" ? v : v.median;
}

function fmtNumber(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  const r = round(n);
  return Math.abs(r) >= 1000 ? r.toLocaleString("en-US") : String(r);
}

/** "median (min–max)" or the number. */
export function fmt(v: Spread | number | undefined): string {
  if (v === undefined) return "";
  if (typeof v === "number") return fmtNumber(v);
  if (v.runs.length <= 1 || v.min === v.max) return fmtNumber(v.median);
  return `${fmtNumber(v.median)} (${fmtNumber(v.min)}–${fmtNumber(v.max)})`;
}

const HEADERS = ["benchmark", "figure", "agentorch", "baseline", "ratio", "target", "met"];

function rows(results: readonly BenchResult[]): string[][] {
  const out: string[][] = [];
  for (const r of results) {
    if (r.skipped) {
      out.push([r.title, `skipped: ${r.skipped}`, "", "", "", "", ""]);
      continue;
    }
    for (const f of r.figures) {
      out.push([
        r.title,
        f.name,
        fmt(f.agentorch),
        f.baseline === undefined ? "" : `${fmt(f.baseline)}${f.baselineName ? ` [${f.baselineName}]` : ""}`,
        f.ratio === undefined ? "" : fmtNumber(f.ratio),
        f.target ?? "",
        f.met === undefined ? "" : f.met ? "yes" : "NO",
      ]);
    }
  }
  return out;
}

/** A plain-text table for the terminal. */
export function textTable(results: readonly BenchResult[]): string {
  const body = rows(results);
  const widths = HEADERS.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(HEADERS), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

/** The same table in Markdown. */
export function markdownTable(results: readonly BenchResult[]): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  return [
    `| ${HEADERS.join(" | ")} |`,
    `| ${HEADERS.map(() => "---").join(" | ")} |`,
    ...rows(results).map((r) => `| ${r.map(esc).join(" | ")} |`),
  ].join("\n");
}
