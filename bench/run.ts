/**
 * The benchmark harness: `npm run bench` (full) or `npm run bench -- --quick` (under two
 * minutes). Each benchmark prints its figures next to a baseline measured in the same run;
 * the table is printed, written as JSON under bench/results/, and (full runs) into
 * docs/benchmarks.md between its result markers.
 *
 * Flags: --quick; --only a,b (ids: cold-start, scale, control-plane, a2a, watch, startup, resume);
 * --update (merge this run's benchmarks into latest-<kind>.json, replacing theirs, and
 * write the docs from the merged set: rerun one benchmark without the others);
 * --out DIR (default bench/results); --docs / --no-docs; --cpu-prof DIR (profiles of the
 * service process, for bench/profile-summary.ts); --private-engine (root: run on a private
 * dockerd of its own, test/support/dockerd.ts, instead of DOCKER_HOST's engine, so the
 * benchmark neither disturbs nor is disturbed by other users of the machine's engine).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { a2aDelivery } from "./a2a-delivery.js";
import { coldStart } from "./cold-start.js";
import { controlPlane } from "./control-plane.js";
import { installCleanup, removeTracked } from "./lib/cleanup.js";
import { describeMachine, machineInfo } from "./lib/machine.js";
import { markdownTable, textTable } from "./lib/report.js";
import type { BenchContext, BenchResult } from "./lib/report.js";
import { REPO_ROOT } from "./lib/service-process.js";
import { resume } from "./resume.js";
import { scale } from "./scale.js";
import { startup } from "./startup.js";
import { watchFanout } from "./watch-fanout.js";

const BENCHMARKS: Record<string, (ctx: BenchContext) => Promise<BenchResult>> = {
  "cold-start": coldStart,
  scale,
  "control-plane": controlPlane,
  a2a: a2aDelivery,
  watch: watchFanout,
  startup,
  resume,
};

/** The benchmarks that start containers. */
const DOCKER_BENCHMARKS = ["cold-start", "scale", "resume"];

interface Args {
  quick: boolean;
  only: string[];
  out: string;
  docs: boolean;
  update: boolean;
  privateEngine: boolean;
  cpuProfDir?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, only: Object.keys(BENCHMARKS), out: path.join(REPO_ROOT, "bench", "results"), docs: false, update: false, privateEngine: false };
  let docs: boolean | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--quick") args.quick = true;
    else if (a === "--only") args.only = value().split(",").map((s) => s.trim()).filter(Boolean);
    else if (a === "--out") args.out = path.resolve(value());
    else if (a === "--docs") docs = true;
    else if (a === "--update") args.update = true;
    else if (a === "--private-engine") args.privateEngine = true;
    else if (a === "--no-docs") docs = false;
    else if (a === "--cpu-prof") args.cpuProfDir = path.resolve(value());
    else throw new Error(`unknown flag ${a} (known: --quick, --only IDS, --update, --out DIR, --docs, --no-docs, --cpu-prof DIR, --private-engine)`);
  }
  for (const id of args.only) {
    if (!(id in BENCHMARKS)) throw new Error(`unknown benchmark "${id}" (known: ${Object.keys(BENCHMARKS).join(", ")})`);
  }
  // The docs hold the full run's figures; a quick run only updates them when asked.
  args.docs = docs ?? (!args.quick && (args.update || args.only.length === Object.keys(BENCHMARKS).length));
  return args;
}

const DOCS_START = "<!-- bench:results:start -->";
const DOCS_END = "<!-- bench:results:end -->";

function updateDocs(section: string): void {
  const file = path.join(REPO_ROOT, "docs", "benchmarks.md");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    text = `# Benchmarks\n\n${DOCS_START}\n${DOCS_END}\n`;
  }
  const start = text.indexOf(DOCS_START);
  const end = text.indexOf(DOCS_END);
  const block = `${DOCS_START}\n${section}\n${DOCS_END}`;
  text = start >= 0 && end > start ? text.slice(0, start) + block + text.slice(end + DOCS_END.length) : `${text.trimEnd()}\n\n${block}\n`;
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
}

function readLatest(file: string): BenchResult[] {
  try {
    return (JSON.parse(readFileSync(file, "utf8")) as { results: BenchResult[] }).results;
  } catch {
    return [];
  }
}

