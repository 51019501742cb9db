/**
 * LifecycleService end to end: the real server on a free port, the real Docker engine,
 * busybox containers. Tasks are driven with a Connect gRPC client; WatchTask is also
 * followed with clients that share no code with the server (@grpc/grpc-js loading the
 * .proto files, and `buf curl` through reflection). What is checked is what a client sees
 * (states, reasons, results, the order tasks started in) and what is left in Docker.
 *
 * Cases that change the global task limits get a server of their own, so every case can
 * run concurrently; each server's containers are removed by its instance label afterwards.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { LifecycleService, type SubmitTaskRequest, type SubmitTaskRequestSchema } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { AgentOrchestratorService } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { type Task, TaskPriority, TaskState } from "../../gen/agentorch/v1/task_pb.js";
import { describeDocker, removeContainersOf, TEST_IMAGE, testDocker } from "../support/docker.js";
import { connectCode } from "../support/errors.js";
import { grpcClient, serverStream } from "../support/grpc.js";
import { REPO_ROOT, startTestServer } from "../support/server.js";
import type { TestServer, TestServerOptions } from "../support/server.js";

// ------------------------------------------------------------------ servers and clients

interface Harness {
  server: TestServer;
  tasks: Client<typeof LifecycleService>;
  agents: Client<typeof AgentOrchestratorService>;
}

const started: TestServer[] = [];
const tempDirs: string[] = [];

async function harness(options: TestServerOptions = {}): Promise<Harness> {
  const server = await startTestServer(options);
  started.push(server);
  return clientsFor(server);
}

function clientsFor(server: TestServer): Harness {
  const transport = createGrpcTransport({ baseUrl: server.url });
  return { server, tasks: createClient(LifecycleService, transport), agents: createClient(AgentOrchestratorService, transport) };
}

/** A server with max_concurrent_tasks set (a global limit, hence its own server). */
async function limitedHarness(maxConcurrentTasks: number, options: TestServerOptions = {}): Promise<Harness> {
  const h = await harness(options);
  await h.tasks.updateLifecycleConfig({ config: { maxConcurrentTasks }, updateMask: { paths: ["max_concurrent_tasks"] } });
  return h;
}

afterAll(async () => {
  // Instance ids are read before stopping (a stopped app still knows its id).
  const instances = started.map((s) => s.app.instanceId);
  await Promise.all(started.map((s) => s.stop()));
  await Promise.all([...new Set(instances)].map((id) => removeContainersOf(id)));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ helpers

const directive = { goal: "say hello", acceptanceCriteria: ["prints the goal"] };

/** A SubmitTask request as a plain object. */
type SubmitInit = Exclude<MessageInitShape<typeof SubmitTaskRequestSchema>, SubmitTaskRequest>;

function onBusybox(script: string, extra: SubmitInit = {}): SubmitInit {
  return { directive, target: { case: "template", value: { image: TEST_IMAGE, command: ["sh", "-c", script] } }, ...extra };
}

const TERMINAL = new Set([TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED]);

/** Polls GetTask until pred holds; the test fails by timeout otherwise. */
async function until(h: Harness, taskId: string, pred: (t: Task) => boolean, timeout = 20_000): Promise<Task> {
  return vi.waitFor(
    async () => {
      const { task } = await h.tasks.getTask({ taskId });
      if (!pred(task!)) throw new Error(`task ${taskId} is ${TaskState[task!.state]} (${task!.stateReason})`);
      return task!;
    },
    { timeout, interval: 100 },
  );
}

const finished = (h: Harness, taskId: string) => until(h, taskId, (t) => TERMINAL.has(t.state));
const working = (h: Harness, taskId: string) => until(h, taskId, (t) => t.state === TaskState.WORKING && t.containerId !== "");

/** Every container (running or not) carrying this label value, straight from the engine. */
async function containersLabelled(label: "agentorch.agent-id" | "agentorch.task-id", value: string) {
  return testDocker().listContainers({ all: true, filters: { label: [`${label}=${value}`] } });
}

/** Waits until no container of the task (or its agent) is left on the engine. */
async function noContainerLeft(label: "agentorch.agent-id" | "agentorch.task-id", value: string): Promise<void> {
  await vi.waitFor(async () => expect(await containersLabelled(label, value)).toEqual([]), { timeout: 15_000, interval: 100 });
}

const startedAt = (t: Task) => timestampMs(t.startedAt!);
const finishedAt = (t: Task) => timestampMs(t.finishedAt!);

// ------------------------------------------------------------------ clients that share no code with the server

interface TaskJson {
  task_id: string;
  state: string;
}
/** Follows WatchTask with grpc-js; onState sees each state as it arrives; resolves with all of them once the stream ends OK. */
function grpcJsWatch(server: TestServer, taskId: string, onState: (state: string) => void): Promise<string[]> {
  const client = grpcClient(server.address, "agentorch.v1.LifecycleService");
  const states: string[] = [];
  return new Promise<string[]>((resolve, reject) => {
    const stream = serverStream<{ task: TaskJson }>(client, "WatchTask", { task_id: taskId });
    stream.on("data", (m: { task: TaskJson }) => {
      states.push(m.task.state);
      onState(m.task.state);
    });
    stream.on("error", reject);
    stream.on("status", (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve(states) : reject(new Error(s.details))));
  }).finally(() => client.close());
}

/** Follows WatchTask with `buf curl` (gRPC over h2c, schema from reflection); resolves with the states once it exits 0. */
function bufCurlWatch(server: TestServer, taskId: string, onState: (state: string) => void): Promise<string[]> {
  const buf = path.join(REPO_ROOT, "node_modules/.bin/buf");
  const args = ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", JSON.stringify({ task_id: taskId }), `${server.url}/agentorch.v1.LifecycleService/WatchTask`];
  return new Promise((resolve, reject) => {
    const child = spawn(buf, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let seen = 0;
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
      const states = [...stdout.matchAll(/"state":\s*"(TASK_STATE_\w+)"/g)].map((m) => m[1]!);
      for (; seen < states.length; seen++) onState(states[seen]!);
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`buf curl exited ${code}: ${stderr}`));
      resolve([...stdout.matchAll(/"state":\s*"(TASK_STATE_\w+)"/g)].map((m) => m[1]!));
    });
  });
}

