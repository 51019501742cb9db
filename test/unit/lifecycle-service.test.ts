/**
 * LifecycleService in memory: a Connect client over createRouterTransport, the handlers
 * over the REAL TaskService and AgentService on the SQLite store (:memory:) and a fake
 * container backend. What is checked is what a client observes: messages, codes, streams
 * that end; the same behaviour against a real engine is in test/e2e/tasks.test.ts.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LifecycleService, type SubmitTaskRequest } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SubmitTaskRequestSchema } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import type { SandboxPolicy } from "../../gen/agentorch/v1/agent_pb.js";
import { type Task as TaskProto, TaskPriority, TaskState } from "../../gen/agentorch/v1/task_pb.js";
import { createLifecycleService, type LifecycleServiceDeps } from "../../src/api/lifecycle-service.js";
import { notFound } from "../../src/core/errors.js";
import type { FakeBackend } from "../fakes/fake-backend.js";
import { closeCores, openCore } from "../support/core-fixture.js";
import { connectCode, connectError } from "../support/errors.js";

afterEach(closeCores);

/** The real core behind a Connect client over createRouterTransport. */
async function setup(extra: Partial<LifecycleServiceDeps> = {}) {
  const core = await openCore();
  const transport = createRouterTransport(({ service }) => {
    service(LifecycleService, createLifecycleService({ tasks: core.tasks, logger: core.logger, ...extra }));
  });
  return { ...core, client: createClient(LifecycleService, transport) };
}

type Setup = Awaited<ReturnType<typeof setup>>;

const directive = { goal: "write a test", constraints: ["be brief"], acceptanceCriteria: ["prints ok"] };
const template = { image: "busybox:test", command: ["sh", "-c", "run"] };
/** A SubmitTask request as a plain object. */
type SubmitInit = Exclude<MessageInitShape<typeof SubmitTaskRequestSchema>, SubmitTaskRequest>;
const onTemplate = (extra: SubmitInit = {}): SubmitInit => ({
  directive,
  target: { case: "template", value: template },
  ...extra,
});

function containerOf(backend: FakeBackend, taskId: string) {
  const c = [...backend.containers.values()].find((x) => x.spec.labels.taskId === taskId);
  if (!c) throw new Error(`no container for ${taskId} yet`);
  return c;
}

async function until(client: Client<typeof LifecycleService>, taskId: string, state: TaskState): Promise<TaskProto> {
  return vi.waitFor(
    async () => {
      const { task } = await client.getTask({ taskId });
      if (task!.state !== state) throw new Error(`task is ${TaskState[task!.state]}, waiting for ${TaskState[state]}`);
      return task!;
    },
    { timeout: 3000 },
  );
}

async function setLimits(s: Setup, limits: { maxConcurrentTasks?: number; maxQueuedTasks?: number }) {
  const paths = Object.keys(limits).map((k) => (k === "maxConcurrentTasks" ? "max_concurrent_tasks" : "max_queued_tasks"));
  await s.client.updateLifecycleConfig({ config: limits, updateMask: { paths } });
}

// ------------------------------------------------------------------ submit and get

