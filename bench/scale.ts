/**
 * 2. Start throughput at scale, then the service with that many agents running: start
 * N agents (300; --quick fewer) with 16 calls in flight, against raw dockerode doing the
 * same at the same concurrency (runs alternate which goes first). With N running: the
 * service's resident memory, EnforceLifecycle passes (the RPC as a client sees it, and
 * the pass itself as the service's RPC log times it), and ListAgents pages of 100 out of
 * 10,000 registered agents.
 */
import path from "node:path";
import { BENCH_IMAGE, dockerReady, RawDocker, removeInstance } from "./lib/docker-raw.js";
import { agentConfig, Client, inPool } from "./lib/grpc.js";
import type { BenchContext, BenchResult } from "./lib/report.js";
import { startService } from "./lib/service-process.js";
import type { ServiceProcess } from "./lib/service-process.js";
import { percentile, spread, summarize } from "./lib/stats.js";

const IN_FLIGHT = 16;
const PAGE = 100;

export async function scale(ctx: BenchContext): Promise<BenchResult> {
  const title = "2. Scale";
  const ready = await dockerReady();
  if (!ready.ok) return { id: "scale", title, figures: [], notes: [], details: {}, skipped: ready.why };
  const n = ctx.quick ? 32 : 300;
  const reps = ctx.quick ? 1 : 2;
  const registered = ctx.quick ? 2_000 : 10_000;
  const enforceCalls = ctx.quick ? 10 : 30;
  const listBatches = ctx.quick ? 3 : 5;
  const listPerBatch = ctx.quick ? 100 : 400;

  const service = await startService({
    nodeArgs: ctx.serviceNodeArgs,
    env: { AGENTORCH_MAX_RUNNING: String(n + IN_FLIGHT) },
  });
  const raw = new RawDocker(path.join(service.dataDir, "raw"));
  const client = new Client(service.address);
  const ids = Array.from({ length: n }, (_, i) => `scale-${i}`);
  const rateA: number[] = [];
  const rateB: number[] = [];
  const details: Record<string, unknown> = { n, inFlight: IN_FLIGHT };
  try {
    await inPool(ids, IN_FLIGHT, (id) => client.agents("registerAgent", { agent: agentConfig(id, BENCH_IMAGE) }));
    const runA = async () => {
      const t0 = performance.now();
      await inPool(ids, IN_FLIGHT, (id) => client.agents("startAgent", { agentId: id }));
      return (n / (performance.now() - t0)) * 1000;
    };
    const stopA = () => inPool(ids, IN_FLIGHT, (id) => client.agents("stopAgent", { agentId: id }));
    const runB = async (rep: number) => {
      const t0 = performance.now();
      const containers = await inPool(ids, IN_FLIGHT, (id) => raw.createAndStart(`${id}-r${rep}`));
      const rate = (n / (performance.now() - t0)) * 1000;
      // Not timed, so a few at a time: less churn for docker.io 20.10's libnetwork deadlock (docs/reliability.md).
      await inPool(containers, 4, (c) => raw.remove(c));
      return rate;
    };
    for (let rep = 0; rep < reps; rep++) {
      const rawFirst = rep % 2 === 0;
      if (rawFirst) rateB.push(await runB(rep));
      rateA.push(await runA());
      ctx.log(`scale rep ${rep + 1}/${reps}: agentorch ${rateA.at(-1)!.toFixed(1)}/s${rawFirst ? `, raw ${rateB.at(-1)!.toFixed(1)}/s` : ""}`);
      if (rep === 0) Object.assign(details, await withRunning(ctx, service, client, { n, registered, enforceCalls, listBatches, listPerBatch }));
      await stopA();
      if (!rawFirst) rateB.push(await runB(rep));
    }
  } finally {
    client.close();
    await service.stop();
    await removeInstance(raw.docker, service.instanceId);
    await raw.cleanup();
  }
  const a = spread(rateA);
  const b = spread(rateB);
  const d = details as unknown as Measured;
  return {
    id: "scale",
    title,
    figures: [
      { name: `start ${n} agents, ${IN_FLIGHT} in flight (agents/s)`, agentorch: a, baseline: b, baselineName: "raw dockerode", ratio: a.median / b.median, target: "ratio >= 0.9", met: a.median / b.median >= 0.9 },
      { name: `service RSS with ${n} running (MiB)`, agentorch: d.rssRunningMiB, target: "< 300 MB", met: d.rssRunningMiB * 1.048576 < 300 },
      { name: `service RSS with ${n} running, ${registered} registered (MiB)`, agentorch: d.rssRegisteredMiB, target: "< 300 MB", met: d.rssRegisteredMiB * 1.048576 < 300 },
      { name: "EnforceLifecycle pass, service-side p50 (ms)", agentorch: d.enforcePass.p50, target: "< 20 ms", met: d.enforcePass.p50 < 20 },
      { name: "EnforceLifecycle pass, service-side max (ms)", agentorch: d.enforcePass.max },
      { name: "EnforceLifecycle RPC, client p50 (ms)", agentorch: d.enforceRpc.p50 },
      { name: `ListAgents page of ${PAGE} of ${registered}, p99 (ms)`, agentorch: spread(d.listP99PerBatch), target: "p99 < 20 ms", met: percentile(d.listP99PerBatch, 50) < 20 },
      { name: `ListAgents page of ${PAGE} of ${registered}, p50 (ms)`, agentorch: d.list.p50 },
    ],
    notes: [
      `${reps} run(s) each way, alternating which goes first; raw dockerode uses buildCreateOptions with the same spec. EnforceLifecycle and ListAgents are measured once with ${n} agents running and ${registered} registered (${d.registerPerSecond.toFixed(0)} registrations/s, ${IN_FLIGHT} in flight).`,
      `ListAgents: ${listBatches} batches of ${listPerBatch} sequential calls on random pages; p99 per batch, median (min–max).`,
    ],
    details: { ...details, containerLabels: [`agentorch.instance=${service.instanceId}`, raw.label], agentorchPerSecond: rateA, rawPerSecond: rateB },
  };
}

