/**
 * 7. Resume of a paused agent (lifecycle.idle_action PAUSE): StartAgent over gRPC on a
 * PAUSED agent until the answer says RUNNING, against raw dockerode unpause of a paused
 * container made with the same options, alternating A/B run by run. Also the pause itself
 * (the enforcement pass that freezes an idle agent), against raw dockerode pause. Issue 16's
 * target: resume p50 <= 25 ms.
 */
import path from "node:path";
import { BENCH_IMAGE, dockerReady, RawDocker, removeInstance } from "./lib/docker-raw.js";
import { agentConfig, Client } from "./lib/grpc.js";
import type { BenchContext, BenchResult } from "./lib/report.js";
import { startService } from "./lib/service-process.js";
import { spread, summarize } from "./lib/stats.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function resume(ctx: BenchContext): Promise<BenchResult> {
  const title = "7. Resume of a paused agent";
  const ready = await dockerReady();
  if (!ready.ok) return { id: "resume", title, figures: [], notes: [], details: {}, skipped: ready.why };
  const runs = ctx.quick ? 6 : 30;
  // Enforcement every 100 ms and a 1 s idle limit: each agent is paused again soon after it was resumed.
  const service = await startService({ nodeArgs: ctx.serviceNodeArgs, env: { AGENTORCH_ENFORCE_INTERVAL_MS: "100" } });
  const raw = new RawDocker(path.join(service.dataDir, "raw"));
  const client = new Client(service.address);
  const a: number[] = [];
  const b: number[] = [];
  const rawPause: number[] = [];
  const status = async (id: string) => ((await client.agents("getAgent", { agentId: id })).agent as { status?: string }).status;
  try {
    const ids = Array.from({ length: runs }, (_, i) => `nap-${i}`);
    for (const id of ids) {
      await client.agents("registerAgent", { agent: { ...agentConfig(id, BENCH_IMAGE), lifecycle: { maxIdle: { seconds: 1 }, idleAction: "IDLE_ACTION_PAUSE" } } });
      await client.agents("startAgent", { agentId: id });
    }
    const rawIds: string[] = [];
    for (let i = 0; i < runs; i++) {
      const id = await raw.createAndStart(`raw-nap-${i}`);
      const t0 = performance.now();
      await raw.docker.getContainer(id).pause();
      rawPause.push(performance.now() - t0);
      rawIds.push(id);
    }
    // Every agent paused by the service's own enforcement.
    for (const id of ids) {
      while ((await status(id)) !== "AGENT_STATUS_PAUSED") await sleep(50);
    }
    const resumeA = async (i: number) => {
      const t0 = performance.now();
      const res = await client.agents("startAgent", { agentId: ids[i]! });
      const ms = performance.now() - t0;
      const s = (res.agent as { status?: string } | undefined)?.status;
      if (s !== "AGENT_STATUS_RUNNING") throw new Error(`StartAgent on a PAUSED agent answered ${s}, not RUNNING`);
      return ms;
    };
    const resumeB = async (i: number) => {
      const t0 = performance.now();
      await raw.docker.getContainer(rawIds[i]!).unpause();
      return performance.now() - t0;
    };
    for (let i = 0; i < runs; i++) {
      const first = i % 2 === 0;
      const [ms1, ms2] = first ? [await resumeA(i), await resumeB(i)] : [await resumeB(i), await resumeA(i)];
      a.push(first ? ms1 : ms2);
      b.push(first ? ms2 : ms1);
    }
    ctx.log(`resume: ${runs} agents resumed`);
  } finally {
    client.close();
    await service.stop();
    await removeInstance(raw.docker, service.instanceId);
    await raw.cleanup();
  }
  const sa = summarize(a);
  const sb = summarize(b);
  return {
    id: "resume",
    title,
    figures: [
      { name: "resume until RUNNING, p50 (ms)", agentorch: sa.p50, baseline: sb.p50, baselineName: "raw dockerode unpause", ratio: sa.p50 / sb.p50, target: "p50 <= 25 ms", met: sa.p50 <= 25 },
      { name: "resume until RUNNING, p95 (ms)", agentorch: sa.p95, baseline: sb.p95, baselineName: "raw dockerode unpause", ratio: sa.p95 / sb.p95 },
      { name: "raw dockerode pause (median, min–max ms)", agentorch: spread(rawPause) },
    ],
    notes: [`${runs} agents (image ${BENCH_IMAGE}, sleep 3600) paused by the service's own idle enforcement (max_idle 1 s), then each resumed by StartAgent; A/B alternating with raw unpause.`],
    details: { containerLabels: [`agentorch.instance=${service.instanceId}`, raw.label], agentorchMs: a, rawMs: b, rawPauseMs: rawPause, agentorch: sa, raw: sb },
  };
}
