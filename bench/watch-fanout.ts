/**
 * 5. Watch fan-out: 500 concurrent WatchAgents streams while agents change (are
 * registered, which needs no Docker) at a steady pace; per change, the time from its
 * commit (the agent's created_at, stamped in the transaction) to the moment the last
 * of the 500 streams received it. The watchers run in their own process
 * (bench/watch-client.ts). The baseline is the bare grpc-js server fanning the same
 * events out from memory.
 */
import { fork } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { startBaseline } from "./lib/baseline-process.js";
import { trackChild } from "./lib/cleanup.js";
import { BENCH_IMAGE } from "./lib/docker-raw.js";
import { agentConfig, Client } from "./lib/grpc.js";
import type { Msg } from "./lib/grpc.js";
import type { BenchContext, BenchResult } from "./lib/report.js";
import { REPO_ROOT, startService } from "./lib/service-process.js";
import { waitIdle } from "./lib/proc.js";
import { percentile, spread, summarize } from "./lib/stats.js";
import type { WatchReport } from "./watch-client.js";

const STREAMS = 500;
const CONNECTIONS = 50;

interface RoundResult {
  latencies: number[];
  /** Server CPU time per event delivered to one stream (µs). */
  cpuUsPerDelivery: number;
  missing: number;
  errors: number;
  firstError?: string;
}

function startWatchers(address: string): Promise<{ child: ChildProcess; report(): Promise<WatchReport>; stop(): Promise<void> }> {
  const child = fork("bench/watch-client.ts", [JSON.stringify({ address, streams: STREAMS, connections: CONNECTIONS })], {
    cwd: REPO_ROOT,
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const untrack = trackChild(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(untrack);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`watchers not ready in 30 s`)), 30_000);
    child.once("exit", (code) => reject(new Error(`watch client exited (${code})`)));
    child.once("message", (m: { type: string }) => {
      if (m.type !== "ready") return;
      clearTimeout(timer);
      resolve({
        child,
        report: () =>
          new Promise<WatchReport>((res) => {
            child.once("message", (r: WatchReport) => res(r));
            child.send({ type: "report" });
          }),
        async stop() {
          child.send({ type: "stop" });
          const kill = setTimeout(() => child.kill("SIGKILL"), 5000);
          await exited;
          clearTimeout(kill);
        },
      });
    });
  });
}

/** created_at of an answered RegisterAgent, epoch ms. */
function createdMs(res: Msg): number {
  const t = (res.agent as Msg).createdAt as { seconds: string; nanos: number };
  return Number(t.seconds) * 1000 + t.nanos / 1e6;
}

export async function watchRound(address: string, cpuMs: () => number, prefix: string, changes: number, perSecond: number): Promise<RoundResult> {
  const watchers = await startWatchers(address);
  const client = new Client(address);
  try {
    const cpu0 = cpuMs();
    const commits = new Map<string, number>();
    const t0 = performance.now();
    const calls: Promise<void>[] = [];
    for (let i = 0; i < changes; i++) {
      const due = t0 + (i * 1000) / perSecond;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const id = `${prefix}-${i}`;
      calls.push(client.agents("registerAgent", { agent: agentConfig(id, BENCH_IMAGE) }).then((res) => void commits.set(id, createdMs(res))));
    }
    await Promise.all(calls);
    // Wait until every stream has every change (or give up after 10 s).
    let report = await watchers.report();
    const deadline = Date.now() + 10_000;
    const complete = (r: WatchReport) => [...commits.keys()].every((id) => (r.received[id]?.count ?? 0) >= STREAMS);
    while (!complete(report) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      report = await watchers.report();
    }
    const cpu = cpuMs() - cpu0;
    const latencies: number[] = [];
    let missing = 0;
    for (const [id, commit] of commits) {
      const got = report.received[id];
      missing += STREAMS - (got?.count ?? 0);
      if (got && got.count >= STREAMS) latencies.push(got.last - commit);
    }
    const deliveries = changes * STREAMS - missing;
    return { latencies, cpuUsPerDelivery: (cpu * 1000) / deliveries, missing, errors: report.errors, firstError: report.firstError };
  } finally {
    client.close();
    await watchers.stop();
  }
}

export async function watchFanout(ctx: BenchContext): Promise<BenchResult> {
  const title = "5. Watch fan-out";
  const rounds = ctx.quick ? 1 : 3;
  const perSecond = 20;
  const changes = ctx.quick ? 40 : 100;
  const service = await startService({ nodeArgs: ctx.serviceNodeArgs });
  const bare = await startBaseline();
  const targets = [
    { name: "agentorch", address: service.address, cpuMs: () => service.cpuMs() },
    { name: "grpc-js", address: bare.address, cpuMs: () => bare.cpuMs() },
  ];
  const results: Record<string, RoundResult[]> = { agentorch: [], "grpc-js": [] };
  try {
    for (let r = 0; r < rounds; r++) {
      for (const t of r % 2 === 0 ? targets : [...targets].reverse()) {
        const res = await watchRound(t.address, t.cpuMs, `w${r}`, changes, perSecond);
        results[t.name]!.push(res);
        await waitIdle(t.cpuMs);
        const s = summarize(res.latencies);
        ctx.log(`watch ${t.name} round ${r + 1}: p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, max ${s.max.toFixed(1)} ms, ${res.cpuUsPerDelivery.toFixed(1)} µs server CPU per delivery, missing ${res.missing}, errors ${res.errors}${res.firstError ? ` (${res.firstError})` : ""}`);
      }
    }
  } finally {
    await bare.stop();
    await service.stop();
  }
  const p = (name: string, q: number) => spread(results[name]!.map((r) => percentile(r.latencies, q)));
  const missing = results.agentorch!.reduce((n, r) => n + r.missing + r.errors, 0);
  return {
    id: "watch",
    title,
    figures: [
      { name: `change → last of ${STREAMS} watchers, p50 (ms)`, agentorch: p("agentorch", 50), baseline: p("grpc-js", 50), baselineName: "bare grpc-js fan-out" },
      {
        name: `change → last of ${STREAMS} watchers, p99 (ms)`,
        agentorch: p("agentorch", 99),
        baseline: p("grpc-js", 99),
        baselineName: "bare grpc-js fan-out",
        ratio: p("agentorch", 99).median / p("grpc-js", 99).median,
        target: "p99 < 50 ms",
        met: p("agentorch", 99).median < 50 && missing === 0,
      },
      {
        name: "server CPU per event delivered to one stream (µs)",
        agentorch: spread(results.agentorch!.map((r) => r.cpuUsPerDelivery)),
        baseline: spread(results["grpc-js"]!.map((r) => r.cpuUsPerDelivery)),
        baselineName: "bare grpc-js fan-out",
        ratio: spread(results.agentorch!.map((r) => r.cpuUsPerDelivery)).median / spread(results["grpc-js"]!.map((r) => r.cpuUsPerDelivery)).median,
      },
    ],
    notes: [
      `${STREAMS} streams over ${CONNECTIONS} connections in one watcher process; ${changes} agents registered at ${perSecond}/s per round (${(STREAMS * perSecond).toLocaleString("en-US")} events/s to deliver), ${rounds} round(s) per server alternating; p-values per round, median (min–max). created_at is whole milliseconds: latencies may read up to 1 ms high.`,
    ],
    details: Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.map((r) => ({ ...summarize(r.latencies), cpuUsPerDelivery: r.cpuUsPerDelivery, missing: r.missing, errors: r.errors }))])),
  };
}
