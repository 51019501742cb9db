/**
 * Domain rules of AgentService, on the real SQLite store (in memory) and a fake
 * container backend. The Docker adapter's own promises are tested against a real
 * engine in test/integration.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AgentServiceConfig } from "../../src/core/agent-service.js";
import type { AgentConfigInput } from "../../src/core/agent-config.js";
import { unavailable } from "../../src/core/errors.js";
import type { FakeBackend } from "../fakes/fake-backend.js";
import { closeCores, type CoreOptions, openAgentCore } from "../support/core-fixture.js";
import { rejection } from "../support/errors.js";

/** AgentService alone on a core; shared: an earlier core's store, backend and clock (a restart). */
async function makeService(config: Partial<AgentServiceConfig> = {}, shared: Pick<CoreOptions, "store" | "backend" | "clock"> = {}) {
  const core = await openAgentCore({ ...shared, agentConfig: { restartBackoffMs: 10, ...config } });
  return { ...core, service: core.agents };
}

afterEach(closeCores);

/** Holds every spawn until it is released (or the gate removed); the returned function releases the latest. */
function gateSpawns(backend: FakeBackend): () => void {
  let release: () => void = () => {};
  backend.spawnGate = (r) => {
    release = r;
  };
  return () => release();
}

const cfg = (agentId: string, extra: Partial<AgentConfigInput> = {}): AgentConfigInput => ({
  agentId,
  image: "busybox:test",
  command: ["sh", "-c", "sleep 3600"],
  ...extra,
});

describe("registration", () => {
  it.each(["", "a".repeat(65), "..", "a/b", "a\\b", "a_b", "a b", "a@b", "ü"])("refuses agent id %j", async (id) => {
    const { service, store } = await makeService();
    expect((await rejection(service.register(cfg(id)))).kind).toBe("invalid_argument");
    expect(store.countAgents()).toBe(0);
  });

  it("accepts 1 and 64 characters of letters, digits and '-'", async () => {
    const { service } = await makeService();
    await service.register(cfg("a"));
    await service.register(cfg(`A-9${"x".repeat(61)}`));
    expect(service.list({ pageSize: 0, pageToken: "" }).agents).toHaveLength(2);
  });

  it.each(["LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV", "HTTP_PROXY", "https_proxy", "AGENTORCH_TOKEN", "agentorch_x"])(
    "refuses reserved env name %s instead of dropping it",
    async (name) => {
      const { service, store } = await makeService();
      const r = await rejection(service.register(cfg("env-agent", { env: { [name]: "x" } })));
      expect(r.kind).toBe("invalid_argument");
      expect(r.message).toContain(name);
      expect(store.countAgents()).toBe(0);
    },
  );

  it("fills the defaults of the source system", async () => {
    const { service, workspaces } = await makeService();
    const a = await service.register(cfg("defaults"));
    expect(a.status).toBe("idle");
    // One core unless asked: an agent no longer gets every core by default (issue 12 item 6).
    expect(a.config.resources).toEqual({ memoryBytes: 512 * 1024 * 1024, cpus: 1, pidsLimit: 256, maxOutputBytes: 256 * 1024 });
    expect(a.config.lifecycle).toEqual({ maxIdleMs: 3_600_000, maxLifetimeMs: 0, restartOnCrash: false, maxRestarts: 3, idleAction: "stop" });
    expect(a.config.workspace).toEqual({ mountPoint: "/workspace", readOnly: false, noexec: false });
    expect(a.config.policy).toBe("container");
    expect(workspaces.dirs.has("defaults")).toBe(true);
  });

  it("refuses a duplicate with already_exists and keeps the first", async () => {
    const { service } = await makeService();
    await service.register(cfg("dup", { name: "first" }));
    expect((await rejection(service.register(cfg("dup", { name: "second" })))).kind).toBe("already_exists");
    expect(service.get("dup").config.name).toBe("first");
  });

  it("bounds every string, list and map", async () => {
    const { service } = await makeService();
    const cases: Partial<AgentConfigInput>[] = [
      { name: "n".repeat(257) },
      { image: "i".repeat(513) },
      { command: Array.from({ length: 257 }, () => "x") },
      { command: ["x".repeat(4097)] },
      { env: Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`V${i}`, "x"])) },
      { env: { V: "x".repeat(32 * 1024 + 1) } },
      { workspace: { mountPoint: "relative" } },
      { workspace: { mountPoint: "/a/../etc" } },
      { resources: { memoryBytes: 1 } },
      { resources: { cpus: -1 } },
      { lifecycle: { maxRestarts: -1 } },
      { policy: "unknown" },
    ];
    for (const c of cases) expect((await rejection(service.register(cfg("bounded", c)))).kind, JSON.stringify(c).slice(0, 80)).toBe("invalid_argument");
  });

  it("enforces the image allowlist on path boundaries", async () => {
    const { service, backend } = await makeService({ imageAllowlist: ["registry.local/agents", "busybox:"] });
    backend.images.add("registry.local/agents/x:1");
    await service.register(cfg("ok1", { image: "registry.local/agents/x:1" }));
    await service.register(cfg("ok2", { image: "busybox:test" }));
    expect((await rejection(service.register(cfg("bad", { image: "registry.local/agents-evil/x:1" })))).kind).toBe("permission_denied");
  });

  it("answers NOT_FOUND for unknown agents on every operation", async () => {
    const { service } = await makeService();
    expect((await rejection(() => service.get("nope"))).kind).toBe("not_found");
    expect((await rejection(service.start("nope"))).kind).toBe("not_found");
    expect((await rejection(service.stop("nope"))).kind).toBe("not_found");
    expect((await rejection(service.remove("nope", { deleteWorkspace: false }))).kind).toBe("not_found");
    expect((await rejection(service.output("nope", 0))).kind).toBe("not_found");
  });
});

