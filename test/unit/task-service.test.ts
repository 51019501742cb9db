/**
 * Task rules on the real SQLite store and a fake container backend: scheduling order,
 * live limits, timeouts, cancel, retry feedback, zombies and recovery after a restart.
 * The same promises are checked against a real engine in test/integration/tasks.test.ts.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { isAgentorchError } from "../../src/core/errors.js";
import type { SubmitTaskInput, TaskService } from "../../src/core/tasks/task-service.js";
import type { Task } from "../../src/core/tasks/task.js";
import type { FakeBackend } from "../fakes/fake-backend.js";
import { closeCores, openCore } from "../support/core-fixture.js";

afterEach(closeCores);

const template = { image: "busybox:test", command: ["sh", "-c", "run"] };
const submit = (extra: Partial<SubmitTaskInput> = {}): SubmitTaskInput => ({
  directive: { goal: "write a test", constraints: ["be brief"], acceptanceCriteria: ["prints ok"] },
  template,
  priority: "normal",
  timeoutMs: 0,
  ...extra,
});

function containerOf(backend: FakeBackend, taskId: string) {
  return [...backend.containers.values()].find((c) => c.spec.labels.taskId === taskId);
}

async function until(tasks: TaskService, taskId: string, pred: (t: Task) => boolean): Promise<Task> {
  await vi.waitFor(() => expect(pred(tasks.get(taskId))).toBe(true), { timeout: 3000 });
  return tasks.get(taskId);
}

describe("running tasks", () => {
  it("completes on exit 0 with output and result data, and removes the ephemeral agent", async () => {
    const { tasks, agents, backend, workspaces } = await openCore();
    const task = await tasks.submit(submit());
    const c = await vi.waitFor(() => {
      const found = containerOf(backend, task.taskId);
      if (!found) throw new Error("not started");
      return found;
    });
    expect(c.spec.env.AGENTORCH_GOAL).toBe("write a test");
    expect(JSON.parse(c.spec.env.AGENTORCH_CONSTRAINTS!)).toEqual(["be brief"]);
    expect(JSON.parse(c.spec.env.AGENTORCH_ACCEPTANCE_CRITERIA!)).toEqual(["prints ok"]);
    expect(c.spec.env.AGENTORCH_ATTEMPT).toBe("1");
    expect(c.spec.env.AGENTORCH_RESULT_FILE).toBe(`/workspace/.agentorch-result-${task.taskId}.json`);
    backend.write(c.id, "write a test\n");
    workspaces.files.set(`${task.agentId}/.agentorch-result-${task.taskId}.json`, Buffer.from('{"steps": 2}'));
    backend.exit(c.id, 0);
    const done = await until(tasks, task.taskId, (t) => t.state === "completed");
    expect(done.result).toMatchObject({ success: true, exitCode: 0, output: "write a test\n", data: { steps: 2 }, dataError: "" });
    await vi.waitFor(() => expect(() => agents.get(task.agentId)).toThrow(/not found/));
    expect(backend.containers.size).toBe(0);
  });

  it("fails on a non-zero exit with its code, and reports invalid result JSON without failing for it", async () => {
    const { tasks, backend, workspaces, agents } = await openCore();
    await agents.register({ agentId: "worker", image: "busybox:test" });
    const task = await tasks.submit(submit({ template: undefined, agentId: "worker" }));
    const c = await vi.waitFor(() => containerOf(backend, task.taskId)!);
    workspaces.files.set(`worker/.agentorch-result-${task.taskId}.json`, Buffer.from("{nope"));
    backend.exit(c.id, 3);
    const done = await until(tasks, task.taskId, (t) => t.state === "failed");
    expect(done).toMatchObject({ stateReason: "EXIT_NONZERO", result: { success: false, exitCode: 3 } });
    expect(done.result?.dataError).toContain("not valid JSON");
    const agent = agents.get("worker");
    expect(agent.currentTaskId).toBeUndefined();
    expect(agent.executionCount).toBe(1);
    expect(agent.status).toBe("failed");
  });

  it("times out: container killed, FAILED/TIMEOUT, output so far kept", async () => {
    const { tasks, backend } = await openCore();
    const task = await tasks.submit(submit({ timeoutMs: 1000 }));
    const c = await vi.waitFor(() => containerOf(backend, task.taskId)!);
    backend.write(c.id, "partial work\n");
    const done = await until(tasks, task.taskId, (t) => t.state === "failed");
    expect(done.stateReason).toBe("TIMEOUT");
    expect(done.result?.output).toBe("partial work\n");
    expect(backend.containers.size).toBe(0);
  });

  it("refuses bad submissions and changes nothing", async () => {
    const { tasks, agents, store } = await openCore();
    await agents.register({ agentId: "w1", image: "busybox:test" });
    const kinds = async (input: SubmitTaskInput) => {
      try {
        await tasks.submit(input);
      } catch (e) {
        return isAgentorchError(e) ? e.kind : String(e);
      }
      return "ok";
    };
    expect(await kinds(submit({ template: undefined, agentId: "ghost" }))).toBe("not_found");
    expect(await kinds(submit({ directive: { goal: "" } }))).toBe("invalid_argument");
    expect(await kinds(submit({ agentId: "w1" }))).toBe("invalid_argument"); // both targets
    expect(await kinds(submit({ template: { image: "busybox:test", env: { LD_PRELOAD: "x" } } }))).toBe("invalid_argument");
    expect(store.countAgents()).toBe(1);
    await tasks.updateConfig({ ...tasks.getConfig(), maxConcurrentTasks: 1 }, ["max_concurrent_tasks"]);
    await tasks.submit(submit({ template: undefined, agentId: "w1" }));
    expect(await kinds(submit({ template: undefined, agentId: "w1" }))).toBe("failed_precondition");
    expect(tasks.list({ pageSize: 10, pageToken: "" }).tasks).toHaveLength(1);
  });
});

describe("scheduling", () => {
  it("runs waiting tasks by priority, FIFO within one, and raising the limit starts them at once", async () => {
    const { tasks, backend } = await openCore();
    await tasks.updateConfig({ ...tasks.getConfig(), maxConcurrentTasks: 1 }, ["max_concurrent_tasks"]);
    const first = await tasks.submit(submit());
    await vi.waitFor(() => expect(containerOf(backend, first.taskId)).toBeDefined());
    const a = await tasks.submit(submit({ priority: "low" }));
    const b = await tasks.submit(submit({ priority: "low" }));
    const c = await tasks.submit(submit({ priority: "critical" }));
    expect([a, b, c].map((t) => tasks.get(t.taskId).state)).toEqual(["submitted", "submitted", "submitted"]);
    const order: string[] = [];
    for (const next of [c, a, b]) {
      const running = [...backend.containers.values()].filter((x) => x.running);
      expect(running).toHaveLength(1);
      backend.exit(running[0]!.id, 0);
      await vi.waitFor(() => expect(containerOf(backend, next.taskId)?.running).toBe(true));
      order.push(next.taskId);
    }
    expect(order).toEqual([c.taskId, a.taskId, b.taskId]);
  });

  it("raising max_concurrent_tasks starts waiting tasks without a restart; lowering lets running ones finish", async () => {
    const { tasks, backend } = await openCore();
    await tasks.updateConfig({ ...tasks.getConfig(), maxConcurrentTasks: 1 }, ["max_concurrent_tasks"]);
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await tasks.submit(submit())).taskId);
    await vi.waitFor(() => expect(backend.running()).toHaveLength(1));
    tasks.updateConfig({ ...tasks.getConfig(), maxConcurrentTasks: 3 }, ["max_concurrent_tasks"]);
    await vi.waitFor(() => expect(backend.running()).toHaveLength(3));
    tasks.updateConfig({ ...tasks.getConfig(), maxConcurrentTasks: 1 }, ["max_concurrent_tasks"]);
    expect(backend.running()).toHaveLength(3);
    backend.exit(backend.running()[0]!.id, 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(backend.running()).toHaveLength(2);
    expect(tasks.get(ids[3]!).state).toBe("submitted");
  });

  it("refuses more waiting tasks than max_queued_tasks", async () => {
    const { tasks } = await openCore();
    tasks.updateConfig({ ...tasks.getConfig(), maxConcurrentTasks: 1, maxQueuedTasks: 2 }, ["max_concurrent_tasks", "max_queued_tasks"]);
    for (let i = 0; i < 3; i++) await tasks.submit(submit());
    await expect(tasks.submit(submit())).rejects.toSatisfy((e: unknown) => isAgentorchError(e, "resource_exhausted"));
  });
});

describe("cancel and retry", () => {
  it("cancels a waiting task (never starts) and a running one (container killed)", async () => {
    const { tasks, backend } = await openCore();
    tasks.updateConfig({ ...tasks.getConfig(), maxConcurrentTasks: 1 }, ["max_concurrent_tasks"]);
    const running = await tasks.submit(submit());
    const waiting = await tasks.submit(submit());
    await vi.waitFor(() => expect(containerOf(backend, running.taskId)).toBeDefined());
    const w = await tasks.cancel(waiting.taskId);
    expect(w).toMatchObject({ state: "canceled", stateReason: "CANCELED_BY_USER" });
    expect(w.startedAt).toBeUndefined();
    const r = await tasks.cancel(running.taskId);
    expect(r).toMatchObject({ state: "canceled", stateReason: "CANCELED_BY_USER" });
    expect(backend.containers.size).toBe(0);
    await expect(tasks.cancel(running.taskId)).rejects.toSatisfy((e: unknown) => isAgentorchError(e, "failed_precondition"));
    expect(backend.calls.filter((c) => c.startsWith("spawn"))).toHaveLength(1);
  });

  it("retries a failed task with the previous output and numbered gaps in its constraints", async () => {
    const { tasks, backend } = await openCore();
    const first = await tasks.submit(submit());
    const c1 = await vi.waitFor(() => containerOf(backend, first.taskId)!);
    backend.write(c1.id, "tests failed: 2\n");
    backend.exit(c1.id, 1);
    await until(tasks, first.taskId, (t) => t.state === "failed");
    const retry = await tasks.retry(first.taskId, ["all tests pass", "coverage above 80%"]);
    expect(retry).toMatchObject({ attempt: 2, parentTaskId: first.taskId, state: expect.stringMatching(/submitted|working/) });
    const c2 = await vi.waitFor(() => containerOf(backend, retry.taskId)!);
    const constraints = JSON.parse(c2.spec.env.AGENTORCH_CONSTRAINTS!) as string[];
    expect(constraints[0]).toBe("be brief");
    expect(constraints).toHaveLength(2);
    expect(constraints[1]).toContain("Previous attempt failed");
    expect(constraints[1]).toContain("tests failed: 2");
    expect(constraints[1]).toMatch(/Unmet criteria:\n1\. all tests pass\n2\. coverage above 80%/);
    expect(c2.spec.env.AGENTORCH_ATTEMPT).toBe("2");
    backend.exit(c2.id, 0);
    await until(tasks, retry.taskId, (t) => t.state === "completed");
    await expect(tasks.retry(retry.taskId, [])).rejects.toSatisfy((e: unknown) => isAgentorchError(e, "failed_precondition"));
  });
});

describe("zombies and restarts", () => {
  it("reaps a task whose container vanished, and one that outran zombie_timeout", async () => {
    const { tasks, backend, clock } = await openCore();
    const vanished = await tasks.submit(submit());
    const old = await tasks.submit(submit());
    const cv = await vi.waitFor(() => containerOf(backend, vanished.taskId)!);
    await vi.waitFor(() => expect(containerOf(backend, old.taskId)).toBeDefined());
    backend.vanish(cv.id); // removed behind the service's back, and no event seen
    expect(await tasks.reapZombies()).toEqual([vanished.taskId]);
    expect(tasks.get(vanished.taskId)).toMatchObject({ state: "failed", stateReason: "ZOMBIE" });
    clock.advance(tasks.getConfig().zombieTimeoutMs + 1);
    expect(await tasks.reapZombies()).toEqual([old.taskId]);
    expect(tasks.get(old.taskId)).toMatchObject({ state: "failed", stateReason: "ZOMBIE" });
    expect(backend.running()).toHaveLength(0);
  });

  it("does not reap a task whose container just exited normally", async () => {
    const { tasks, backend } = await openCore();
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await tasks.submit(submit())).taskId);
    await vi.waitFor(() => expect(backend.running()).toHaveLength(5));
    for (const c of backend.running()) backend.exit(c.id, 0);
    expect(await tasks.reapZombies()).toEqual([]);
    for (const id of ids) await until(tasks, id, (t) => t.state === "completed");
  });

  it("a task whose container is removed from outside ends FAILED/ZOMBIE as soon as the engine says so", async () => {
    const { tasks, backend } = await openCore();
    const task = await tasks.submit(submit());
    const c = await vi.waitFor(() => containerOf(backend, task.taskId)!);
    backend.removeFromOutside(c.id);
    const done = await until(tasks, task.taskId, (t) => t.state === "failed");
    expect(done.stateReason).toBe("ZOMBIE");
  });

  it("after a restart, waiting tasks run and a working task is adopted or CONTAINER_LOST", async () => {
    const first = await openCore();
    const { store, backend, workspaces, clock } = first;
    first.tasks.updateConfig({ ...first.tasks.getConfig(), maxConcurrentTasks: 2 }, ["max_concurrent_tasks"]);
    const adopted = await first.tasks.submit(submit());
    const lost = await first.tasks.submit(submit());
    const waiting = await first.tasks.submit(submit());
    await vi.waitFor(() => expect(backend.running()).toHaveLength(2));
    await first.close();
    backend.vanish(containerOf(backend, lost.taskId)!.id);

    const second = await openCore({ store, backend, workspaces, clock });
    expect(second.tasks.getConfig().maxConcurrentTasks).toBe(2);
    expect(second.tasks.get(lost.taskId)).toMatchObject({ state: "failed", stateReason: "CONTAINER_LOST" });
    expect(second.tasks.get(adopted.taskId).state).toBe("working");
    await vi.waitFor(() => expect(containerOf(backend, waiting.taskId)?.running).toBe(true));
    backend.exit(containerOf(backend, adopted.taskId)!.id, 0);
    backend.exit(containerOf(backend, waiting.taskId)!.id, 0);
    await until(second.tasks, adopted.taskId, (t) => t.state === "completed");
    await until(second.tasks, waiting.taskId, (t) => t.state === "completed");
  });
});