// ------------------------------------------------------------------ the cases

describeDocker.concurrent("LifecycleService on a real engine", () => {
  let shared: Harness;
  beforeAll(async () => {
    shared = await harness();
  });

  it("runs an ephemeral task that echoes its goal to COMPLETED with its output and data, then removes agent and container", async () => {
    const script = `echo "$AGENTORCH_GOAL"; echo "{\\"steps\\": 2}" > "$AGENTORCH_RESULT_FILE"`;
    const { task } = await shared.tasks.submitTask(onBusybox(script));
    expect(task!.ephemeral).toBe(true);
    const done = await finished(shared, task!.taskId);
    expect(done.state).toBe(TaskState.COMPLETED);
    expect(done.result).toMatchObject({ success: true, exitCode: 0, output: "say hello\n", data: { steps: 2 }, dataError: "" });
    expect(finishedAt(done)).toBeGreaterThanOrEqual(startedAt(done));
    await vi.waitFor(async () => expect(await connectCode(shared.agents.getAgent({ agentId: task!.agentId }))).toBe(Code.NotFound), { timeout: 15_000 });
    await noContainerLeft("agentorch.agent-id", task!.agentId);
  });

  it("ends FAILED with the exit code of a container that exits 3", async () => {
    const { task } = await shared.tasks.submitTask(onBusybox("echo failing; exit 3"));
    const done = await finished(shared, task!.taskId);
    expect(done).toMatchObject({ state: TaskState.FAILED, stateReason: "EXIT_NONZERO" });
    expect(done.result).toMatchObject({ success: false, exitCode: 3, output: "failing\n" });
    await noContainerLeft("agentorch.agent-id", task!.agentId);
  });

  it("kills a task that sleeps past its timeout: FAILED/TIMEOUT, output so far kept, container gone", async () => {
    const { task } = await shared.tasks.submitTask(onBusybox("echo started; sleep 60", { timeout: durationFromMs(2_000) }));
    const done = await finished(shared, task!.taskId);
    expect(done).toMatchObject({ state: TaskState.FAILED, stateReason: "TIMEOUT" });
    expect(done.result?.exitCode).toBeUndefined();
    expect(done.result?.output).toBe("started\n");
    await noContainerLeft("agentorch.task-id", task!.taskId);
  });

  it("retries a failed task: the new container sees the feedback section in AGENTORCH_CONSTRAINTS", async () => {
    // Attempt 1 fails; attempt 2 prints its constraints and succeeds.
    const script = `echo "$AGENTORCH_CONSTRAINTS"; [ "$AGENTORCH_ATTEMPT" = 2 ]`;
    const first = (await shared.tasks.submitTask(onBusybox(script))).task!;
    expect((await finished(shared, first.taskId)).state).toBe(TaskState.FAILED);

    const retry = (await shared.tasks.retryTask({ taskId: first.taskId, gaps: ["prints the goal", "exits 0"] })).task!;
    expect(retry).toMatchObject({ attempt: 2, parentTaskId: first.taskId });
    const done = await finished(shared, retry.taskId);
    expect(done.state).toBe(TaskState.COMPLETED);
    const seen = JSON.parse(done.result!.output) as string[]; // what the container had in AGENTORCH_CONSTRAINTS
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/^Previous attempt failed \(attempt 1, FAILED: EXIT_NONZERO, exit code 1\)\.\nOutput:\n\[\]\n/);
    expect(seen[0]).toContain("\nUnmet criteria:\n1. prints the goal\n2. exits 0");
    await noContainerLeft("agentorch.agent-id", retry.agentId);
  });

  it("fails a task whose container was removed behind the service's back (docker rm -f) with reason ZOMBIE", async () => {
    const h = await harness(); // ReapZombies looks at every task: its own server keeps other cases out of it
    const { task } = await h.tasks.submitTask(onBusybox("sleep 60"));
    const running = await working(h, task!.taskId);
    await testDocker().getContainer(running.containerId).remove({ force: true });
    // The engine's events or a reaper pass notice it; either way the end state is the same.
    const reaped = await h.tasks.reapZombies({});
    const done = await finished(h, task!.taskId);
    expect(done, `ReapZombies returned ${JSON.stringify(reaped.taskIds)}`).toMatchObject({ state: TaskState.FAILED, stateReason: "ZOMBIE" });
    await noContainerLeft("agentorch.agent-id", task!.agentId);
  });

  it("with zombie_timeout lowered, ReapZombies returns a long-running task, which ends FAILED/ZOMBIE with no container", async () => {
    const h = await harness(); // the limits are global: its own server
    const { task } = await h.tasks.submitTask(onBusybox("sleep 60"));
    await working(h, task!.taskId);
    await h.tasks.updateLifecycleConfig({
      config: { maxExecutionTime: durationFromMs(1_000), zombieTimeout: durationFromMs(1_000) },
      updateMask: { paths: ["max_execution_time", "zombie_timeout"] },
    });
    // Nothing is reaped until the task has outrun zombie_timeout; then exactly it is.
    const reaped = await vi.waitFor(
      async () => {
        const { taskIds } = await h.tasks.reapZombies({});
        if (taskIds.length === 0) throw new Error("nothing reaped yet");
        return taskIds;
      },
      { timeout: 15_000, interval: 200 },
    );
    expect(reaped).toEqual([task!.taskId]);
    const done = await finished(h, task!.taskId);
    expect(done).toMatchObject({ state: TaskState.FAILED, stateReason: "ZOMBIE" });
    await noContainerLeft("agentorch.task-id", task!.taskId);
    await noContainerLeft("agentorch.agent-id", task!.agentId);
  });

  it("with max_concurrent_tasks = 1 runs waiting tasks by priority, first come first served within one", async () => {
    const h = await limitedHarness(1);
    const blocker = (await h.tasks.submitTask(onBusybox("sleep 1"))).task!;
    expect(blocker.state).toBe(TaskState.WORKING);
    const submit = async (priority: TaskPriority) => (await h.tasks.submitTask(onBusybox("sleep 0.2", { priority }))).task!;
    const a = await submit(TaskPriority.LOW);
    const b = await submit(TaskPriority.LOW);
    const c = await submit(TaskPriority.CRITICAL);
    for (const t of [a, b, c]) expect(t.state).toBe(TaskState.SUBMITTED);

    const done = await Promise.all([blocker, a, b, c].map((t) => finished(h, t.taskId)));
    for (const t of done) expect(t.state).toBe(TaskState.COMPLETED);
    const [db, da, dbb, dc] = done as [Task, Task, Task, Task];
    const order = [
      ["c", dc],
      ["a", da],
      ["b", dbb],
    ].sort((x, y) => startedAt(x[1] as Task) - startedAt(y[1] as Task));
    expect(order.map((x) => x[0])).toEqual(["c", "a", "b"]);
    // One at a time: each started only after the one before it had finished.
    expect(startedAt(dc)).toBeGreaterThanOrEqual(finishedAt(db));
    expect(startedAt(da)).toBeGreaterThanOrEqual(finishedAt(dc));
    expect(startedAt(dbb)).toBeGreaterThanOrEqual(finishedAt(da));
  });

  it("raising max_concurrent_tasks to 3 starts the waiting tasks at once", async () => {
    const h = await limitedHarness(1);
    const blocker = (await h.tasks.submitTask(onBusybox("sleep 60"))).task!;
    const d = (await h.tasks.submitTask(onBusybox("sleep 60"))).task!;
    const e = (await h.tasks.submitTask(onBusybox("sleep 60"))).task!;
    expect([d.state, e.state]).toEqual([TaskState.SUBMITTED, TaskState.SUBMITTED]);

    await h.tasks.updateLifecycleConfig({ config: { maxConcurrentTasks: 3 }, updateMask: { paths: ["max_concurrent_tasks"] } });
    await Promise.all([working(h, d.taskId), working(h, e.taskId)]);
    expect((await h.tasks.getTask({ taskId: blocker.taskId })).task!.state).toBe(TaskState.WORKING);
    for (const t of [blocker, d, e]) await h.tasks.cancelTask({ taskId: t.taskId });
  });

  it("cancels a waiting task (it never starts) and a running one (its container is killed and gone)", async () => {
    const h = await limitedHarness(1);
    const running = (await h.tasks.submitTask(onBusybox("echo begun; sleep 60"))).task!;
    const waiting = (await h.tasks.submitTask(onBusybox("echo never"))).task!;
    expect(waiting.state).toBe(TaskState.SUBMITTED);
    const live = await working(h, running.taskId);

    const w = (await h.tasks.cancelTask({ taskId: waiting.taskId })).task!;
    expect(w).toMatchObject({ state: TaskState.CANCELED, stateReason: "CANCELED_BY_USER", containerId: "" });
    expect(w.startedAt).toBeUndefined();
    expect(await containersLabelled("agentorch.task-id", waiting.taskId)).toEqual([]);

    await vi.waitFor(async () => {
      const out = await h.agents.getAgentOutput({ agentId: running.agentId });
      expect(out.output).toBe("begun\n");
    });
    const r = (await h.tasks.cancelTask({ taskId: running.taskId })).task!;
    expect(r).toMatchObject({ state: TaskState.CANCELED, stateReason: "CANCELED_BY_USER" });
    expect(r.result?.output).toBe("begun\n");
    await noContainerLeft("agentorch.task-id", running.taskId);
    expect(await testDocker().getContainer(live.containerId).inspect().catch((err: { statusCode?: number }) => err.statusCode)).toBe(404);
    expect(await connectCode(h.tasks.cancelTask({ taskId: running.taskId }))).toBe(Code.FailedPrecondition);
  });

  it("WatchTask through @grpc/grpc-js and buf curl shows SUBMITTED -> WORKING -> COMPLETED, then the stream ends", async () => {
    const h = await limitedHarness(1);
    // The blocker holds the only slot until both watchers have seen SUBMITTED.
    const blocker = (await h.tasks.submitTask(onBusybox("sleep 60"))).task!;
    const task = (await h.tasks.submitTask(onBusybox("echo watched"))).task!;
    expect(task.state).toBe(TaskState.SUBMITTED);

    let grpcFirst = "";
    let bufFirst = "";
    const viaGrpcJs = grpcJsWatch(h.server, task.taskId, (s) => (grpcFirst ||= s));
    const viaBufCurl = bufCurlWatch(h.server, task.taskId, (s) => (bufFirst ||= s));
    // Both are awaited below; these only keep a failure before then from also surfacing as unhandled.
    viaGrpcJs.catch(() => {});
    viaBufCurl.catch(() => {});
    await vi.waitFor(() => expect([grpcFirst, bufFirst]).toEqual(["TASK_STATE_SUBMITTED", "TASK_STATE_SUBMITTED"]), { timeout: 20_000 });
    await h.tasks.cancelTask({ taskId: blocker.taskId });

    const expected = ["TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"];
    const collapse = (states: string[]) => states.filter((s, i) => s !== states[i - 1]);
    // WORKING may come more than once (e.g. when the container id is recorded); the sequence is what counts.
    expect(collapse(await viaGrpcJs)).toEqual(expected);
    expect(collapse(await viaBufCurl)).toEqual(expected);
  });

  it("after a restart, a waiting task still runs and a working one is adopted and finishes normally", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-e2e-restart-"));
    tempDirs.push(dataDir);
    const first = await limitedHarness(1, { dataDir });
    const workingTask = (await first.tasks.submitTask(onBusybox("echo begun; sleep 4; echo adopted"))).task!;
    const waitingTask = (await first.tasks.submitTask(onBusybox("echo waited"))).task!;
    const live = await working(first, workingTask.taskId);
    expect((await first.tasks.getTask({ taskId: waitingTask.taskId })).task!.state).toBe(TaskState.SUBMITTED);
    await first.server.stop();

    const second = await harness({ dataDir });
    expect(second.server.app.instanceId).toBe(first.server.app.instanceId);
    const w = await finished(second, workingTask.taskId);
    expect(w).toMatchObject({ state: TaskState.COMPLETED, containerId: live.containerId });
    expect(w.result?.output).toBe("begun\nadopted\n");
    const q = await finished(second, waitingTask.taskId);
    expect(q.state).toBe(TaskState.COMPLETED);
    expect(q.result?.output).toBe("waited\n");
    expect(startedAt(q)).toBeGreaterThanOrEqual(finishedAt(w)); // the stored limit of 1 still holds
    await noContainerLeft("agentorch.agent-id", workingTask.agentId);
    await noContainerLeft("agentorch.agent-id", waitingTask.agentId);
  });
});