/** The earlier results with this run's replacing those of the same benchmark, in the harness's order. */
function mergeResults(earlier: BenchResult[], now: BenchResult[]): BenchResult[] {
  const byId = new Map(earlier.map((r) => [r.id, r]));
  for (const r of now) byId.set(r.id, r);
  return Object.keys(BENCHMARKS).flatMap((id) => byId.get(id) ?? []);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  installCleanup();
  const started = Date.now();
  let engine: { dockerHost: string; destroy(): Promise<void> } | undefined;
  if (args.privateEngine) {
    const { startPrivateDockerd } = await import("../test/support/dockerd.js");
    engine = await startPrivateDockerd({ withTestImage: true });
    // The service processes, the raw baseline and the cleanup all follow DOCKER_HOST.
    process.env.DOCKER_HOST = engine.dockerHost;
    console.log(`private engine: ${engine.dockerHost}`);
  }
  try {
    await runAll(args, started);
  } finally {
    await engine?.destroy();
  }
}

async function runAll(args: Args, started: number): Promise<void> {
  const machine = await machineInfo();
  console.log(`agentorch benchmarks (${args.quick ? "quick" : "full"}): ${args.only.join(", ")}`);
  console.log(describeMachine(machine));
  if (machine.loadAverage[0]! > machine.cpus) {
    console.log(`warning: the load average (${machine.loadAverage[0]}) is above the core count: absolute figures will be noisy; compare ratios`);
  }
  const ctx: BenchContext = {
    quick: args.quick,
    log: (m) => console.log(`  … ${m}`),
    serviceNodeArgs: args.cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", args.cpuProfDir] : [],
  };
  const results: BenchResult[] = [];
  const load1 = () => Math.round(os.loadavg()[0]! * 100) / 100;
  for (const id of args.only) {
    const t0 = Date.now();
    const loadBefore = load1();
    console.log(`\n== ${id}`);
    let result: BenchResult;
    try {
      result = await BENCHMARKS[id]!(ctx);
    } catch (err) {
      console.error(`${id} failed:`, err);
      result = { id, title: id, figures: [], notes: [], details: { error: String(err) }, skipped: `failed: ${(err as Error).message.split("\n")[0]}` };
    }
    result.durationS = Math.round((Date.now() - t0) / 100) / 10;
    result.measuredAt = new Date(t0).toISOString();
    result.loadAverage = { before: loadBefore, after: load1() };
    if (args.privateEngine && !result.skipped && DOCKER_BENCHMARKS.includes(id)) {
      result.notes.push(`run on a private dockerd (--private-engine, Docker ${machine.docker ?? "?"}), not the machine's shared engine.`);
    }
    results.push(result);
    console.log(textTable([result]));
    for (const n of result.notes) console.log(`  note: ${n}`);
  }
  const leftover = await removeTracked();
  if (leftover > 0) console.log(`removed ${leftover} leftover container(s)`);
  const loadAfter = os.loadavg().map((l) => Math.round(l * 100) / 100);
  const durationS = Math.round((Date.now() - started) / 1000);

  console.log(`\n== summary (${durationS} s; load average after ${loadAfter.join(" / ")})\n`);
  console.log(textTable(results));

  mkdirSync(args.out, { recursive: true });
  const stamp = new Date(started).toISOString().replace(/[:.]/g, "-");
  const kind = args.quick ? "quick" : "full";
  const record = (rs: BenchResult[]) =>
    JSON.stringify({ kind, startedAt: new Date(started).toISOString(), durationS, machine: { ...machine, loadAverageAfter: loadAfter }, results: rs }, null, 2) + "\n";
  const jsonPath = path.join(args.out, `${stamp}-${kind}.json`);
  writeFileSync(jsonPath, record(results));
  const latestPath = path.join(args.out, `latest-${kind}.json`);
  const merged = args.update ? mergeResults(readLatest(latestPath), results) : results;
  writeFileSync(latestPath, record(merged));
  console.log(`\nresults: ${path.relative(process.cwd(), jsonPath)}${args.update ? ` (merged into ${path.relative(process.cwd(), latestPath)})` : ""}`);

  if (args.docs) {
    const notes = merged.flatMap((r) => [
      ...(r.measuredAt ? [`- ${r.title}: measured ${r.measuredAt.slice(0, 16).replace("T", " ")} UTC, load average ${r.loadAverage?.before} before, ${r.loadAverage?.after} after.`] : []),
      ...r.notes.map((n) => `- ${r.title}: ${n}`),
    ]);
    updateDocs(
      [
        `${kind === "full" ? "Full" : "Quick"} run on ${describeMachine(machine, false)}.`,
        "",
        markdownTable(merged),
        "",
        ...notes,
      ].join("\n"),
    );
    console.log("docs/benchmarks.md updated");
  }
}

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    console.error("bench:", err);
    await removeTracked().catch(() => 0);
    process.exit(1);
  },
);