describe("start and stop", () => {
  it("runs a whole lifecycle and counts restarts and executions", async () => {
    const { service, backend } = await makeService();
    await service.register(cfg("life"));
    const started = await service.start("life");
    expect(started.status).toBe("running");
    expect(started.containerId).toMatch(/^fake/);
    expect(started.executionCount).toBe(1);
    expect(started.restartCount).toBe(0);
    expect(started.startedAt).toBeDefined();
    expect(started.lastActivity).toBe(started.startedAt);
    expect(backend.running()).toHaveLength(1);
    const spec = backend.running()[0]?.spec;
    expect(spec?.env.AGENTORCH_AGENT_ID).toBe("life");
    expect(spec?.env.AGENTORCH_TOKEN).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(service.get("life").tokenHash).not.toContain(spec?.env.AGENTORCH_TOKEN);

    const stopped = await service.stop("life");
    expect(stopped.status).toBe("idle");
    expect(stopped.tokenHash).toBe("");
    expect(backend.containers.size).toBe(0);

    const again = await service.start("life");
    expect(again.restartCount).toBe(1);
    expect(again.executionCount).toBe(2);
    expect(again.containerId).not.toBe(started.containerId);
  });

  it("says 'invalid state' for start while running and stop while idle", async () => {
    const { service } = await makeService();
    await service.register(cfg("state"));
    const stopIdle = await rejection(service.stop("state"));
    expect(stopIdle).toMatchObject({ kind: "failed_precondition" });
    expect(stopIdle.message).toContain("invalid state");
    await service.start("state");
    const startRunning = await rejection(service.start("state"));
    expect(startRunning.kind).toBe("failed_precondition");
    expect(startRunning.message).toContain("invalid state");
  });

  it("reverts a failed spawn to the previous state with the reason", async () => {
    const { service, backend } = await makeService();
    await service.register(cfg("spawnfail"));
    backend.spawnError = new Error("no space left on device");
    await expect(service.start("spawnfail")).rejects.toThrow("no space left");
    const a = service.get("spawnfail");
    expect(a.status).toBe("idle");
    expect(a.statusReason).toContain("no space left");
    expect(a.executionCount).toBe(0);
  });

  it("reports a missing image as FAILED_PRECONDITION and stays IDLE", async () => {
    const { service } = await makeService();
    await service.register(cfg("noimage", { image: "nothere:1" }));
    expect((await rejection(service.start("noimage"))).kind).toBe("failed_precondition");
    expect(service.get("noimage").status).toBe("idle");
  });

  it("leaves the agent IDLE when the kill fails, and the reaper removes the container later", async () => {
    const { service, backend, store } = await makeService();
    await service.register(cfg("killfail"));
    const { containerId } = await service.start("killfail");
    backend.removeError = new Error("device busy");
    const stopped = await service.stop("killfail");
    expect(stopped.status).toBe("idle");
    expect(store.pendingRemovals()).toEqual([{ containerId, agentId: "killfail" }]);
    expect(backend.containers.has(containerId)).toBe(true);
    backend.removeError = undefined;
    await service.enforceLifecycle();
    expect(backend.containers.has(containerId)).toBe(false);
    expect(store.pendingRemovals()).toEqual([]);
  });

  it("gives exactly one OK to two concurrent stops, and to two concurrent starts", async () => {
    const { service } = await makeService();
    await service.register(cfg("race"));
    const starts = await Promise.allSettled([service.start("race"), service.start("race")]);
    expect(starts.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const stops = await Promise.allSettled([service.stop("race"), service.stop("race")]);
    expect(stops.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const failed = stops.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(failed.reason.kind).toBe("failed_precondition");
    expect(service.get("race").status).toBe("idle");
  });

  it("counts the running limit atomically", async () => {
    const { service, backend } = await makeService({ maxRunning: 2 });
    for (const id of ["l1", "l2", "l3", "l4"]) await service.register(cfg(id));
    const results = await Promise.allSettled(["l1", "l2", "l3", "l4"].map((id) => service.start(id)));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(2);
    for (const r of results.filter((r) => r.status === "rejected")) expect((r as PromiseRejectedResult).reason.kind).toBe("resource_exhausted");
    expect(backend.running()).toHaveLength(2);
  });

  it("never holds a lock across the engine call: other agents proceed while one start waits", async () => {
    const { service, backend } = await makeService();
    await service.register(cfg("slow"));
    await service.register(cfg("fast"));
    const release = gateSpawns(backend);
    const slow = service.start("slow");
    await vi.waitFor(() => expect(service.get("slow").status).toBe("starting"));
    backend.spawnGate = undefined;
    expect((await service.start("fast")).status).toBe("running");
    expect(service.get("slow").status).toBe("starting");
    release();
    expect((await slow).status).toBe("running");
  });

  it("remove kills a running container and keeps the workspace unless asked", async () => {
    const { service, backend, workspaces } = await makeService();
    await service.register(cfg("rm1"));
    await service.register(cfg("rm2"));
    await service.start("rm1");
    const removed = await service.remove("rm1", { deleteWorkspace: false });
    expect(backend.containers.size).toBe(0);
    // Kept, but moved aside: a later agent of the same id starts with an empty workspace.
    expect(removed.keptWorkspace).toBe("/fake/workspaces-removed/rm1");
    expect(workspaces.dirs.has("rm1")).toBe(false);
    await service.remove("rm2", { deleteWorkspace: true });
    expect(workspaces.dirs.has("rm2")).toBe(false);
    expect((await rejection(() => service.get("rm1"))).kind).toBe("not_found");
  });

  it("answers UNAVAILABLE for container calls when the engine is down, while reads keep working", async () => {
    const { service, backend } = await makeService();
    await service.register(cfg("down"));
    backend.setDown(true);
    expect(service.engineHealthy()).toBe(false);
    expect((await rejection(service.start("down"))).kind).toBe("unavailable");
    expect(service.get("down").status).toBe("idle");
    expect(service.list({ pageSize: 10, pageToken: "" }).agents).toHaveLength(1);
    backend.setDown(false);
    expect(service.engineHealthy()).toBe(true);
    expect((await service.start("down")).status).toBe("running");
  });
});

describe("output", () => {
  it("reads live output, caps it, and keeps the last output after the container is gone", async () => {
    const { service, backend } = await makeService();
    await service.register(cfg("out", { resources: { maxOutputBytes: 1024 } }));
    expect((await rejection(service.output("out", 0))).kind).toBe("failed_precondition");
    const { containerId } = await service.start("out");
    backend.write(containerId, `${"x".repeat(2000)}END`);
    const live = await service.output("out", 0);
    expect(live.data.byteLength).toBe(1024);
    expect(live.truncated).toBe(true);
    expect(Buffer.from(live.data).toString().endsWith("END")).toBe(true);
    expect(Buffer.from((await service.output("out", 3)).data).toString()).toBe("END");
    await service.stop("out");
    const saved = await service.output("out", 10);
    expect(Buffer.from(saved.data).toString()).toBe("xxxxxxxEND");
    expect(saved.truncated).toBe(true);
  });
});

describe("container exits", () => {
  it("exit 0 -> IDLE, exit 3 -> FAILED with the code, OOM -> FAILED saying OOM", async () => {
    const { service, backend } = await makeService();
    for (const id of ["e0", "e3", "oom"]) await service.register(cfg(id));
    const c0 = (await service.start("e0")).containerId;
    const c3 = (await service.start("e3")).containerId;
    const co = (await service.start("oom")).containerId;
    backend.exit(c0, 0);
    backend.exit(c3, 3);
    backend.exit(co, 137, true);
    await vi.waitFor(() => {
      expect(service.get("e0")).toMatchObject({ status: "idle", exitCode: 0 });
      expect(service.get("e3")).toMatchObject({ status: "failed", exitCode: 3, statusReason: "exited with code 3" });
      expect(service.get("oom").status).toBe("failed");
      expect(service.get("oom").statusReason).toContain("OOM");
    });
    await vi.waitFor(() => expect(backend.containers.size).toBe(0));
    expect((await service.start("e3")).status).toBe("running");
  });

  it("takes a container the engine is still removing for lost, not for a kill (a slow `docker rm -f`)", async () => {
    const { service, backend } = await makeService();
    await service.register(cfg("slowrm"));
    const a = await service.start("slowrm");
    backend.removeSlowlyFromOutside(a.containerId);
    await vi.waitFor(() => expect(service.get("slowrm")).toMatchObject({ status: "failed", statusReason: "container lost" }));
  });

  it("marks an agent whose container was removed from outside FAILED with 'container lost'", async () => {
    const { service, backend } = await makeService();
    await service.register(cfg("removed"));
    const { containerId } = await service.start("removed");
    backend.removeFromOutside(containerId);
    await vi.waitFor(() => expect(service.get("removed")).toMatchObject({ status: "failed", statusReason: "container lost" }));
  });

  it("handles an exit that arrives before the start is recorded", async () => {
    const { service, backend } = await makeService();
    await service.register(cfg("instant"));
    backend.exitDuringSpawn = 0;
    await service.start("instant");
    await vi.waitFor(() => expect(service.get("instant")).toMatchObject({ status: "idle", exitCode: 0 }));
    await service.register(cfg("quick"));
    const release = gateSpawns(backend);
    const starting = service.start("quick");
    await vi.waitFor(() => expect(service.get("quick").status).toBe("starting"));
    backend.spawnGate = undefined;
    release();
    const started = await starting;
    backend.exit(started.containerId, 5);
    await vi.waitFor(() => expect(service.get("quick")).toMatchObject({ status: "failed", exitCode: 5 }));
  });

  it("restarts a crashed agent with backoff, up to max_restarts", async () => {
    const { service, backend } = await makeService();
    await service.register(cfg("crashy", { lifecycle: { restartOnCrash: true, maxRestarts: 2 } }));
    let cid = (await service.start("crashy")).containerId;
    for (let i = 1; i <= 2; i++) {
      backend.exit(cid, 1);
      await vi.waitFor(() => expect(service.get("crashy")).toMatchObject({ status: "running", crashRestarts: i }));
      cid = service.get("crashy").containerId;
    }
    backend.exit(cid, 1);
    await vi.waitFor(() => expect(service.get("crashy").status).toBe("failed"));
    await new Promise((r) => setTimeout(r, 100));
    expect(service.get("crashy").status).toBe("failed");
    expect(service.get("crashy").restartCount).toBe(2);
  });

  it("does not restart without restart_on_crash", async () => {
    const { service, backend } = await makeService();
    await service.register(cfg("norestart"));
    backend.exit((await service.start("norestart")).containerId, 1);
    await vi.waitFor(() => expect(service.get("norestart").status).toBe("failed"));
    await new Promise((r) => setTimeout(r, 60));
    expect(service.get("norestart").status).toBe("failed");
  });
});

describe("lifecycle enforcement", () => {
  it("stops idle agents and terminates those past their lifetime, measured from the start", async () => {
    const { service, backend, clock } = await makeService();
    await service.register(cfg("idle1", { lifecycle: { maxIdleMs: 60_000 } }));
    await service.register(cfg("life1", { lifecycle: { maxIdleMs: 0, maxLifetimeMs: 120_000 } }));
    await service.register(cfg("busy1", { lifecycle: { maxIdleMs: 60_000 } }));
    clock.advance(600_000); // registration long ago must not count against the lifetime
    await service.start("idle1");
    await service.start("life1");
    await service.start("busy1");
    expect(await service.enforceLifecycle()).toEqual([]);
    clock.advance(59_000);
    await service.touch("busy1");
    clock.advance(2_000);
    expect(await service.enforceLifecycle()).toEqual(["idle1"]);
    expect(service.get("idle1")).toMatchObject({ status: "idle", statusReason: "idle timeout" });
    clock.advance(60_000);
    expect((await service.enforceLifecycle()).sort()).toEqual(["busy1", "life1"]);
    expect(service.get("life1")).toMatchObject({ status: "terminated", statusReason: "max lifetime reached" });
    expect(backend.running()).toHaveLength(0);
    const r = await rejection(service.start("life1"));
    expect(r.kind).toBe("failed_precondition");
    expect(r.message).toContain("TERMINATED");
  });

  it("runs on a timer too", async () => {
    const { service, clock } = await makeService({ enforceIntervalMs: 20 });
    await service.register(cfg("timed", { lifecycle: { maxIdleMs: 1000 } }));
    await service.start("timed");
    clock.advance(5000);
    await vi.waitFor(() => expect(service.get("timed").status).toBe("idle"));
  });
});

describe("restart of the service", () => {
  it("adopts running containers, removes orphans and marks vanished containers lost", async () => {
    const first = await makeService();
    const { store, backend, clock } = first;
    for (const id of ["keep", "gone", "late"]) await first.service.register(cfg(id));
    const keep = await first.service.start("keep");
    const gone = await first.service.start("gone");
    const late = await first.service.start("late");
    await first.close();
    // While the service is down: one container vanishes, one exits, and an orphan appears.
    backend.vanish(gone.containerId);
    backend.exit(late.containerId, 2);
    const orphan = await backend.spawn({ ...backend.containers.get(keep.containerId)!.spec, labels: { agentId: "unknown-agent", instanceId: "test-instance" } });
    const foreign = await backend.spawn({ ...backend.containers.get(keep.containerId)!.spec, labels: { agentId: "x", instanceId: "other-instance" } });

    const second = await makeService({}, { store, backend, clock });
    expect(second.service.get("keep")).toMatchObject({ status: "running", containerId: keep.containerId });
    expect(second.service.get("gone")).toMatchObject({ status: "failed", statusReason: "container lost" });
    expect(second.service.get("late")).toMatchObject({ status: "failed", exitCode: 2 });
    expect(backend.containers.has(orphan.containerId)).toBe(false);
    expect(backend.containers.has(foreign.containerId)).toBe(true);
    expect(backend.containers.has(keep.containerId)).toBe(true);
    // Adopted containers are still supervised.
    backend.exit(keep.containerId, 0);
    await vi.waitFor(() => expect(second.service.get("keep").status).toBe("idle"));
  });
});

describe("list", () => {
  it("pages in a stable order with a status filter, and refuses bogus tokens", async () => {
    const { service } = await makeService();
    for (let i = 0; i < 25; i++) await service.register(cfg(`p-${String(i).padStart(2, "0")}`));
    for (let i = 0; i < 5; i++) await service.start(`p-${String(i * 5).padStart(2, "0")}`);
    const seen: string[] = [];
    let token = "";
    do {
      const page = service.list({ pageSize: 7, pageToken: token });
      seen.push(...page.agents.map((a) => a.config.agentId));
      token = page.nextPageToken;
      expect(page.revision).toBeGreaterThan(0);
    } while (token);
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(25);
    const running = service.list({ pageSize: 2, pageToken: "", status: "running" });
    expect(running.agents.map((a) => a.config.agentId)).toEqual(["p-00", "p-05"]);
    expect((await rejection(() => service.list({ pageSize: 2, pageToken: running.nextPageToken }))).kind).toBe("invalid_argument");
    expect((await rejection(() => service.list({ pageSize: 2, pageToken: "bogus!!" }))).kind).toBe("invalid_argument");
    expect((await rejection(() => service.list({ pageSize: 5000, pageToken: "" }))).kind).toBe("invalid_argument");
    expect((await rejection(() => service.list({ pageSize: -1, pageToken: "" }))).kind).toBe("invalid_argument");
  });

  it("publishes one event per committed change, with gap-free revisions", async () => {
    const { service, events } = await makeService();
    await service.register(cfg("ev"));
    await service.start("ev");
    await service.stop("ev");
    await service.remove("ev", { deleteWorkspace: false });
    expect(events.map((e) => [e.type, (e.entity as { status: string }).status])).toEqual([
      ["added", "idle"],
      ["changed", "starting"],
      ["changed", "running"],
      ["changed", "stopping"],
      ["changed", "idle"],
      ["removed", "idle"],
    ]);
    const revs = events.map((e) => e.revision);
    expect(revs).toEqual(revs.map((_, i) => revs[0]! + i));
  });
});

describe("store failures", () => {
  it("a start whose outcome cannot be stored leaves no container behind", async () => {
    const { service, backend, store } = await makeService();
    await service.register(cfg("diskfull"));
    const realUpdate = store.updateAgent.bind(store);
    let calls = 0;
    store.updateAgent = (a) => {
      calls++;
      if (calls === 2) throw unavailable("store write failed: SQLITE_FULL");
      return realUpdate(a);
    };
    expect((await rejection(service.start("diskfull"))).kind).toBe("unavailable");
    store.updateAgent = realUpdate;
    expect(backend.containers.size).toBe(0);
  });
});

describe("task reservations (the verbs TaskService writes agents through)", () => {
  it("reserves an idle agent for one task at a time, and only that task releases it", async () => {
    const { service } = await makeService();
    await service.register(cfg("res-a"));
    expect(service.availableForTask("res-a").config.agentId).toBe("res-a");
    expect(service.reserveForTask("res-a", "task-1").currentTaskId).toBe("task-1");
    const busy = (() => {
      try {
        service.reserveForTask("res-a", "task-2");
      } catch (err) {
        return err as { kind: string; message: string };
      }
    })();
    expect(busy?.kind).toBe("failed_precondition");
    expect(busy?.message).toContain("busy with task task-1");
    expect(() => service.availableForTask("res-a")).toThrow(/busy with task task-1/);
    // A start that is not the task's is refused while it is reserved.
    expect((await rejection(service.start("res-a"))).kind).toBe("failed_precondition");

    expect(service.releaseFromTask("res-a", "task-2"), "another task cannot release it").toBeUndefined();
    expect(service.get("res-a").currentTaskId).toBe("task-1");
    expect(service.releaseFromTask("res-a", "task-1")?.currentTaskId).toBeUndefined();
    expect(service.get("res-a").currentTaskId).toBeUndefined();
    expect(service.releaseFromTask("gone", "task-1")).toBeUndefined();
  });

  it("refuses a running agent, and restores a reservation at recovery only when the agent is free", async () => {
    const { service } = await makeService();
    await service.register(cfg("res-b"));
    await service.start("res-b");
    expect(() => service.reserveForTask("res-b", "task-1")).toThrow(/RUNNING: a task needs an IDLE, FAILED or PAUSED agent/);
    service.restoreReservation("res-b", "task-1");
    expect(service.get("res-b").currentTaskId).toBe("task-1");
    service.restoreReservation("res-b", "task-2");
    expect(service.get("res-b").currentTaskId, "held by the first task").toBe("task-1");
    service.restoreReservation("absent", "task-3");
    expect(service.find("absent")).toBeUndefined();
  });

  it("counts a failed run as an execution, and lists ephemeral agents", async () => {
    const { service } = await makeService();
    await service.register(cfg("res-c"));
    await service.registerEphemeral(cfg("eph-c"));
    service.recordFailedRun("res-c");
    expect(service.get("res-c").executionCount).toBe(1);
    expect(service.ephemeralAgents().map((a) => a.config.agentId)).toEqual(["eph-c"]);
  });
});
