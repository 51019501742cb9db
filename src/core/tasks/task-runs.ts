/**
 * The run lifecycle of tasks: start a task that got a scheduler slot, stop it for a
 * reason (timeout, cancel, zombie: remembered in its Run), turn its container's exit
 * (AgentService.onExit) into an outcome, and finish it. Every path ends in finish(),
 * which writes the terminal state, frees the scheduler slot and the agent, and removes
 * an ephemeral agent.
 */
import type { Agent } from "../agent.js";
import type { AgentService } from "../agent-service.js";
import type { AgentExit } from "../agent-supervisor.js";
import { errorMessage, notFound } from "../errors.js";
import type { EventBus } from "../event-bus.js";
import type { Clock, Logger, Workspaces } from "../ports.js";
import { resultFilePaths, taskEnvironment } from "./directive.js";
import type { LifecycleConfig } from "./lifecycle-config.js";
import type { TaskStore } from "./ports.js";
import { parseResultData, RESULT_FILE_MAX_BYTES } from "./result.js";
import type { Scheduler } from "./scheduler.js";
import { effectiveTimeoutMs, isTerminal, type Task, type TaskResult, type TaskState, type TaskStateReason, validateTaskId } from "./task.js";

export interface TaskRunsDeps {
  agents: AgentService;
  tasks: TaskStore;
  workspaces: Workspaces;
  clock: Clock;
  logger: Logger;
  bus: EventBus;
  scheduler: Scheduler;
  /** The lifecycle config in force (it changes live). */
  config: () => LifecycleConfig;
  /** Keeps a background promise until close, and logs its failure. */
  track: (p: Promise<unknown>) => void;
}

/** A task this process is running: why it is being stopped, if it is, and when it ends. */
export interface Run {
  abort: AbortController;
  timer?: NodeJS.Timeout;
  stopReason?: TaskStateReason;
  stopMessage?: string;
  done: Promise<void>;
  resolveDone: () => void;
}

const OUTPUT_TEXT = new TextDecoder("utf-8", { fatal: false });

export class TaskRuns {
  private readonly runs = new Map<string, Run>();
  private readonly startListeners = new Set<(task: Task, agent: Agent) => void>();
  /** Tasks whose container exit is being handled (onAgentExit under way): recovery leaves them to it. */
  readonly exiting = new Set<string>();
  /** False while the service recovers after a restart: a container lost then is CONTAINER_LOST, later ZOMBIE. */
  private opened = false;
  private closed = false;

  constructor(private readonly deps: TaskRunsDeps) {
    // Attached before the agents reconcile at start-up, so exits noticed then finish their tasks.
    deps.agents.onExit((exit) => {
      const taskId = exit.taskId;
      if (!taskId) return;
      this.exiting.add(taskId);
      this.deps.track(this.onAgentExit(exit).finally(() => this.exiting.delete(taskId)));
    });
  }

  /** Recovery is over: a container lost from now on makes its task a ZOMBIE. */
  markOpened(): void {
    this.opened = true;
  }

  /** No new cleanup starts (an ephemeral agent is left to the next recovery); timers are cleared. */
  close(): void {
    this.closed = true;
    for (const run of this.runs.values()) if (run.timer) clearTimeout(run.timer);
  }

  /** Called when a task's container is about to start. */
  onTaskStart(cb: (task: Task, agent: Agent) => void): () => void {
    this.startListeners.add(cb);
    return () => this.startListeners.delete(cb);
  }

  /** The run of a task this process owns, if any. */
  runOf(taskId: string): Run | undefined {
    return this.runs.get(taskId);
  }