describe("SubmitTask / GetTask", () => {
  it("runs a template task to COMPLETED with its output and result data, and the ephemeral agent is gone", async () => {
    const s = await setup();
    const { task } = await s.client.submitTask(onTemplate({ priority: TaskPriority.HIGH, timeout: durationFromMs(60_000) }));
    expect(task).toMatchObject({ attempt: 1, ephemeral: true, priority: TaskPriority.HIGH, parentTaskId: "", stateReason: "" });
    expect([TaskState.SUBMITTED, TaskState.WORKING]).toContain(task!.state);
    expect(task!.taskId).toMatch(/^task-/);
    expect(task!.directive).toMatchObject({ goal: "write a test", constraints: ["be brief"], acceptanceCriteria: ["prints ok"], originalRequest: "" });
    expect(task!.template).toMatchObject({ image: "busybox:test", command: ["sh", "-c", "run"] });
    expect(task!.createdAt).toBeDefined();

    const c = await vi.waitFor(() => containerOf(s.backend, task!.taskId));
    expect(c.spec.env.AGENTORCH_GOAL).toBe("write a test");
    s.backend.write(c.id, "write a test\n");
    s.workspaces.files.set(`${task!.agentId}/.agentorch-result-${task!.taskId}.json`, Buffer.from('{"steps": 2}'));
    s.backend.exit(c.id, 0);

    const done = await until(s.client, task!.taskId, TaskState.COMPLETED);
    expect(done.result).toMatchObject({ success: true, exitCode: 0, output: "write a test\n", data: { steps: 2 }, dataError: "" });
    expect(done.startedAt).toBeDefined();
    expect(done.finishedAt).toBeDefined();
    expect(done.containerId).toBe(c.id);
    expect(durationMs(done.timeout!)).toBe(60_000);
    await vi.waitFor(() => expect(() => s.agents.get(task!.agentId)).toThrow(/not found/));
  });

  it("runs on a registered agent; UNSPECIFIED priority is NORMAL", async () => {
    const s = await setup();
    await s.agents.register({ agentId: "worker", image: "busybox:test" });
    const { task } = await s.client.submitTask({ directive, target: { case: "agentId", value: "worker" } });
    expect(task).toMatchObject({ agentId: "worker", ephemeral: false, priority: TaskPriority.NORMAL });
    expect(task!.template).toBeUndefined();
    s.backend.exit((await vi.waitFor(() => containerOf(s.backend, task!.taskId))).id, 3);
    const done = await until(s.client, task!.taskId, TaskState.FAILED);
    expect(done).toMatchObject({ stateReason: "EXIT_NONZERO", result: { success: false, exitCode: 3 } });
    expect(s.agents.get("worker").executionCount).toBe(1);
  });

  it("NOT_FOUND for an unknown agent; FAILED_PRECONDITION for a busy one", async () => {
    const s = await setup();
    expect(await connectCode(s.client.submitTask({ directive, target: { case: "agentId", value: "nobody" } }))).toBe(Code.NotFound);
    await s.agents.register({ agentId: "worker", image: "busybox:test" });
    await s.client.submitTask({ directive, target: { case: "agentId", value: "worker" } });
    const err = await connectError(s.client.submitTask({ directive, target: { case: "agentId", value: "worker" } }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("busy");
  });

  it("INVALID_ARGUMENT for a bad directive, template, target, timeout or priority", async () => {
    const s = await setup();
    const cases: [string, SubmitInit][] = [
      ["no directive", { target: { case: "template", value: template } }],
      ["empty goal", onTemplate({ directive: { goal: "" } })],
      ["control character", onTemplate({ directive: { goal: "a\u0000b" } })],
      ["too many constraints", onTemplate({ directive: { goal: "g", constraints: Array.from({ length: 65 }, () => "c") } })],
      ["no target", { directive }],
      ["empty agent id", { directive, target: { case: "agentId", value: "" } }],
      ["malformed agent id", { directive, target: { case: "agentId", value: "no spaces allowed" } }],
      ["template without image", { directive, target: { case: "template", value: { command: ["sh"] } } }],
      ["reserved env", { directive, target: { case: "template", value: { ...template, env: { AGENTORCH_TOKEN: "x" } } } }],
      ["LD_PRELOAD", { directive, target: { case: "template", value: { ...template, env: { LD_PRELOAD: "/x.so" } } } }],
      ["unknown policy", { directive, target: { case: "template", value: { ...template, policy: 9 as SandboxPolicy } } }],
      ["negative timeout", onTemplate({ timeout: { seconds: -1n } })],
      ["unknown priority", onTemplate({ priority: 17 as TaskPriority })],
    ];
    for (const [name, req] of cases) {
      expect(await connectCode(s.client.submitTask(req)), name).toBe(Code.InvalidArgument);
    }
    // Nothing was created by the refused calls.
    expect((await s.client.listTasks({})).tasks).toEqual([]);
    expect(s.backend.containers.size).toBe(0);
  });

  it("RESOURCE_EXHAUSTED when max_queued_tasks are waiting", async () => {
    const s = await setup();
    await setLimits(s, { maxConcurrentTasks: 1, maxQueuedTasks: 1 });
    await s.client.submitTask(onTemplate()); // runs
    const waiting = (await s.client.submitTask(onTemplate())).task!; // waits
    expect(waiting.state).toBe(TaskState.SUBMITTED);
    const err = await connectError(s.client.submitTask(onTemplate()));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toContain("max_queued_tasks");
  });

  it("GetTask: NOT_FOUND for an unknown task, INVALID_ARGUMENT for a malformed id", async () => {
    const s = await setup();
    expect(await connectCode(s.client.getTask({ taskId: "task-nope" }))).toBe(Code.NotFound);
    expect(await connectCode(s.client.getTask({ taskId: "" }))).toBe(Code.InvalidArgument);
    expect(await connectCode(s.client.getTask({ taskId: "../etc" }))).toBe(Code.InvalidArgument);
  });
});

// ------------------------------------------------------------------ list

describe("ListTasks", () => {
  it("pages in submission order, filters by state and agent, and returns the revision", async () => {
    const s = await setup();
    await setLimits(s, { maxConcurrentTasks: 1 });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await s.client.submitTask(onTemplate())).task!.taskId);

    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await s.client.listTasks({ pageSize: 2, pageToken });
      expect(page.tasks.length).toBeLessThanOrEqual(2);
      expect(page.revision).toBeGreaterThan(0n);
      seen.push(...page.tasks.map((t) => t.taskId));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "");
    expect(seen).toEqual(ids);
    expect(pages).toBe(3);

    const working = await s.client.listTasks({ state: TaskState.WORKING });
    expect(working.tasks.map((t) => t.taskId)).toEqual([ids[0]]);
    const waiting = await s.client.listTasks({ state: TaskState.SUBMITTED });
    expect(waiting.tasks.map((t) => t.taskId)).toEqual(ids.slice(1));
    const agentId = working.tasks[0]!.agentId;
    expect((await s.client.listTasks({ agentId })).tasks.map((t) => t.taskId)).toEqual([ids[0]]);
    expect((await s.client.listTasks({ agentId: "nobody" })).tasks).toEqual([]);
  });

  it("INVALID_ARGUMENT for a bad page token or size, an unknown state, or a token used with other filters", async () => {
    const s = await setup();
    await s.client.submitTask(onTemplate());
    await s.client.submitTask(onTemplate());
    expect(await connectCode(s.client.listTasks({ pageToken: "garbage" }))).toBe(Code.InvalidArgument);
    expect(await connectCode(s.client.listTasks({ pageSize: -1 }))).toBe(Code.InvalidArgument);
    expect(await connectCode(s.client.listTasks({ pageSize: 1001 }))).toBe(Code.InvalidArgument);
    expect(await connectCode(s.client.listTasks({ state: 42 as TaskState }))).toBe(Code.InvalidArgument);
    const { nextPageToken } = await s.client.listTasks({ pageSize: 1 });
    expect(nextPageToken).not.toBe("");
    expect(await connectCode(s.client.listTasks({ pageSize: 1, pageToken: nextPageToken, state: TaskState.FAILED }))).toBe(Code.InvalidArgument);
  });
});

