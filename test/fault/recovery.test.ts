/**
 * Two recovery paths the random kill loop (crash-restart.test.ts) found broken, pinned
 * down deterministically: the service (in process) is stopped while things are half done,
 * then started again on the same data directory.
 * - A task whose container exited while the service was down ends with that exit
 *   (COMPLETED with its output), not FAILED/CONTAINER_LOST.
 * - An ephemeral agent left without a task (the process died between the task's end and the
 *   agent's removal, or between the agent's creation and its task's) is removed at start.
 * - A container whose exit was recorded, but which was never removed nor its exit reported
 *   (the process died inside the exit handling), is removed at start and its task finished
 *   with the recorded exit.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { describeDocker, TEST_IMAGE } from "../support/docker.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { type FaultEngine, faultEngine } from "./support/engine.js";
import { type Clients, connect, unary } from "./support/grpc.js";
import type { TaskView } from "./support/world.js";

let engine: FaultEngine;
const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-fault-recovery-"));
const dataDir2 = mkdtempSync(path.join(tmpdir(), "agentorch-fault-recovery-"));
const servers: TestServer[] = [];

beforeAll(async () => {
  engine = await faultEngine();
}, 120_000);

afterAll(async () => {
  const instances = new Set(servers.map((s) => s.app.instanceId));
  for (const s of servers) await s.stop();
  for (const instance of instances) await engine?.removeContainersOf(instance);
  await engine?.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(dataDir2, { recursive: true, force: true });
}, 120_000);

async function start(dir = dataDir): Promise<{ server: TestServer; c: Clients }> {
  const server = await startTestServer({ dataDir: dir, env: engine.dockerHost ? { DOCKER_HOST: engine.dockerHost } : {} });
  servers.push(server);
  return { server, c: connect(server.address) };
}

/** Waits until the task is WORKING in a container; returns it. */
function workingTask(c: Clients, taskId: string): Promise<TaskView> {
  return vi.waitFor(
    async () => {
      const t = (await unary<{ task: TaskView }>(c.life, "GetTask", { task_id: taskId })).task;
      expect([t.state, t.container_id !== ""]).toEqual(["TASK_STATE_WORKING", true]);
      return t;
    },
    { timeout: 30_000, interval: 100 },
  );
}

/** Waits until the container has stopped running (it ends while nobody watches). */
async function containerEnded(containerId: string): Promise<void> {
  await vi.waitFor(async () => expect((await engine.docker.getContainer(containerId).inspect()).State.Running).toBe(false), {
    timeout: 30_000,
    interval: 200,
  });
}

describeDocker("recovery after a stop with work half done", () => {
  it("finishes a task whose container exited while the service was down with that exit, and removes ephemeral agents left without a task", async () => {
    const first = await start();
    await unary(first.c.orch, "RegisterAgent", { agent: { agent_id: "rec-worker", image: TEST_IMAGE, command: ["sh", "-c", "sleep 2; echo finished"] } });
    const task = (await unary<{ task: TaskView }>(first.c.life, "SubmitTask", { directive: { goal: "outlive the service" }, agent_id: "rec-worker" })).task;
    const working = await workingTask(first.c, task.task_id);
    // An ephemeral agent whose task never got stored (as if the process died in between).
    await first.server.app.agents.registerEphemeral({ agentId: "eph-left-behind", image: TEST_IMAGE, command: ["true"] });
    first.c.close();
    await first.server.stop(); // containers keep running; the task stays WORKING in the store

    // The container ends while nobody watches.
    await containerEnded(working.container_id);

    const second = await start();
    try {
      const done = await vi.waitFor(
        async () => {
          const t = (await unary<{ task: TaskView }>(second.c.life, "GetTask", { task_id: task.task_id })).task;
          expect(t.state).not.toBe("TASK_STATE_WORKING");
          return t;
        },
        { timeout: 30_000, interval: 100 },
      );
      expect([done.state, done.state_reason, done.result?.exit_code, done.result?.output]).toEqual(["TASK_STATE_COMPLETED", "", 0, "finished\n"]);
      const agents = (await unary<{ agents: { agent_id: string }[] }>(second.c.orch, "ListAgents", {})).agents.map((a) => a.agent_id);
      expect(agents).toEqual(["rec-worker"]);
    } finally {
      second.c.close();
    }
  }, 120_000);

  it("removes a container whose exit was recorded but never finished, and finishes its task with that exit", async () => {
    const first = await start(dataDir2);
    await unary(first.c.orch, "RegisterAgent", { agent: { agent_id: "rec-half", image: TEST_IMAGE, command: ["sh", "-c", "sleep 1; echo half"] } });
    const task = (await unary<{ task: TaskView }>(first.c.life, "SubmitTask", { directive: { goal: "die mid-exit" }, agent_id: "rec-half" })).task;
    const working = await workingTask(first.c, task.task_id);
    first.c.close();
    await first.server.stop();
    await containerEnded(working.container_id);
    // The state a SIGKILL right after the exit's first write leaves: the agent recorded IDLE
    // with exit code 0, its container still there, the exit never reported to the task.
    const store = openSqliteStore({ path: path.join(dataDir2, "agentorch.db"), logger: first.server.app.logger });
    const agent = store.getAgent("rec-half")!;
    store.updateAgent({ ...agent, status: "idle", statusReason: "exited with code 0", exitCode: 0, tokenHash: "" });
    store.close();

    const second = await start(dataDir2);
    try {
      const done = await vi.waitFor(
        async () => {
          const t = (await unary<{ task: TaskView }>(second.c.life, "GetTask", { task_id: task.task_id })).task;
          expect(t.state).not.toBe("TASK_STATE_WORKING");
          return t;
        },
        { timeout: 30_000, interval: 100 },
      );
      expect([done.state, done.result?.exit_code, done.result?.output]).toEqual(["TASK_STATE_COMPLETED", 0, "half\n"]);
      await vi.waitFor(async () => expect((await engine.docker.listContainers({ all: true, filters: { label: ["agentorch.agent-id=rec-half"] } })).length).toBe(0), {
        timeout: 15_000,
        interval: 100,
      });
    } finally {
      second.c.close();
    }
  }, 120_000);
});
