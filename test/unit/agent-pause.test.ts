/**
 * Idle agents paused instead of stopped (lifecycle.idle_action PAUSE), on the real SQLite
 * store and the fake backend: what pauses, what resumes, what stops from PAUSED, what the
 * engine does behind the service's back, and a restart finding paused containers. The
 * same promises against a real engine: test/integration/agent-pause.test.ts.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AgentConfigInput } from "../../src/core/agent-config.js";
import type { SubmitTaskInput } from "../../src/core/tasks/task-service.js";
import { closeCores, openAgentCore, openCore } from "../support/core-fixture.js";
import { rejection } from "../support/errors.js";

afterEach(closeCores);

const pausing = (agentId: string, extra: Partial<AgentConfigInput> = {}): AgentConfigInput => ({
  agentId,
  image: "busybox:test",
  command: ["sh", "-c", "sleep 3600"],
  lifecycle: { maxIdleMs: 60_000, idleAction: "pause" },
  ...extra,
});

async function pausedAgent(agentId = "p1") {
  const core = await openAgentCore({ agentConfig: { restartBackoffMs: 10 } });
  await core.agents.register(pausing(agentId));
  const running = await core.agents.start(agentId);
  core.clock.advance(61_000);
  expect(await core.agents.enforceLifecycle()).toEqual([agentId]);
  return { ...core, containerId: running.containerId };
}

describe("pause on idle", () => {
  it("freezes the container at max idle: PAUSED 'idle timeout', same container, token kept", async () => {
    const { agents, backend, containerId } = await pausedAgent();
    const a = agents.get("p1");
    expect(a).toMatchObject({ status: "paused", statusReason: "idle timeout", containerId });
    expect(a.tokenHash).not.toBe("");
    expect(backend.containers.get(containerId)).toMatchObject({ running: true, paused: true });
    expect(backend.calls).toContain(`pause ${containerId}`);
    expect(backend.calls.filter((c) => c.startsWith("remove"))).toEqual([]);
  });

  it("an agent without idle_action pause is still stopped", async () => {
    const { agents, clock, backend } = await openAgentCore();
    await agents.register(pausing("s1", { lifecycle: { maxIdleMs: 60_000 } }));
    await agents.start("s1");
    clock.advance(61_000);
    await agents.enforceLifecycle();
    expect(agents.get("s1")).toMatchObject({ status: "idle", statusReason: "idle timeout" });
    expect(backend.running()).toHaveLength(0);
  });

  it("a paused agent still reaches its max lifetime: TERMINATED, container removed", async () => {
    const { agents, clock, backend } = await openAgentCore();
    await agents.register(pausing("life", { lifecycle: { maxIdleMs: 60_000, maxLifetimeMs: 300_000, idleAction: "pause" } }));
    await agents.start("life");
    clock.advance(61_000);
    await agents.enforceLifecycle();
    expect(agents.get("life").status).toBe("paused");
    clock.advance(240_000);
    expect(await agents.enforceLifecycle()).toEqual(["life"]);
    expect(agents.get("life")).toMatchObject({ status: "terminated", statusReason: "max lifetime reached" });
    expect(backend.containers.size).toBe(0);
  });
});

describe("resume", () => {
  it("StartAgent resumes the same container: RUNNING, activity now, not a second container", async () => {
    const { agents, backend, clock, containerId } = await pausedAgent();
    const a = await agents.start("p1");
    expect(a).toMatchObject({ status: "running", statusReason: "resumed by a start", containerId, lastActivity: clock.now() });
    expect(backend.containers.get(containerId)?.paused).toBe(false);
    expect(backend.calls.filter((c) => c.startsWith("spawn"))).toHaveLength(1);
  });

  it("ReportActivity resumes it", async () => {
    const { agents, containerId, backend } = await pausedAgent();
    expect(await agents.touch("p1")).toMatchObject({ status: "running", statusReason: "resumed by reported activity" });
    expect(backend.containers.get(containerId)?.paused).toBe(false);
  });

  it("concurrent resumes share one unpause and all see RUNNING", async () => {
    const { agents, backend } = await pausedAgent();
    const all = await Promise.all([agents.start("p1"), agents.touch("p1"), agents.start("p1")]);
    expect(all.map((a) => a.status)).toEqual(["running", "running", "running"]);
    expect(backend.calls.filter((c) => c.startsWith("unpause"))).toHaveLength(1);
  });

  it("resumeSoon (a message) resumes in the background; a running agent is left alone", async () => {
    const { agents } = await pausedAgent();
    agents.pauses.resumeSoon("p1", "resumed by a message");
    await vi.waitFor(() => expect(agents.get("p1")).toMatchObject({ status: "running", statusReason: "resumed by a message" }));
    agents.pauses.resumeSoon("p1", "again");
    expect(agents.get("p1").statusReason).toBe("resumed by a message");
  });

  it("a paused agent whose container is gone cannot be resumed: FAILED_PRECONDITION saying so", async () => {
    const { agents, backend, containerId } = await pausedAgent();
    backend.vanish(containerId);
    const err = await rejection(agents.start("p1"));
    expect(err.kind).toBe("failed_precondition");
    expect(err.message).toContain("container is gone");
  });
});

describe("stop and remove from PAUSED", () => {
  it("StopAgent removes the paused container: IDLE", async () => {
    const { agents, backend } = await pausedAgent();
    expect(await agents.stop("p1")).toMatchObject({ status: "idle", tokenHash: "" });
    expect(backend.containers.size).toBe(0);
  });

  it("RemoveAgent removes container and agent", async () => {
    const { agents, backend } = await pausedAgent();
    await agents.remove("p1", { deleteWorkspace: true });
    expect(agents.find("p1")).toBeUndefined();
    expect(backend.containers.size).toBe(0);
  });

  it("a paused agent counts against the running-agent limit", async () => {
    const core = await openAgentCore({ agentConfig: { maxRunning: 1 } });
    await core.agents.register(pausing("p1"));
    await core.agents.register(pausing("p2"));
    await core.agents.start("p1");
    core.clock.advance(61_000);
    await core.agents.enforceLifecycle();
    expect(core.agents.get("p1").status).toBe("paused");
    expect((await rejection(core.agents.start("p2"))).kind).toBe("resource_exhausted");
  });
});

describe("the engine behind the service's back", () => {
  it("an unpause from outside is noticed: RUNNING 'unpaused outside agentorch'", async () => {
    const { agents, backend, containerId } = await pausedAgent();
    backend.setPaused(backend.containers.get(containerId)!, false);
    await vi.waitFor(() => expect(agents.get("p1")).toMatchObject({ status: "running", statusReason: "unpaused outside agentorch" }));
  });

  it("a pause from outside is noticed: PAUSED 'paused outside agentorch'", async () => {
    const { agents, backend } = await openAgentCore();
    await agents.register(pausing("p1"));
    const a = await agents.start("p1");
    backend.setPaused(backend.containers.get(a.containerId)!, true);
    await vi.waitFor(() => expect(agents.get("p1")).toMatchObject({ status: "paused", statusReason: "paused outside agentorch" }));
  });

  it("a paused container killed from outside: FAILED like a running one", async () => {
    const { agents, backend, containerId } = await pausedAgent();
    backend.exit(containerId, 137);
    await vi.waitFor(() => expect(agents.get("p1").status).toBe("failed"));
  });

  it("a restart adopts a paused container as PAUSED, and one unpaused while the service was down as RUNNING", async () => {
    const first = await pausedAgent("p1");
    await first.agents.register(pausing("p2"));
    await first.agents.start("p2");
    first.clock.advance(61_000);
    await first.agents.enforceLifecycle();
    await first.close();
    const p2 = first.store.getAgent("p2")!;
    first.backend.setPaused(first.backend.containers.get(p2.containerId)!, false);
    const second = await openAgentCore({ store: first.store, backend: first.backend, clock: first.clock });
    expect(second.agents.get("p1")).toMatchObject({ status: "paused", containerId: first.containerId });
    expect(second.agents.get("p2")).toMatchObject({ status: "running", statusReason: "unpaused outside agentorch" });
    expect(first.backend.containers.size).toBe(2);
  });
});

describe("tasks", () => {
  it("a task for a paused agent replaces its container with the task's, and the task completes", async () => {
    const { agents, tasks, backend, clock } = await openCore();
    await agents.register(pausing("worker"));
    const first = await agents.start("worker");
    clock.advance(61_000);
    await agents.enforceLifecycle();
    const input: SubmitTaskInput = { directive: { goal: "g", constraints: [], acceptanceCriteria: [] }, agentId: "worker", priority: "normal", timeoutMs: 0 };
    const task = await tasks.submit(input);
    const c = await vi.waitFor(() => {
      const found = [...backend.containers.values()].find((x) => x.spec.labels.taskId === task.taskId);
      if (!found) throw new Error(`not started: ${JSON.stringify(tasks.get(task.taskId))} ${JSON.stringify(agents.get("worker"))}`);
      return found;
    });
    expect(backend.containers.has(first.containerId)).toBe(false);
    backend.exit(c.id, 0);
    await vi.waitFor(() => expect(tasks.get(task.taskId).state).toBe("completed"));
  });
});
