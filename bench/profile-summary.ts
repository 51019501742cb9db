/**
 * Summarises a V8 CPU profile (node --cpu-prof) of the service: where the time went, by
 * package or source directory (self time) and by function (self and inclusive time).
 * Used to find what agentorch itself costs per call (see docs/benchmarks.md).
 *
 *   node --import tsx bench/profile-summary.ts FILE.cpuprofile [--top N]
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Where a frame's code lives: a package name, a source directory, node's internals, or V8. */
export function owner(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith("node:")) return "node:" + url.slice(5).split("/").slice(0, 2).join("/");
  const src = /\/(src|gen|bench)\/(.+\/)?[^/]+$/.exec(url);
  if (src) return `${src[1]}/${src[2] ?? ""}`.replace(/\/$/, "");
  return url;
}

/** A frame's file: the owner, and for our own sources the file name too. */
function where(url: string, functionName: string): string {
  const o = owner(url, functionName);
  return /^(src|gen|bench)\b/.test(o) ? `${o}/${url.slice(url.lastIndexOf("/") + 1)}` : o;
}

/** Self and inclusive milliseconds per function and self milliseconds per owner. */
export function summarizeProfile(profile: Profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    for (let i = 0; i < profile.samples.length; i++) {
      const id = profile.samples[i]!;
      selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
    }
  }
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (n: ProfileNode) => `${n.callFrame.functionName || "(anonymous)"} ${where(n.callFrame.url, n.callFrame.functionName)}:${n.callFrame.lineNumber + 1}`;
  // Time in node's internals (http2, streams, timers…) goes to the code that called them: the
  // nearest frame of a package or of our sources. Ours are counted per file.
  const attributed = new Map<string, number>();
  const isNode = (n: ProfileNode) => {
    const o = owner(n.callFrame.url, n.callFrame.functionName);
    return o.startsWith("node:") || o === "(native)" || o === "(program)" || o === "(root)";
  };
  const fnSelf = new Map<string, number>();
  const fnTotal = new Map<string, number>();
  const ownerSelf = new Map<string, number>();
  let total = 0;
  for (const [id, ms] of selfMs) {
    const node = byId.get(id)!;
    total += ms;
    fnSelf.set(key(node), (fnSelf.get(key(node)) ?? 0) + ms);
    const o = owner(node.callFrame.url, node.callFrame.functionName);
    ownerSelf.set(o, (ownerSelf.get(o) ?? 0) + ms);
    let payer: ProfileNode | undefined = node;
    while (payer && isNode(payer) && parent.has(payer.id)) payer = byId.get(parent.get(payer.id)!);
    const who = payer && !isNode(payer) ? where(payer.callFrame.url, payer.callFrame.functionName) : o;
    attributed.set(who, (attributed.get(who) ?? 0) + ms);
    // Inclusive: every distinct function on the stack gets the sample once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = key(byId.get(cur)!);
      if (seen.has(k)) continue;
      seen.add(k);
      fnTotal.set(k, (fnTotal.get(k) ?? 0) + ms);
    }
  }
  const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return { totalMs: total, owners: sorted(ownerSelf), attributed: sorted(attributed), self: sorted(fnSelf), inclusive: sorted(fnTotal) };
}

function main(): void {
  const file = process.argv[2];
  if (!file) {
    console.error("usage: bench/profile-summary.ts FILE.cpuprofile [--top N]");
    process.exit(2);
  }
  const topIndex = process.argv.indexOf("--top");
  const top = topIndex > 0 ? Number(process.argv[topIndex + 1]) : 25;
  const s = summarizeProfile(JSON.parse(readFileSync(file, "utf8")) as Profile);
  const pct = (ms: number) => `${((100 * ms) / s.totalMs).toFixed(1).padStart(5)}%`;
  console.log(`sampled ${s.totalMs.toFixed(0)} ms\n\nself time by owner:`);
  for (const [o, ms] of s.owners.slice(0, top)) console.log(`  ${pct(ms)}  ${o}`);
  console.log("\nself time with node's internals charged to their caller (package or our file):");
  for (const [o, ms] of s.attributed.slice(0, top)) console.log(`  ${pct(ms)}  ${o}`);
  console.log("\nself time by function:");
  for (const [f, ms] of s.self.slice(0, top)) console.log(`  ${pct(ms)}  ${f}`);
  console.log("\ninclusive time by function:");
  for (const [f, ms] of s.inclusive.slice(0, top)) console.log(`  ${pct(ms)}  ${f}`);
  console.log("\ninclusive time of agentorch's own functions (src/) and its logger:");
  for (const [f, ms] of s.inclusive.filter(([k]) => / (src\/|pino)/.test(k)).slice(0, top)) console.log(`  ${pct(ms)}  ${f}`);
}

if (process.argv[1]?.endsWith("profile-summary.ts")) main();