interface Measured {
  rssRunningMiB: number;
  rssRegisteredMiB: number;
  enforceRpc: ReturnType<typeof summarize>;
  enforcePass: ReturnType<typeof summarize>;
  registerPerSecond: number;
  list: ReturnType<typeof summarize>;
  listP99PerBatch: number[];
}

async function withRunning(
  ctx: BenchContext,
  service: ServiceProcess,
  client: Client,
  o: { n: number; registered: number; enforceCalls: number; listBatches: number; listPerBatch: number },
): Promise<Measured> {
  const rssRunningMiB = service.rssMiB();
  const extra = Array.from({ length: o.registered - o.n }, (_, i) => `idle-${i}`);
  const t0 = performance.now();
  await inPool(extra, IN_FLIGHT, (id) => client.agents("registerAgent", { agent: agentConfig(id, BENCH_IMAGE) }));
  const registerPerSecond = (extra.length / (performance.now() - t0)) * 1000;
  ctx.log(`registered ${o.registered} agents (${registerPerSecond.toFixed(0)}/s)`);
  const rssRegisteredMiB = service.rssMiB();

  const enforceMs: number[] = [];
  for (let i = 0; i < o.enforceCalls; i++) {
    const t = performance.now();
    const res = await client.agents("enforceLifecycle", {});
    enforceMs.push(performance.now() - t);
    if (((res.stoppedAgentIds as string[] | undefined) ?? []).length > 0) throw new Error("EnforceLifecycle stopped agents during the benchmark");
  }
  // The pass as the service timed it: the RPC log line's durationMs (interceptor around the handler).
  const passMs = service
    .logs()
    .filter((l) => l.msg === "rpc" && String(l.method).endsWith("/EnforceLifecycle"))
    .map((l) => Number(l.durationMs));

  // Every page's token, then random pages.
  const tokens: string[] = [""];
  for (;;) {
    const res = await client.agents("listAgents", { pageSize: PAGE, pageToken: tokens.at(-1) });
    if (!res.nextPageToken) break;
    tokens.push(res.nextPageToken as string);
  }
  const all: number[] = [];
  const p99s: number[] = [];
  for (let b = 0; b < o.listBatches; b++) {
    const batch: number[] = [];
    for (let i = 0; i < o.listPerBatch; i++) {
      const token = tokens[Math.floor(Math.random() * tokens.length)]!;
      const t = performance.now();
      const res = await client.agents("listAgents", { pageSize: PAGE, pageToken: token });
      batch.push(performance.now() - t);
      if ((res.agents as unknown[]).length === 0) throw new Error("ListAgents returned an empty page");
    }
    p99s.push(percentile(batch, 99));
    all.push(...batch);
  }
  return {
    rssRunningMiB,
    rssRegisteredMiB,
    enforceRpc: summarize(enforceMs),
    enforcePass: summarize(passMs),
    registerPerSecond,
    list: summarize(all),
    listP99PerBatch: p99s,
  };
}
