/**
 * 1. Cold start overhead: StartAgent over gRPC until the answer says RUNNING, against
 * raw dockerode create + start with the very same container options, alternating A/B
 * (and which goes first) run by run. Every container is removed after its run, outside
 * the timing, so the engine holds the same state for both.
 */
import path from "node:path";
import { dockerReady, RawDocker, removeInstance } from "./lib/docker-raw.js";
import { BENCH_IMAGE } from "./lib/docker-raw.js";
import { agentConfig, Client } from "./lib/grpc.js";
import type { BenchContext, BenchResult } from "./lib/report.js";
import { startService } from "./lib/service-process.js";
import { percentile, spread, summarize } from "./lib/stats.js";

export async function coldStart(ctx: BenchContext): Promise<BenchResult> {
  const title = "1. Cold start";
  const ready = await dockerReady();
  if (!ready.ok) return { id: "cold-start", title, figures: [], notes: [], details: {}, skipped: ready.why };
  const runs = ctx.quick ? 6 : 30;
  const warmup = ctx.quick ? 1 : 2;
  const service = await startService({ nodeArgs: ctx.serviceNodeArgs });
  const raw = new RawDocker(path.join(service.dataDir, "raw"));
  const client = new Client(service.address);
  const a: number[] = [];
  const b: number[] = [];
  try {
    for (let i = 0; i < warmup + runs; i++) {
      await client.agents("registerAgent", { agent: agentConfig(`cold-${i}`, BENCH_IMAGE) });
    }
    const startA = async (i: number) => {
      const t0 = performance.now();
      const res = await client.agents("startAgent", { agentId: `cold-${i}` });
      const ms = performance.now() - t0;
      const status = (res.agent as { status?: string } | undefined)?.status;
      if (status !== "AGENT_STATUS_RUNNING") throw new Error(`StartAgent answered ${status}, not RUNNING`);
      await client.agents("removeAgent", { agentId: `cold-${i}` });
      return ms;
    };
    const startB = async (i: number) => {
      const t0 = performance.now();
      const id = await raw.createAndStart(`raw-${i}`);
      const ms = performance.now() - t0;
      await raw.remove(id);
      return ms;
    };
    for (let i = 0; i < warmup + runs; i++) {
      const first = i % 2 === 0;
      const [ms1, ms2] = first ? [await startA(i), await startB(i)] : [await startB(i), await startA(i)];
      const [msA, msB] = first ? [ms1, ms2] : [ms2, ms1];
      if (i >= warmup) {
        a.push(msA);
        b.push(msB);
      }
      if ((i + 1) % 10 === 0) ctx.log(`cold start: ${i + 1}/${warmup + runs}`);
    }
  } finally {
    client.close();
    await service.stop();
    await removeInstance(raw.docker, service.instanceId);
    await raw.cleanup();
  }
  const sa = summarize(a);
  const sb = summarize(b);
  // The ratio of medians; its spread: the ratio of each A/B pair (measured back to back).
  const pairRatios = a.map((x, i) => x / b[i]!);
  return {
    id: "cold-start",
    title,
    figures: [
      { name: "start until RUNNING, p50 (ms)", agentorch: sa.p50, baseline: sb.p50, baselineName: "raw dockerode", ratio: sa.p50 / sb.p50, target: "ratio <= 1.10", met: sa.p50 / sb.p50 <= 1.1 },
      { name: "start until RUNNING, p95 (ms)", agentorch: sa.p95, baseline: sb.p95, baselineName: "raw dockerode", ratio: sa.p95 / sb.p95 },
      { name: "per-pair ratio A/B (median, min–max)", agentorch: spread(pairRatios) },
    ],
    notes: [`${runs} runs each after ${warmup} warm-up runs, A/B alternating and swapping order; image ${BENCH_IMAGE}, command sleep 3600.`],
    details: { containerLabels: [`agentorch.instance=${service.instanceId}`, raw.label], agentorchMs: a, rawMs: b, agentorch: sa, raw: sb, pairRatioP50: percentile(pairRatios, 50) },
  };
}