// ------------------------------------------------------------------ cancel and retry

describe("CancelTask", () => {
  it("a waiting task ends CANCELED without ever starting; a running one has its container killed", async () => {
    const s = await setup();
    await setLimits(s, { maxConcurrentTasks: 1 });
    const running = (await s.client.submitTask(onTemplate())).task!;
    const waiting = (await s.client.submitTask(onTemplate())).task!;
    const c = await vi.waitFor(() => containerOf(s.backend, running.taskId));

    const w = (await s.client.cancelTask({ taskId: waiting.taskId })).task!;
    expect(w).toMatchObject({ state: TaskState.CANCELED, stateReason: "CANCELED_BY_USER", containerId: "" });
    expect(w.startedAt).toBeUndefined();
    expect(s.backend.calls.filter((x) => x === `spawn ${waiting.agentId}`)).toEqual([]);

    s.backend.write(c.id, "half done\n");
    const r = (await s.client.cancelTask({ taskId: running.taskId })).task!;
    expect(r).toMatchObject({ state: TaskState.CANCELED, stateReason: "CANCELED_BY_USER" });
    expect(r.result?.output).toBe("half done\n");
    expect(s.backend.running()).toEqual([]);
  });

  it("FAILED_PRECONDITION for a finished task (naming its state); NOT_FOUND for an unknown one", async () => {
    const s = await setup();
    const t = (await s.client.submitTask(onTemplate())).task!;
    s.backend.exit((await vi.waitFor(() => containerOf(s.backend, t.taskId))).id, 0);
    await until(s.client, t.taskId, TaskState.COMPLETED);
    const err = await connectError(s.client.cancelTask({ taskId: t.taskId }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("COMPLETED");
    expect(await connectCode(s.client.cancelTask({ taskId: "task-nope" }))).toBe(Code.NotFound);
  });
});

describe("RetryTask", () => {
  it("submits attempt 2 of a failed task with the feedback entry in its constraints", async () => {
    const s = await setup();
    const t = (await s.client.submitTask(onTemplate({ priority: TaskPriority.LOW }))).task!;
    const c = await vi.waitFor(() => containerOf(s.backend, t.taskId));
    s.backend.write(c.id, "it broke\n");
    s.backend.exit(c.id, 3);
    await until(s.client, t.taskId, TaskState.FAILED);

    const retry = (await s.client.retryTask({ taskId: t.taskId, gaps: ["prints ok", "exits 0"] })).task!;
    expect(retry).toMatchObject({ attempt: 2, parentTaskId: t.taskId, priority: TaskPriority.LOW, ephemeral: true });
    expect(retry.taskId).not.toBe(t.taskId);
    const constraints = retry.directive!.constraints;
    expect(constraints).toHaveLength(2);
    expect(constraints[0]).toBe("be brief");
    expect(constraints[1]).toMatch(/^Previous attempt failed \(attempt 1, FAILED: EXIT_NONZERO, exit code 3\)\./);
    expect(constraints[1]).toContain("it broke");
    expect(constraints[1]).toContain("Unmet criteria:\n1. prints ok\n2. exits 0");
    const c2 = await vi.waitFor(() => containerOf(s.backend, retry.taskId));
    expect(JSON.parse(c2.spec.env.AGENTORCH_CONSTRAINTS!)).toEqual(constraints);
    expect(c2.spec.env.AGENTORCH_ATTEMPT).toBe("2");
  });

  it("FAILED_PRECONDITION for a completed task; NOT_FOUND for an unknown one; INVALID_ARGUMENT for bad gaps", async () => {
    const s = await setup();
    const ok = (await s.client.submitTask(onTemplate())).task!;
    s.backend.exit((await vi.waitFor(() => containerOf(s.backend, ok.taskId))).id, 0);
    await until(s.client, ok.taskId, TaskState.COMPLETED);
    expect(await connectCode(s.client.retryTask({ taskId: ok.taskId }))).toBe(Code.FailedPrecondition);
    expect(await connectCode(s.client.retryTask({ taskId: "task-nope" }))).toBe(Code.NotFound);

    const bad = (await s.client.submitTask(onTemplate())).task!;
    s.backend.exit((await vi.waitFor(() => containerOf(s.backend, bad.taskId))).id, 1);
    await until(s.client, bad.taskId, TaskState.FAILED);
    expect(await connectCode(s.client.retryTask({ taskId: bad.taskId, gaps: [""] }))).toBe(Code.InvalidArgument);
    expect(await connectCode(s.client.retryTask({ taskId: bad.taskId, gaps: Array.from({ length: 65 }, () => "g") }))).toBe(Code.InvalidArgument);
  });
});

// ------------------------------------------------------------------ watch

describe("WatchTask", () => {
  it("sends the current state first, then each change, and ends after the terminal state", async () => {
    const s = await setup();
    await setLimits(s, { maxConcurrentTasks: 1 });
    const blocker = (await s.client.submitTask(onTemplate())).task!;
    const t = (await s.client.submitTask(onTemplate())).task!;
    expect(t.state).toBe(TaskState.SUBMITTED);

    const listeners = s.bus.listenerCount;
    const received: { state: TaskState; revision: bigint }[] = [];
    const watching = (async () => {
      for await (const m of s.client.watchTask({ taskId: t.taskId })) {
        expect(m.task!.taskId).toBe(t.taskId);
        received.push({ state: m.task!.state, revision: m.revision });
      }
    })();
    await vi.waitFor(() => expect(received.length).toBe(1));
    expect(received[0]!.state).toBe(TaskState.SUBMITTED);

    s.backend.exit((await vi.waitFor(() => containerOf(s.backend, blocker.taskId))).id, 0); // frees the slot
    const c = await vi.waitFor(() => containerOf(s.backend, t.taskId));
    s.backend.exit(c.id, 0);
    await watching; // the stream ended by itself

    const states = received.map((r) => r.state);
    expect(states[0]).toBe(TaskState.SUBMITTED);
    expect(states.at(-1)).toBe(TaskState.COMPLETED);
    expect(states).toContain(TaskState.WORKING);
    expect(states.filter((x) => x === TaskState.COMPLETED)).toHaveLength(1);
    const revisions = received.map((r) => r.revision);
    expect([...revisions].sort((a, b) => (a < b ? -1 : 1))).toEqual(revisions);
    expect(new Set(revisions).size).toBe(revisions.length);
    expect(s.bus.listenerCount).toBe(listeners); // the stream's subscription is gone
  });

  it("a finished task: one message, then the stream ends", async () => {
    const s = await setup();
    const t = (await s.client.submitTask(onTemplate())).task!;
    await s.client.cancelTask({ taskId: t.taskId });
    const got: TaskState[] = [];
    for await (const m of s.client.watchTask({ taskId: t.taskId })) got.push(m.task!.state);
    expect(got).toEqual([TaskState.CANCELED]);
  });

  it("NOT_FOUND for an unknown task, INVALID_ARGUMENT for a malformed id, before any message", async () => {
    const s = await setup();
    const drain = async (taskId: string) => {
      for await (const _ of s.client.watchTask({ taskId })) throw new Error("no message expected");
    };
    expect(await connectCode(drain("task-nope"))).toBe(Code.NotFound);
    expect(await connectCode(drain(""))).toBe(Code.InvalidArgument);
  });

  it("stops following when the client goes away", async () => {
    const s = await setup();
    const listeners = s.bus.listenerCount;
    await s.agents.register({ agentId: "worker", image: "busybox:test" });
    const t = (await s.client.submitTask({ directive, target: { case: "agentId", value: "worker" } })).task!;
    const ac = new AbortController();
    const first: TaskState[] = [];
    const watching = (async () => {
      for await (const m of s.client.watchTask({ taskId: t.taskId }, { signal: ac.signal })) {
        first.push(m.task!.state);
        ac.abort();
      }
    })();
    expect(await connectCode(watching)).toBe(Code.Canceled);
    expect(first).toHaveLength(1);
    await vi.waitFor(() => expect(s.bus.listenerCount).toBe(listeners));
  });
});

// ------------------------------------------------------------------ zombies and config

describe("ReapZombies", () => {
  it("returns the task whose container vanished, which ends FAILED/ZOMBIE", async () => {
    const s = await setup();
    const t = (await s.client.submitTask(onTemplate())).task!;
    const c = await vi.waitFor(() => containerOf(s.backend, t.taskId));
    expect((await s.client.reapZombies({})).taskIds).toEqual([]);
    s.backend.vanish(c.id);
    expect((await s.client.reapZombies({})).taskIds).toEqual([t.taskId]);
    expect((await s.client.getTask({ taskId: t.taskId })).task).toMatchObject({ state: TaskState.FAILED, stateReason: "ZOMBIE" });
  });
});

describe("Get/UpdateLifecycleConfig", () => {
  it("returns the defaults, and changes only the masked fields, live", async () => {
    const s = await setup();
    const { config } = await s.client.getLifecycleConfig({});
    expect(durationMs(config!.maxExecutionTime!)).toBe(300_000);
    expect(durationMs(config!.zombieTimeout!)).toBe(900_000);
    expect(config).toMatchObject({ maxConcurrentTasks: 5, maxQueuedTasks: 10_000 });

    const updated = await s.client.updateLifecycleConfig({
      config: { maxExecutionTime: durationFromMs(2_000), maxConcurrentTasks: 1, zombieTimeout: durationFromMs(3_000), maxQueuedTasks: 1 },
      updateMask: create(FieldMaskSchema, { paths: ["max_execution_time", "max_concurrent_tasks", "zombie_timeout"] }),
    });
    expect(durationMs(updated.config!.maxExecutionTime!)).toBe(2_000);
    expect(durationMs(updated.config!.zombieTimeout!)).toBe(3_000);
    expect(updated.config).toMatchObject({ maxConcurrentTasks: 1, maxQueuedTasks: 10_000 });
    expect((await s.client.getLifecycleConfig({})).config).toEqual(updated.config);
  });

  it("raising max_concurrent_tasks starts waiting tasks at once", async () => {
    const s = await setup();
    await setLimits(s, { maxConcurrentTasks: 1 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await s.client.submitTask(onTemplate())).task!.taskId);
    expect((await s.client.listTasks({ state: TaskState.SUBMITTED })).tasks).toHaveLength(2);
    await setLimits(s, { maxConcurrentTasks: 3 });
    for (const id of ids) await until(s.client, id, TaskState.WORKING);
  });

  it("INVALID_ARGUMENT for a missing config or mask, an unknown path, or a value out of range; nothing changes", async () => {
    const s = await setup();
    const before = (await s.client.getLifecycleConfig({})).config;
    const bad: [string, Parameters<typeof s.client.updateLifecycleConfig>[0]][] = [
      ["no config", { updateMask: { paths: ["max_concurrent_tasks"] } }],
      ["no mask", { config: { maxConcurrentTasks: 2 } }],
      ["empty mask", { config: { maxConcurrentTasks: 2 }, updateMask: { paths: [] } }],
      ["unknown path", { config: { maxConcurrentTasks: 2 }, updateMask: { paths: ["max_concurrent_tasks", "colour"] } }],
      ["zero concurrency", { config: { maxConcurrentTasks: 0 }, updateMask: { paths: ["max_concurrent_tasks"] } }],
      ["unset duration", { config: {}, updateMask: { paths: ["max_execution_time"] } }],
      ["negative duration", { config: { maxExecutionTime: { seconds: -1n } }, updateMask: { paths: ["max_execution_time"] } }],
      ["zombie below max execution", { config: { zombieTimeout: durationFromMs(1_000) }, updateMask: { paths: ["zombie_timeout"] } }],
    ];
    for (const [name, req] of bad) expect(await connectCode(s.client.updateLifecycleConfig(req)), name).toBe(Code.InvalidArgument);
    expect((await s.client.getLifecycleConfig({})).config).toEqual(before);
  });
});

// ------------------------------------------------------------------ merged handlers

describe("A2A and WatchTasks", () => {
  it("answer UNIMPLEMENTED until their handlers are given", async () => {
    const s = await setup();
    expect(await connectCode(s.client.getAgentCard({ agentId: "a" }))).toBe(Code.Unimplemented);
    expect(await connectCode(s.client.sendMessage({}))).toBe(Code.Unimplemented);
    const drain = async (it: AsyncIterable<unknown>) => {
      for await (const _ of it) throw new Error("no message expected");
    };
    expect(await connectCode(drain(s.client.streamMessages({ agentId: "a" })))).toBe(Code.Unimplemented);
  });

  it("serve the handlers given in deps", async () => {
    const s = await setup({
      a2a: {
        getAgentCard: (req) => ({ card: { agentId: req.agentId, name: "card" } }),
        // Core errors thrown by merged handlers get the same code mapping as the task handlers.
        listAgentCards: () => {
          throw notFound("no such card");
        },
        // Not an A2A method: ignored, the real handler stays.
        getTask: () => ({}),
      },
    });
    expect((await s.client.getAgentCard({ agentId: "a" })).card).toMatchObject({ agentId: "a", name: "card" });
    expect(await connectCode(s.client.ackMessages({}))).toBe(Code.Unimplemented);
    expect(await connectCode(s.client.listAgentCards({}))).toBe(Code.NotFound);
    expect(await connectCode(s.client.getTask({ taskId: "task-nope" }))).toBe(Code.NotFound);
  });
});
