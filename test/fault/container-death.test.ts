/**
 * Containers die from outside while the service runs: `docker kill`, an OOM kill, and
 * `docker rm -f`, each on a plain running agent and on an agent running a task. The
 * service must notice each from the engine's event stream (timers that could do the work
 * are set to an hour) and handle it as the foundation and lifecycle issues say:
 * - agent: FAILED with exit_code 137 / "OOM killed" / "container lost";
 * - task: FAILED with EXIT_NONZERO (137) / OOM_KILLED / ZOMBIE;
 * - no container of theirs is left in the engine.
 * Latencies (action -> WatchAgents/WatchTasks event) are measured and reported, not
 * asserted tightly: tests do not assert wall-clock speed; the bound below only catches a
 * death that was never noticed by the event path.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { expect, it, vi } from "vitest";
import { describeDocker, TEST_IMAGE } from "../support/docker.js";
import { faultConfig, reportFigures } from "./support/fault-config.js";
import { useFaultFixture } from "./support/fixture.js";
import { serverStream } from "../support/grpc.js";
import { type Clients, connect, unary } from "./support/grpc.js";
import { type AgentView, containersOf, listAgents, status, type TaskView } from "./support/world.js";

const cfg = faultConfig();
const fixture = useFaultFixture({ name: "death", stopTimeoutMs: 15_000, teardownTimeoutMs: 120_000 });

type Death = "kill" | "oom" | "rm";
const DEATHS: Death[] = ["kill", "oom", "rm"];
/** Waits for a trigger file in its workspace, then (for the OOM case) eats memory until killed. */
const WAIT_THEN_EAT = 'while [ ! -f /workspace/go ]; do sleep 0.05; done; x=a; while true; do x="$x$x"; done';

const NOTICE_BOUND_MS = 10_000;

/** Records when each agent / task first reaches a state, as seen on the watch streams. */
class Seen {
  readonly at = new Map<string, number>();
  constructor(
    private readonly c: Clients,
    private readonly revision: number,
  ) {}
  private streams: { cancel(): void }[] = [];
  start(): void {
    const agents = serverStream<{ event?: { type: string; agent?: AgentView } }>(this.c.orch, "WatchAgents", { resume_after_revision: String(this.revision) });
    agents.on("data", (r) => {
      const a = r.event?.agent;
      if (a && a.status === status("failed") && !this.at.has(`agent/${a.agent_id}`)) this.at.set(`agent/${a.agent_id}`, Date.now());
    });
    const tasks = serverStream<{ event?: { type: string; task?: TaskView } }>(this.c.life, "WatchTasks", { resume_after_revision: String(this.revision) });
    tasks.on("data", (r) => {
      const t = r.event?.task;
      if (t && t.state === "TASK_STATE_FAILED" && !this.at.has(`task/${t.task_id}`)) this.at.set(`task/${t.task_id}`, Date.now());
    });
    agents.on("error", () => undefined);
    tasks.on("error", () => undefined);
    this.streams = [agents, tasks];
  }
  stop(): void {
    for (const s of this.streams) s.cancel();
  }
}