  /** Starts a task that got a slot. The synchronous part marks it WORKING before anything else can run. */
  async run(taskId: string): Promise<void> {
    const { agents, tasks } = this.deps;
    const task = tasks.getTask(taskId);
    if (!task || task.state !== "submitted") {
      this.deps.scheduler.release(taskId);
      return;
    }
    const agent = agents.find(task.agentId);
    // A paused agent is idle too: its start for the task replaces the frozen container.
    if (!agent || agent.currentTaskId !== taskId || (agent.status !== "idle" && agent.status !== "failed" && agent.status !== "paused")) {
      await this.finish(taskId, "rejected", "AGENT_UNAVAILABLE", agent ? `agent is ${agent.status.toUpperCase()}` : "agent was removed");
      return;
    }
    const timeoutMs = effectiveTimeoutMs(task.timeoutMs, this.deps.config().maxExecutionTimeMs);
    const working = this.writeTask({ ...task, state: "working", startedAt: this.deps.clock.now(), timeoutMs });
    const run = this.newRun(taskId);
    for (const cb of this.startListeners) cb(working, agent);
    const paths = resultFilePaths(taskId, agent.config.workspace.mountPoint);
    try {
      await this.deps.workspaces.removeFile(agent.config.agentId, paths.relative);
      const started = await agents.start(agent.config.agentId, run.abort.signal, {
        taskId,
        env: taskEnvironment(working, paths.inContainer),
      });
      const current = this.task(taskId);
      if (current.state === "working") this.writeTask({ ...current, containerId: started.containerId });
      run.timer = setTimeout(() => this.deps.track(this.stopRun(taskId, "TIMEOUT", `timed out after ${timeoutMs} ms`)), timeoutMs);
      this.deps.logger.info({ taskId, agentId: agent.config.agentId, containerId: started.containerId, timeoutMs }, "task working");
    } catch (err) {
      agents.recordFailedRun(agent.config.agentId);
      const reason = run.stopReason ?? "SPAWN_FAILED";
      await this.finish(taskId, reason === "CANCELED_BY_USER" ? "canceled" : "failed", reason, run.stopMessage ?? `container did not start: ${errorMessage(err)}`);
    }
  }

  /** Stops a working task's container for a reason; resolves once the task is terminal. */
  async stopRun(taskId: string, reason: TaskStateReason, message: string): Promise<void> {
    const task = this.task(taskId);
    if (isTerminal(task.state)) return;
    const run = this.runs.get(taskId) ?? this.newRun(taskId);
    if (run.stopReason) return run.done;
    run.stopReason = reason;
    run.stopMessage = message;
    if (run.timer) clearTimeout(run.timer);
    const agent = this.deps.agents.find(task.agentId);
    if (agent?.status === "running" && agent.currentTaskId === taskId) {
      this.deps.logger.info({ taskId, reason }, "stopping task");
      try {
        await this.deps.agents.stopAs(agent, "idle", `task ${reason.toLowerCase().replace(/_/g, " ")}`);
      } catch (err) {
        await this.finish(taskId, "failed", reason, `${message}; stop failed: ${errorMessage(err)}`);
      }
    } else if (agent?.status === "starting") {
      run.abort.abort(); // the start rejects, and run() finishes the task with stopReason
    } else {
      await this.finish(taskId, reason === "CANCELED_BY_USER" ? "canceled" : "failed", reason, message);
    }
    return run.done;
  }

