/**
 * 3. Control-plane throughput: GetAgent unary calls from many concurrent clients, by
 * h2load (gRPC over h2c) and by a grpc-js load client, against agentorch and against a
 * bare @grpc/grpc-js server answering from the same agents in memory. A third server,
 * the connect-node floor (connect-node with none of agentorch's code), separates what
 * connect-node costs from what agentorch adds. Each server is its own process; its CPU
 * time per call is read from /proc. Runs rotate which server goes first.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startBaseline, CONNECT_FLOOR_SERVER } from "./lib/baseline-process.js";
import { agentConfig, Client, inPool, PACKAGE_DEFINITION } from "./lib/grpc.js";
import type { Msg } from "./lib/grpc.js";
import { grpcFrame, h2loadVersion, runH2load, stringFieldMessage } from "./lib/h2load.js";
import { runLoadClient } from "./lib/load-process.js";
import type { BenchContext, BenchResult, Figure } from "./lib/report.js";
import { startService } from "./lib/service-process.js";
import { waitIdle } from "./lib/proc.js";
import { spread } from "./lib/stats.js";
import { BENCH_IMAGE } from "./lib/docker-raw.js";

const AGENTS = 100;
const METHOD_PATH = "/agentorch.v1.AgentOrchestratorService/GetAgent";

interface Target {
  name: string;
  address: string;
  cpuMs(): number;
}

interface RunFigures {
  callsPerSecond: number;
  p50: number;
  p99: number;
  cpuUsPerCall: number;
  errors: number;
}

export async function controlPlane(ctx: BenchContext): Promise<BenchResult> {
  const title = "3. Control plane (GetAgent)";
  const reps = ctx.quick ? 1 : 3;
  const warmupS = ctx.quick ? 1 : 2;
  const durationS = ctx.quick ? 2 : 8;
  const h2 = h2loadVersion();
  const h2Clients = 32;
  const h2Streams = 4;
  const jsConnections = 16;
  const jsInFlight = 4;

  const tmp = mkdtempSync(path.join(tmpdir(), "agentorch-bench-cp-"));
  const service = await startService({ nodeArgs: ctx.serviceNodeArgs });
  const client = new Client(service.address);
  const stops: (() => Promise<void>)[] = [() => service.stop()];
  try {
    const ids = Array.from({ length: AGENTS }, (_, i) => `cp-${i}`);
    await inPool(ids, 16, (id) => client.agents("registerAgent", { agent: agentConfig(id, BENCH_IMAGE) }));
    const agents = await Promise.all(ids.map(async (id) => (await client.agents("getAgent", { agentId: id })).agent as Msg));
    const serialize = (PACKAGE_DEFINITION["agentorch.v1.AgentOrchestratorService"] as unknown as Record<string, { responseSerialize(v: Msg): Buffer }>)
      .GetAgent!.responseSerialize;
    writeFileSync(path.join(tmp, "agents.json"), JSON.stringify(agents));
    writeFileSync(path.join(tmp, "agents.b64.json"), JSON.stringify(agents.map((agent) => serialize({ agent }).toString("base64"))));
    const bare = await startBaseline({ agentsFile: path.join(tmp, "agents.json") });
    stops.push(() => bare.stop());
    const floor = await startBaseline({ script: CONNECT_FLOOR_SERVER, agentsFile: path.join(tmp, "agents.b64.json") });
    stops.push(() => floor.stop());
    const targets: Target[] = [
      { name: "agentorch", address: service.address, cpuMs: () => service.cpuMs() },
      { name: "grpc-js", address: bare.address, cpuMs: () => bare.cpuMs() },
      { name: "connect-floor", address: floor.address, cpuMs: () => floor.cpuMs() },
    ];
    // Each server must answer the very request the load sends, as gRPC, before h2load (which sees only HTTP) is trusted.
    for (const t of targets) {
      const c = new Client(t.address);
      const res = await c.agents("getAgent", { agentId: "cp-7" });
      c.close();
      if ((res.agent as Msg).agentId !== "cp-7") throw new Error(`${t.name} answered GetAgent wrongly`);
    }

    const tools: { name: string; run(t: Target): Promise<RunFigures> }[] = [];
    if (h2) {
      const body = grpcFrame(stringFieldMessage(1, "cp-7"));
      tools.push({
        name: "h2load",
        async run(t) {
          const cpu0 = t.cpuMs();
          const r = await runH2load({ url: `http://${t.address}${METHOD_PATH}`, body, clients: h2Clients, streamsPerClient: h2Streams, warmupS, durationS });
          const cpu = t.cpuMs() - cpu0;
          // CPU over warm-up + measurement, divided by the calls of both at the measured rate.
          return { callsPerSecond: r.callsPerSecond, p50: r.latency.p50, p99: r.latency.p99, cpuUsPerCall: (cpu * 1000) / (r.callsPerSecond * (warmupS + durationS)), errors: r.non2xx };
        },
      });
    }
    tools.push({
      name: "grpc-js",
      async run(t) {
        const cpu0 = t.cpuMs();
        const r = await runLoadClient({
          address: t.address,
          method: "getAgent",
          requests: ids.map((agentId) => ({ agentId })),
          connections: jsConnections,
          inFlight: jsInFlight,
          warmupMs: warmupS * 1000,
          durationMs: durationS * 1000,
        });
        const cpu = t.cpuMs() - cpu0;
        return { callsPerSecond: r.callsPerSecond, p50: r.latency.p50, p99: r.latency.p99, cpuUsPerCall: (cpu * 1000) / (r.callsPerSecond * (warmupS + durationS)), errors: r.errors };
      },
    });

    const results: Record<string, Record<string, RunFigures[]>> = {};
    for (let rep = 0; rep < reps; rep++) {
      for (const tool of tools) {
        // Rotate the order so no server always runs first (or right after another's load).
        const order = targets.map((_, i) => targets[(i + rep) % targets.length]!);
        for (const t of order) {
          // Quick: the floor is measured by h2load only.
          if (ctx.quick && tool.name !== "h2load" && t.name === "connect-floor" && h2) continue;
          const r = await tool.run(t);
          await waitIdle(t.cpuMs);
          ((results[tool.name] ??= {})[t.name] ??= []).push(r);
          ctx.log(`${tool.name} → ${t.name}: ${r.callsPerSecond.toFixed(0)} calls/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, ${r.cpuUsPerCall.toFixed(0)} µs CPU/call`);
          if (r.errors > 0) throw new Error(`${tool.name} → ${t.name}: ${r.errors} errors`);
        }
      }
    }

    const figures: Figure[] = [];
    for (const tool of tools) {
      const by = results[tool.name]!;
      const s = (target: string, key: keyof RunFigures) => spread(by[target]!.map((r) => r[key]));
      const ao = s("agentorch", "callsPerSecond");
      const base = s("grpc-js", "callsPerSecond");
      const label = tool.name === "h2load" ? `h2load ${h2Clients}×${h2Streams}` : `grpc-js client ${jsConnections}×${jsInFlight}`;
      figures.push(
        { name: `${label}: calls/s`, agentorch: ao, baseline: base, baselineName: "bare grpc-js", ratio: ao.median / base.median, target: "ratio >= 0.8", met: ao.median / base.median >= 0.8 },
        { name: `${label}: p50 (ms)`, agentorch: s("agentorch", "p50"), baseline: s("grpc-js", "p50"), baselineName: "bare grpc-js" },
        { name: `${label}: p99 (ms)`, agentorch: s("agentorch", "p99"), baseline: s("grpc-js", "p99"), baselineName: "bare grpc-js" },
        {
          name: `${label}: server CPU per call (µs)`,
          agentorch: s("agentorch", "cpuUsPerCall"),
          baseline: s("grpc-js", "cpuUsPerCall"),
          baselineName: "bare grpc-js",
          ratio: s("agentorch", "cpuUsPerCall").median / s("grpc-js", "cpuUsPerCall").median,
        },
      );
      if (!by["connect-floor"]) continue;
      figures.push(
        {
          name: `${label}: calls/s vs connect-node floor`,
          agentorch: ao,
          baseline: s("connect-floor", "callsPerSecond"),
          baselineName: "connect-node floor",
          ratio: ao.median / s("connect-floor", "callsPerSecond").median,
        },
        {
          name: `${label}: server CPU per call vs connect-node floor (µs)`,
          agentorch: s("agentorch", "cpuUsPerCall"),
          baseline: s("connect-floor", "cpuUsPerCall"),
          baselineName: "connect-node floor",
          ratio: s("agentorch", "cpuUsPerCall").median / s("connect-floor", "cpuUsPerCall").median,
        },
      );
    }
    return {
      id: "control-plane",
      title,
      figures,
      notes: [
        `${reps} run(s) per server and tool of ${durationS} s after ${warmupS} s warm-up, rotating the order; ${AGENTS} agents registered; h2load sends one agent id, the grpc-js client cycles through all.`,
        "connect-node floor: a connect-node server of GetAgent with none of agentorch's code (bench/connect-floor-server.ts), answering from memory.",
        ...(h2 ? [] : ["h2load is not installed (apt-get install -y nghttp2-client): only the grpc-js client ran."]),
      ],
      details: { results, h2load: h2 ?? null, h2Clients, h2Streams, jsConnections, jsInFlight },
    };
  } finally {
    client.close();
    for (const stop of stops.reverse()) await stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}