describeDocker("containers dying from outside (docker kill, OOM, docker rm -f)", () => {
  it(`notices and handles each death, on plain agents and on agents running a task (${cfg.deathRounds} round(s))`, async () => {
    const proc = fixture.spawn({ env: { AGENTORCH_REAP_INTERVAL_MS: "3600000", AGENTORCH_ENFORCE_INTERVAL_MS: "3600000" } });
    const info = await proc.started;
    const instanceId = info.instanceId;
    const c = fixture.closeAtEnd(connect(info.address));
    const docker = fixture.engine.docker;
    const latencies: Record<string, number[]> = {};

    for (let round = 0; round < cfg.deathRounds; round++) {
      const tag = `${round}-${randomBytes(2).toString("hex")}`;
      const { revision } = await listAgents(c);
      const seen = new Seen(c, revision);
      seen.start();

      // One plain agent and one task per kind of death.
      const plain = new Map<Death, AgentView>();
      const tasked = new Map<Death, { agent: AgentView; task: TaskView }>();
      for (const death of DEATHS) {
        const resources = death === "oom" ? { memory_bytes: String(8 * 1024 * 1024) } : undefined;
        const plainId = `death-${death}-${tag}`;
        await unary(c.orch, "RegisterAgent", { agent: { agent_id: plainId, image: TEST_IMAGE, command: ["sh", "-c", WAIT_THEN_EAT], resources } });
        plain.set(death, (await unary<{ agent: AgentView }>(c.orch, "StartAgent", { agent_id: plainId })).agent);
        const taskAgentId = `death-task-${death}-${tag}`;
        await unary(c.orch, "RegisterAgent", { agent: { agent_id: taskAgentId, image: TEST_IMAGE, command: ["sh", "-c", WAIT_THEN_EAT], resources } });
        const task = (await unary<{ task: TaskView }>(c.life, "SubmitTask", { directive: { goal: `die by ${death}` }, agent_id: taskAgentId })).task;
        tasked.set(death, { agent: { agent_id: taskAgentId } as AgentView, task });
      }
      for (const [death, t] of tasked) {
        const working = await vi.waitFor(
          async () => {
            const got = (await unary<{ task: TaskView }>(c.life, "GetTask", { task_id: t.task.task_id })).task;
            expect([got.state, got.container_id !== ""]).toEqual(["TASK_STATE_WORKING", true]);
            return got;
          },
          { timeout: 30_000, interval: 100 },
        );
        tasked.set(death, { agent: (await unary<{ agent: AgentView }>(c.orch, "GetAgent", { agent_id: t.agent.agent_id })).agent, task: working });
      }

      // The deaths, all at once, each timed from the moment it is caused.
      const caused = new Map<string, { t0: number; death: Death }>();
      const cause = async (death: Death, agent: AgentView, key: string) => {
        caused.set(key, { t0: Date.now(), death });
        if (death === "kill") await docker.getContainer(agent.container_id).kill();
        else if (death === "rm") await docker.getContainer(agent.container_id).remove({ force: true });
        else writeFileSync(path.join(agent.workspace_path, "go"), "");
      };
      await Promise.all([
        ...[...plain].map(([death, a]) => cause(death, a, `agent/${a.agent_id}`)),
        ...[...tasked].map(([death, t]) => cause(death, t.agent, `task/${t.task.task_id}`)),
      ]);

      const expectedAgent: Record<Death, (a: AgentView) => void> = {
        kill: (a) => expect([a.status, a.exit_code, a.status_reason]).toEqual([status("failed"), 137, "exited with code 137"]),
        oom: (a) => expect([a.status, a.status_reason]).toEqual([status("failed"), expect.stringMatching(/^OOM killed/)]),
        rm: (a) => expect([a.status, a.status_reason]).toEqual([status("failed"), "container lost"]),
      };
      const expectedTask: Record<Death, (t: TaskView) => void> = {
        kill: (t) => expect([t.state, t.state_reason, t.result?.exit_code]).toEqual(["TASK_STATE_FAILED", "EXIT_NONZERO", 137]),
        oom: (t) => expect([t.state, t.state_reason]).toEqual(["TASK_STATE_FAILED", "OOM_KILLED"]),
        rm: (t) => expect([t.state, t.state_reason]).toEqual(["TASK_STATE_FAILED", "ZOMBIE"]),
      };
      await vi.waitFor(
        async () => {
          for (const [death, a] of plain) expectedAgent[death]((await unary<{ agent: AgentView }>(c.orch, "GetAgent", { agent_id: a.agent_id })).agent);
          for (const [death, t] of tasked) expectedTask[death]((await unary<{ task: TaskView }>(c.life, "GetTask", { task_id: t.task.task_id })).task);
        },
        { timeout: 30_000, interval: 100 },
      );
      await vi.waitFor(() => expect([...caused.keys()].filter((k) => !seen.at.has(k))).toEqual([]), { timeout: 10_000, interval: 50 });
      seen.stop();
      for (const [key, { t0, death }] of caused) {
        const latency = seen.at.get(key)! - t0;
        (latencies[`${key.split("/")[0]}-${death}`] ??= []).push(latency);
        expect(latency, `${key} noticed through the event stream`).toBeLessThan(NOTICE_BOUND_MS);
      }
      // Nothing of theirs is left in the engine.
      const ours = new Set([...plain.values(), ...[...tasked.values()].map((t) => t.agent)].map((a) => a.agent_id));
      await vi.waitFor(async () => expect((await containersOf(docker, instanceId)).filter((x) => ours.has(x.agentId))).toEqual([]), {
        timeout: 15_000,
        interval: 200,
      });
    }
    expect(proc.hasExited).toBe(false);
    const summary = Object.fromEntries(
      Object.entries(latencies).map(([death, ms]) => [death, { n: ms.length, maxMs: Math.max(...ms), medianMs: ms.sort((a, b) => a - b)[Math.floor(ms.length / 2)] }]),
    );
    reportFigures("container-death", { rounds: cfg.deathRounds, noticeLatency: summary });
  }, 120_000 + cfg.deathRounds * 60_000);
});
