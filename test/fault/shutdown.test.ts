/**
 * Graceful shutdown under load: SIGTERM while 24 clients register, start, stop, read,
 * send messages and hold watch streams. What must hold:
 * - every call ends OK or UNAVAILABLE (the server is going away), none hangs: calls in
 *   flight finish, new ones are refused;
 * - streams end cleanly (UNAVAILABLE or OK): long watches, a health watch (which first
 *   reports NOT_SERVING), a mailbox stream;
 * - the process exits 0;
 * - the next start on the same data directory adopts everything: each agent is exactly as
 *   the last OK answer left it (RUNNING on the same, still running container, or IDLE);
 *   nothing answered UNAVAILABLE took effect; every container is accounted for.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { expect, it } from "vitest";
import { describeDocker, TEST_IMAGE } from "../support/docker.js";
import { faultConfig, reportFigures } from "./support/fault-config.js";
import { useFaultFixture } from "./support/fixture.js";
import { serverStream } from "../support/grpc.js";
import { connect, grpc, streamEnd, unary } from "./support/grpc.js";
import { emptyStats, LoadClient, Registry } from "./support/load-clients.js";
import { containersOf, containerViolations, listAgents, settle, status } from "./support/world.js";

const cfg = faultConfig();
const fixture = useFaultFixture({ name: "shutdown", stopTimeoutMs: 30_000, teardownTimeoutMs: 180_000 });

const CLIENTS = 24;

describeDocker("graceful shutdown (SIGTERM) under load", () => {
  it("finishes in-flight calls, ends streams cleanly, exits 0, and the next start adopts everything", async () => {
    const first = fixture.spawn({ env: { AGENTORCH_SHUTDOWN_GRACE_MS: "20000" } });
    const info = await first.started;
    const instanceId = info.instanceId;
    const engine = fixture.engine;
    const tag = randomBytes(2).toString("hex");

    // Streams that must end cleanly when the server goes.
    const c = connect(info.address);
    await unary(c.orch, "RegisterAgent", { agent: { agent_id: `sd-${tag}-inbox`, image: TEST_IMAGE, command: ["sleep", "3600"] } });
    const healthStatuses: string[] = [];
    const healthWatch = serverStream<{ status: string }>(c.health, "Watch", { service: "" });
    healthWatch.on("data", (m) => healthStatuses.push(m.status));
    const healthEnd = streamEnd(healthWatch);
    const inbox = serverStream(c.life, "StreamMessages", { agent_id: `sd-${tag}-inbox` });
    inbox.on("data", () => undefined);
    const inboxEnd = streamEnd(inbox);

    // The load; UNAVAILABLE is the one error allowed, and only once the shutdown has begun.
    let terminatedAt = Number.POSITIVE_INFINITY;
    const stats = emptyStats();
    const registry = new Registry();
    const clients = Array.from(
      { length: CLIENTS },
      (_, i) =>
        new LoadClient({
          address: info.address,
          index: i,
          seed: cfg.seed + 7000 + i,
          prefix: `sd-${tag}`,
          registry,
          stats,
          longWatch: i % 3 === 0,
          deadlineMs: 60_000,
          tolerate: (code) => code === grpc.status.UNAVAILABLE && Date.now() >= terminatedAt,
        }),
    );
    const runs = clients.map((cl) => cl.run());
    await sleep(4000);

    terminatedAt = Date.now();
    first.kill("SIGTERM");
    const exit = await Promise.race([first.exited, sleep(45_000).then(() => undefined)]);
    const exitMs = Date.now() - terminatedAt;
    expect(exit, "the process exits after SIGTERM").toBeDefined();
    expect(exit!.code, "and exits 0").toBe(0);
    // Let the clients see the refusals, then stop them.
    await sleep(500);
    for (const cl of clients) cl.stop();
    await Promise.all(runs);
    for (const cl of clients) cl.close();

    const [health, inboxStatus] = await Promise.all([healthEnd, inboxEnd]);
    c.close();
    expect(healthStatuses[0]).toBe("SERVING");
    expect(healthStatuses.at(-1), "health says NOT_SERVING before its watch ends").toBe("NOT_SERVING");
    expect([grpc.status.OK, grpc.status.UNAVAILABLE]).toContain(health.code);
    expect(inboxStatus.code, inboxStatus.details).toBe(grpc.status.UNAVAILABLE);
    expect(stats.errors, "every call ended OK or UNAVAILABLE").toEqual([]);
    // Calls that were running when SIGTERM came were finished and answered.
    const okAfterSigterm = stats.okAt.filter((t) => t > terminatedAt).length;
    expect(okAfterSigterm, "in-flight calls answered OK after SIGTERM").toBeGreaterThan(0);
    expect(stats.deadlines, "no call hung").toBe(0);
    expect(Object.keys(stats.streamEnds).filter((k) => k !== "UNAVAILABLE" && k !== "OK"), "watch streams ended cleanly").toEqual([]);

    // ---- the next start adopts everything
    const second = fixture.spawn();
    const info2 = await second.started;
    expect(info2.instanceId).toBe(instanceId);
    const c2 = connect(info2.address);
    try {
      const acknowledged = new Map<string, { status: "idle" | "running"; containerId: string }>();
      for (const cl of clients) for (const [id, a] of cl.acknowledged) acknowledged.set(id, a);
      const { agents } = await listAgents(c2);
      const problems: string[] = [];
      for (const a of agents) {
        if (a.agent_id === `sd-${tag}-inbox`) continue;
        const want = acknowledged.get(a.agent_id);
        if (!want) problems.push(`agent ${a.agent_id} exists, but its registration never answered OK`);
        else if (want.status === "running" && (a.status !== status("running") || a.container_id !== want.containerId)) {
          problems.push(`agent ${a.agent_id}: last OK left it RUNNING on ${want.containerId.slice(0, 12)}, now ${a.status} on ${a.container_id.slice(0, 12)}`);
        } else if (want.status === "idle" && a.status !== status("idle")) problems.push(`agent ${a.agent_id}: last OK left it IDLE, now ${a.status}`);
      }
      for (const id of acknowledged.keys()) if (!agents.some((a) => a.agent_id === id)) problems.push(`acknowledged agent ${id} is missing`);
      expect(problems).toEqual([]);
      const violations = await settle(async () => containerViolations((await listAgents(c2)).agents, await containersOf(engine.docker, instanceId)), 20_000);
      expect(violations).toEqual([]);
      const adopted = agents.filter((a) => a.status === status("running")).length;
      reportFigures("shutdown", {
        clients: CLIENTS,
        exitCode: exit!.code,
        exitMs,
        callOutcomes: stats.outcomes,
        answeredOkAfterSigterm: okAfterSigterm,
        streamEnds: stats.streamEnds,
        agents: agents.length,
        adoptedRunning: adopted,
      });
      expect(adopted, "some agents were running to be adopted").toBeGreaterThan(0);
    } finally {
      c2.close();
    }
  }, 180_000);
});