  private async onAgentExit(exit: AgentExit): Promise<void> {
    const taskId = exit.taskId!;
    // Decided now: recovery may complete while the result file is read below.
    const recovering = !this.opened;
    const task = this.deps.tasks.getTask(taskId);
    if (!task || task.state !== "working") return;
    const run = this.runs.get(taskId);
    const agentId = exit.agent.config.agentId;
    const paths = resultFilePaths(taskId, exit.agent.config.workspace.mountPoint);
    const bytes = await this.deps.workspaces.readFile(agentId, paths.relative, RESULT_FILE_MAX_BYTES + 1).catch(() => undefined);
    const { data, dataError } = parseResultData(bytes);
    await this.deps.workspaces.removeFile(agentId, paths.relative).catch(() => undefined);
    const result: TaskResult = {
      success: exit.cause === "exited" && exit.exitCode === 0,
      exitCode: exit.cause === "exited" ? exit.exitCode : undefined,
      output: exit.output ? OUTPUT_TEXT.decode(exit.output.data) : "",
      outputTruncated: exit.output?.truncated ?? false,
      durationMs: this.deps.clock.now() - (task.startedAt ?? this.deps.clock.now()),
      data,
      dataError,
    };
    if (exit.cause === "exited") {
      if (result.success) await this.finish(taskId, "completed", undefined, "", result);
      else if (exit.oomKilled) await this.finish(taskId, "failed", "OOM_KILLED", `container was OOM-killed (exit code ${exit.exitCode})`, result);
      else await this.finish(taskId, "failed", "EXIT_NONZERO", `exited with code ${exit.exitCode}`, result);
    } else if (exit.cause === "lost") {
      if (!recovering) await this.finish(taskId, "failed", "ZOMBIE", "its container vanished", result);
      else await this.finish(taskId, "failed", "CONTAINER_LOST", "the task's container was gone when the service restarted", result);
    } else {
      const reason = run?.stopReason;
      if (reason === "CANCELED_BY_USER") await this.finish(taskId, "canceled", reason, run?.stopMessage ?? "", result);
      else if (reason) await this.finish(taskId, "failed", reason, run?.stopMessage ?? "", result);
      else await this.finish(taskId, "failed", "AGENT_UNAVAILABLE", `the agent's container was stopped: ${exit.agent.statusReason}`, result);
    }
  }

  /** Every path ends here: terminal state, slot freed, agent released (an ephemeral one removed). */
  async finish(taskId: string, state: TaskState, reason: TaskStateReason | undefined, message: string, result?: TaskResult): Promise<void> {
    const { agents } = this.deps;
    const task = this.task(taskId);
    if (isTerminal(task.state)) return;
    const run = this.runs.get(taskId);
    if (run?.timer) clearTimeout(run.timer);
    this.writeTask({ ...task, state, stateReason: reason, stateMessage: message, finishedAt: this.deps.clock.now(), result: result ?? task.result });
    this.runs.delete(taskId);
    this.deps.scheduler.release(taskId);
    const level = state === "completed" ? "info" : "warn";
    this.deps.logger[level]({ taskId, agentId: task.agentId, state, reason, message: message || undefined }, "task finished");
    try {
      const released = agents.releaseFromTask(task.agentId, taskId);
      if (released?.ephemeral && !this.closed) await this.removeEphemeral(released);
    } catch (err) {
      this.deps.logger.warn({ taskId, agentId: task.agentId, err: errorMessage(err) }, "task cleanup failed");
    } finally {
      run?.resolveDone();
    }
  }

  private async removeEphemeral(agent: Agent): Promise<void> {
    const agentId = agent.config.agentId;
    // A stop may still be settling; wait for it so the container is not left behind.
    for (let i = 0; i < 50; i++) {
      const current = this.deps.agents.find(agentId);
      if (!current) return;
      if (current.status !== "starting" && current.status !== "stopping") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.deps.agents.remove(agentId, { deleteWorkspace: true });
  }

  adopt(task: Task): void {
    const run = this.newRun(task.taskId);
    this.deps.scheduler.markRunning(task.taskId);
    const remaining = Math.max(0, (task.startedAt ?? 0) + task.timeoutMs - this.deps.clock.now());
    run.timer = setTimeout(() => this.deps.track(this.stopRun(task.taskId, "TIMEOUT", `timed out after ${task.timeoutMs} ms`)), remaining);
    this.deps.logger.info({ taskId: task.taskId, containerId: task.containerId, remainingMs: remaining }, "adopted working task");
  }

  private newRun(taskId: string): Run {
    let resolveDone: () => void = () => {};
    const done = new Promise<void>((r) => {
      resolveDone = r;
    });
    const run: Run = { abort: new AbortController(), done, resolveDone };
    this.runs.set(taskId, run);
    return run;
  }

  private writeTask(task: Task): Task {
    this.deps.bus.publish(this.deps.tasks.updateTask(task));
    return task;
  }

  private task(taskId: string): Task {
    validateTaskId(taskId);
    const task = this.deps.tasks.getTask(taskId);
    if (!task) throw notFound(`task "${taskId}" not found`, { taskId });
    return task;
  }
}
