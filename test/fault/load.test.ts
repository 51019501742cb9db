/**
 * Load: 64 concurrent clients (each its own HTTP/2 connection) mix registrations, starts,
 * stops, reads, watches and messages against the real process for a bounded time
 * (AGENTORCH_FAULT_LOAD_SECONDS; CI ~20 s). A quarter of them start and stop containers:
 * all 64 doing it make the engine, not the service, the bottleneck, and the engine of
 * Debian's docker.io 20.10 deadlocks under minutes of such churn (see support/engine.ts).
 * What must hold:
 * - no unexpected error, and no call that waited out its deadline (a deadlock shows so);
 * - long-lived watchers see every revision once, in order (or are cut off for being slow
 *   and resume, as the API says);
 * - the heap after a full GC is back near the baseline measured before the load (the
 *   process runs with a test-only GC probe); RSS is reported;
 * - every container is accounted for: each belongs to a RUNNING agent and each RUNNING
 *   agent has its container.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { expect, it } from "vitest";
import { describeDocker } from "../support/docker.js";
import { assertEngineResponsive } from "./support/engine.js";
import { faultConfig, reportFigures } from "./support/fault-config.js";
import { useFaultFixture } from "./support/fixture.js";
import { connect, healthOf, unary } from "./support/grpc.js";
import { emptyStats, LoadClient, percentiles, Registry } from "./support/load-clients.js";
import type { MemorySample } from "./support/service.js";
import { containersOf, containerViolations, listAgents, settle } from "./support/world.js";

const cfg = faultConfig();
const fixture = useFaultFixture({ name: "load", stopTimeoutMs: 30_000, teardownTimeoutMs: 180_000 });

const MB = 1024 * 1024;

/** Runs `clients` for `seconds`; returns their stats. */
async function runLoad(address: string, clients: number, seconds: number, seed: number, prefix: string, registry: Registry) {
  const stats = emptyStats();
  const all = Array.from(
    { length: clients },
    (_, i) =>
      new LoadClient({ address, index: i, seed: seed + i, prefix, registry, stats, longWatch: i % 4 === 0, containers: i % 4 === 1, deadlineMs: 60_000 }),
  );
  const runs = all.map((c) => c.run());
  await sleep(seconds * 1000);
  for (const c of all) c.stop();
  await Promise.all(runs);
  for (const c of all) c.close();
  return stats;
}

describeDocker("load: many concurrent clients", () => {
  it(`holds ${cfg.loadClients} clients for ${cfg.loadSeconds} s: no unexpected error, no deadlock, memory back to baseline, every container accounted for`, async () => {
    const proc = fixture.spawn({ gcProbe: true, env: { AGENTORCH_MAX_RUNNING: "1000" } });
    const info = await proc.started;
    const instanceId = info.instanceId;
    const engine = fixture.engine;
    const registry = new Registry();
    const tag = randomBytes(2).toString("hex");

    // Warm-up (a few clients), so the baseline includes what the first calls load once.
    const warm = await runLoad(info.address, 8, 3, cfg.seed, `lw${tag}`, registry);
    expect(warm.errors).toEqual([]);
    await sleep(1000);
    const baseline: MemorySample = await proc.memory();

    const started = Date.now();
    const stats = await runLoad(info.address, cfg.loadClients, cfg.loadSeconds, cfg.seed + 1000, `ld${tag}`, registry);
    const seconds = (Date.now() - started) / 1000;
    const endOfLoad = await proc.memory();
    const loadWallMs = seconds * 1000;
    const service = {
      cpuPercent: Math.round(((endOfLoad.cpuUserMs + endOfLoad.cpuSystemMs - baseline.cpuUserMs - baseline.cpuSystemMs) / loadWallMs) * 100),
      eventLoopBusyPercent: Math.round(((endOfLoad.eventLoopActiveMs - baseline.eventLoopActiveMs) / loadWallMs) * 100),
    };

    // Not stuck: it answers at once after the load.
    const c = connect(info.address);
    try {
      expect(await healthOf(c, "")).toBe("SERVING");
      await assertEngineResponsive(engine.docker);
      const violations = await settle(async () => containerViolations((await listAgents(c)).agents, await containersOf(engine.docker, instanceId)), 30_000);
      expect(violations, "every container is accounted for").toEqual([]);
      const { agents } = await listAgents(c);
      const running = agents.filter((a) => a.status === "AGENT_STATUS_RUNNING").length;
      expect((await containersOf(engine.docker, instanceId)).length).toBe(running);

      await sleep(2000);
      const after = await proc.memory();
      const totalOps = Object.values(stats.ops).reduce((a, b) => a + b, 0);
      reportFigures("load", {
        clients: cfg.loadClients,
        seconds: Math.round(seconds),
        ops: totalOps,
        opsPerSecond: Math.round(totalOps / seconds),
        byOp: Object.fromEntries(Object.entries(stats.latencies).map(([k, v]) => [k, percentiles(v)])),
        service,
        watchEvents: stats.watchEvents,
        watchResumes: stats.watchResumes,
        agents: agents.length,
        runningAtEnd: running,
        errors: stats.errors.length,
        deadlines: stats.deadlines,
        memory: {
          baselineHeapMB: +(baseline.heapUsed / MB).toFixed(1),
          afterHeapMB: +(after.heapUsed / MB).toFixed(1),
          baselineRssMB: +(baseline.rss / MB).toFixed(1),
          afterRssMB: +(after.rss / MB).toFixed(1),
        },
      });
      expect(stats.errors, "no unexpected error").toEqual([]);
      expect(stats.deadlines, "no call waited out its deadline").toBe(0);
      expect(stats.watchProblems, "watchers see every revision once, in order").toEqual([]);
      expect(stats.ops.start ?? 0).toBeGreaterThan(0);
      expect(stats.ops.send ?? 0).toBeGreaterThan(0);
      // What the load left behind is data (agents, messages), not retained heap: after a full
      // GC the heap is back near its baseline. The bound allows for the registry's own
      // growth and V8's bookkeeping, and is far below what leaked streams or buffers would hold.
      expect(after.heapUsed - baseline.heapUsed, `heap ${baseline.heapUsed} -> ${after.heapUsed}`).toBeLessThan(24 * MB);
      // The process is still the one that started.
      expect(proc.hasExited).toBe(false);
      await unary(c.orch, "ListAgents", { page_size: 1 }, 5_000);
    } finally {
      c.close();
    }
  }, 180_000 + cfg.loadSeconds * 2000);
});
