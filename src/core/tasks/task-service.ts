/**
 * The task use cases behind LifecycleService: submit, run under the scheduler with a
 * timeout, cancel, retry with feedback, reap zombies, and tune the limits live.
 *
 * A task runs as its agent's container (the directive in its environment). The task's
 * end is driven by the agent's container exit (AgentService.onExit): the container
 * exited, was stopped (timeout, cancel, zombie: the reason is remembered in the Run),
 * or vanished. Every path ends in finish(), which writes the terminal state, frees the
 * scheduler slot and the agent, and removes an ephemeral agent.
 */
import type { Agent } from "../agent.js";
import type { AgentExit } from "../agent-supervisor.js";
import { type AgentService, DEFAULT_WATCH_LIMITS, errorMessage, type WatchLimits, type WatchRequest } from "../agent-service.js";
import { validateWatchIds, type WatchItem, watchEvents } from "../watch.js";
import { failedPrecondition, invalidArgument, isAgentorchError, notFound, resourceExhausted } from "../errors.js";
import type { EventBus } from "../event-bus.js";
import { decodePageToken, encodePageToken, pageSize } from "../page-token.js";
import type { Clock, Logger, Store, TaskStore, Workspaces } from "../ports.js";
import {
  buildRetryConstraints,
  type DirectiveInput,
  resultFilePaths,
  type TaskTemplateInput,
  taskEnvironment,
  validateDirective,
  validateGaps,
  validateTemplate,
} from "./directive.js";
import { applyLifecycleConfigUpdate, DEFAULT_LIFECYCLE_CONFIG, type LifecycleConfig, validateLifecycleConfig } from "./lifecycle-config.js";
import { parseResultData, RESULT_FILE_MAX_BYTES } from "./result.js";
import { createScheduler, type Scheduler } from "./scheduler.js";
import {
  assertRetryable,
  assertTaskTransition,
  type Directive,
  effectiveTimeoutMs,
  isTerminal,
  newTaskId,
  type Task,
  type TaskPriority,
  type TaskResult,
  type TaskState,
  type TaskStateReason,
  type TaskTemplate,
  validateTaskId,
  validateTaskTimeoutMs,
} from "./task.js";

export interface SubmitTaskInput {
  directive: DirectiveInput | undefined;
  agentId?: string;
  template?: TaskTemplateInput;
  priority: TaskPriority;
  /** 0: max_execution_time. */
  timeoutMs: number;
  /** The submitting call's W3C traceparent, already validated; its container gets it as AGENTORCH_TRACEPARENT. */
  traceparent?: string;
}

export interface ListTasksInput {
  pageSize: number;
  pageToken: string;
  state?: TaskState;
  agentId?: string;
}

export interface TaskPage {
  tasks: Task[];
  nextPageToken: string;
  revision: number;
}

export interface TaskServiceDeps {
  agents: AgentService;
  tasks: TaskStore;
  store: Store;
  workspaces: Workspaces;
  clock: Clock;
  logger: Logger;
  bus: EventBus;
  /** Used until an UpdateLifecycleConfig has been stored. */
  defaults?: Partial<LifecycleConfig>;
  /** How often zombies are reaped by the timer; 0 disables it. */
  reapIntervalMs: number;
  /** Watch streams' heartbeat interval and per-consumer buffer. */
  watch?: WatchLimits;
}

/** A task this process is running: why it is being stopped, if it is, and when it ends. */
interface Run {
  abort: AbortController;
  timer?: NodeJS.Timeout;
  stopReason?: TaskStateReason;
  stopMessage?: string;
  done: Promise<void>;
  resolveDone: () => void;
}

const CONFIG_META_KEY = "lifecycle_config";
const OUTPUT_TEXT = new TextDecoder("utf-8", { fatal: false });

export class TaskService {
  private config: LifecycleConfig;
  private readonly scheduler: Scheduler;
  private readonly runs = new Map<string, Run>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly logger: Logger;
  private readonly taskStartListeners = new Set<(task: Task, agent: Agent) => void>();
  private reapTimer: NodeJS.Timeout | undefined;
  /** Tasks whose container exit is being handled (onAgentExit under way): recovery leaves them to it. */
  private readonly exiting = new Set<string>();
  /** False while the service recovers after a restart: a container lost then is CONTAINER_LOST, later ZOMBIE. */
  private opened = false;
  private closed = false;

  constructor(private readonly deps: TaskServiceDeps) {
    this.logger = deps.logger.child({ component: "tasks" });
    const stored = deps.store.getMeta(CONFIG_META_KEY);
    this.config = validateLifecycleConfig({
      ...DEFAULT_LIFECYCLE_CONFIG,
      ...deps.defaults,
      ...(stored ? (JSON.parse(stored) as Partial<LifecycleConfig>) : {}),
    });
    this.scheduler = createScheduler({
      maxConcurrent: this.config.maxConcurrentTasks,
      maxQueued: this.config.maxQueuedTasks,
      onStart: (taskId) => this.track(this.run(taskId)),
      logger: this.logger,
    });
    // Attached before the agents reconcile at start-up, so exits noticed then finish their tasks.
    deps.agents.onExit((exit) => {
      const taskId = exit.taskId;
      if (!taskId) return;
      this.exiting.add(taskId);
      this.track(this.onAgentExit(exit).finally(() => this.exiting.delete(taskId)));
    });
  }

  /** Recovers after a restart: adopts working tasks whose containers still run, queues waiting ones. Call after agents.open(). */
  async open(): Promise<void> {
    const { tasks, agents } = this.deps;
    for (const task of tasks.tasksWithState(["working"])) {
      // Its container exited while the service was down; reconciling noticed, and the exit
      // finishes the task with its real outcome (not CONTAINER_LOST).
      if (this.exiting.has(task.taskId)) continue;
      const agent = agents.registry.find(task.agentId);
      if (agent?.status === "running" && agent.currentTaskId === task.taskId && agent.containerId === task.containerId) {
        this.adopt(task);
      } else {
        await this.finish(task.taskId, "failed", "CONTAINER_LOST", "the task's container was gone when the service restarted");
      }
    }
    for (const task of tasks.tasksWithState(["submitted"])) {
      const agent = agents.registry.find(task.agentId);
      if (agent && !agent.currentTaskId) agents.registry.update(agent, { currentTaskId: task.taskId });
      this.scheduler.enqueue(task.taskId, task.priority, task.seq);
    }
    await this.removeOrphanEphemerals();
    this.opened = true;
    if (this.deps.reapIntervalMs > 0) {
      this.reapTimer = setInterval(() => this.track(this.reapZombies()), this.deps.reapIntervalMs);
      this.reapTimer.unref();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reapTimer) clearInterval(this.reapTimer);
    for (const run of this.runs.values()) if (run.timer) clearTimeout(run.timer);
    await Promise.allSettled([...this.pending]);
  }

  /** Called when a task's container is about to start (the A2A card gains capabilities). */
  onTaskStart(cb: (task: Task, agent: Agent) => void): () => void {
    this.taskStartListeners.add(cb);
    return () => this.taskStartListeners.delete(cb);
  }

  // ------------------------------------------------------------------ reads

  get(taskId: string): Task {
    validateTaskId(taskId);
    const task = this.deps.tasks.getTask(taskId);
    if (!task) throw notFound(`task "${taskId}" not found`, { taskId });
    return task;
  }

  list(input: ListTasksInput): TaskPage {
    const limit = pageSize(input.pageSize);
    if (input.agentId !== undefined && input.agentId !== "") validateTaskId(input.agentId, "agent_id");
    const agentId = input.agentId || undefined;
    const filter = `${input.state ?? ""}/${agentId ?? ""}`;
    const after = decodePageToken(input.pageToken, filter);
    const afterSeq = after === undefined ? undefined : Number(after);
    if (afterSeq !== undefined && !Number.isSafeInteger(afterSeq)) throw invalidArgument("page_token is not valid", { field: "page_token" });
    const rows = this.deps.tasks.listTasks({ afterSeq, limit: limit + 1, state: input.state, agentId });
    const revision = this.deps.store.currentRevision();
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    const last = page.at(-1);
    return { tasks: page, nextPageToken: more && last ? encodePageToken(String(last.seq), filter) : "", revision };
  }

  getConfig(): LifecycleConfig {
    return { ...this.config };
  }

  /** Applies the masked fields live: the scheduler's limits at once, max_execution_time to tasks that start later. */
  updateConfig(patch: LifecycleConfig, paths: readonly string[]): LifecycleConfig {
    const next = applyLifecycleConfigUpdate(this.config, patch, paths);
    this.deps.store.setMeta(CONFIG_META_KEY, JSON.stringify(next));
    this.config = next;
    this.scheduler.setMaxQueued(next.maxQueuedTasks);
    this.scheduler.setMaxConcurrent(next.maxConcurrentTasks);
    this.logger.info({ config: next }, "lifecycle config updated");
    return this.getConfig();
  }

  stats() {
    return this.scheduler.stats();
  }

  /**
   * Task events, replayed after a revision or after a snapshot, then live. The snapshot
   * holds the SUBMITTED and WORKING tasks (finished ones are kept forever, so sending all
   * of them would grow without bound) plus every task named in ids, whatever its state.
   */
  watch(req: WatchRequest & { agentId?: string }): AsyncGenerator<WatchItem<Task>> {
    const ids = validateWatchIds(req.ids, validateTaskId, "task_ids");
    const agentId = req.agentId ? validateTaskId(req.agentId, "agent_id") : undefined;
    const match = (id: string, t: Task) => (!ids || ids.has(id)) && (!agentId || t.agentId === agentId);
    const { tasks, store, bus } = this.deps;
    const snapshot = () => {
      const open = tasks.tasksWithState(["submitted", "working"]).filter((t) => match(t.taskId, t));
      const named = ids ? [...ids].flatMap((id) => tasks.getTask(id) ?? []).filter((t) => !open.some((o) => o.taskId === t.taskId)) : [];
      return [...open, ...named].filter((t) => match(t.taskId, t));
    };
    return watchEvents<Task>(store, bus, {
      kind: "task",
      match,
      resumeAfter: req.sendInitialState ? undefined : req.resumeAfter,
      snapshot: req.sendInitialState ? snapshot : undefined,
      ...(this.deps.watch ?? DEFAULT_WATCH_LIMITS),
      signal: req.signal,
      onCutOff: req.onCutOff,
    });
  }

  // ------------------------------------------------------------------ submit, cancel, retry

  async submit(input: SubmitTaskInput): Promise<Task> {
    const directive = validateDirective(input.directive);
    return this.submitValidated(directive, input, { attempt: 1 });
  }

  async cancel(taskId: string): Promise<Task> {
    const task = this.get(taskId);
    assertTaskTransition(taskId, task.state, "canceled", "cancel");
    if (task.state === "submitted") {
      this.scheduler.remove(taskId);
      await this.finish(taskId, "canceled", "CANCELED_BY_USER", "canceled before it started");
    } else {
      await this.stopRun(taskId, "CANCELED_BY_USER", "canceled while working");
    }
    return this.get(taskId);
  }

  async retry(taskId: string, gaps: string[]): Promise<Task> {
    const previous = this.get(taskId);
    assertRetryable(previous);
    const constraints = buildRetryConstraints(previous, validateGaps(gaps));
    const directive: Directive = { ...previous.directive, constraints };
    const target = previous.ephemeral ? { template: previous.template } : { agentId: previous.agentId };
    return this.submitValidated(
      directive,
      { directive, priority: previous.priority, timeoutMs: previous.requestedTimeoutMs ?? 0, ...target },
      { attempt: previous.attempt + 1, parentTaskId: previous.taskId },
    );
  }

  /**
   * Fails and cleans up WORKING tasks whose container is gone, that no run of this
   * process owns, or that outran zombie_timeout. Returns their ids.
   */
  async reapZombies(signal?: AbortSignal): Promise<string[]> {
    const now = this.deps.clock.now();
    const reaped: string[] = [];
    for (const task of this.deps.tasks.tasksWithState(["working"])) {
      const run = this.runs.get(task.taskId);
      if (run?.stopReason) continue; // already being stopped
      const tooOld = now - (task.startedAt ?? now) > this.config.zombieTimeoutMs;
      let gone = false;
      if (task.containerId) {
        const agent = this.deps.agents.registry.find(task.agentId);
        // An agent no longer on this container has had its exit noticed: the task is being finished.
        if (agent && agent.containerId === task.containerId && agent.status !== "running" && !tooOld) continue;
        let state: "running" | "exited" | "gone";
        try {
          state = await this.deps.agents.containerState(task.containerId, signal);
        } catch (err) {
          this.logger.debug({ taskId: task.taskId, err: errorMessage(err) }, "zombie check skipped: engine unreachable");
          continue;
        }
        // An exited container's end is on its way through the events; only a vanished one is a zombie.
        gone = state === "gone";
      } else {
        gone = !run; // no container yet and nobody starting one
      }
      if (!tooOld && !gone) continue;
      const message = tooOld ? `ran longer than zombie_timeout (${this.config.zombieTimeoutMs} ms)` : "its container is gone";
      this.logger.warn({ taskId: task.taskId, reason: message }, "reaping zombie task");
      if (run && !gone) await this.stopRun(task.taskId, "ZOMBIE", message);
      else {
        const agent = this.deps.agents.registry.find(task.agentId);
        if (agent?.status === "running" && agent.currentTaskId === task.taskId) await this.stopRun(task.taskId, "ZOMBIE", message);
        else await this.finish(task.taskId, "failed", "ZOMBIE", message);
      }
      reaped.push(task.taskId);
    }
    return reaped;
  }

  // ------------------------------------------------------------------ internals

  private async submitValidated(
    directive: Directive,
    input: Omit<SubmitTaskInput, "directive"> & { directive: unknown },
    lineage: { attempt: number; parentTaskId?: string },
  ): Promise<Task> {
    const timeoutMs = validateTaskTimeoutMs(input.timeoutMs);
    const hasAgent = input.agentId !== undefined && input.agentId !== "";
    if (hasAgent === (input.template !== undefined)) throw invalidArgument("give exactly one of agent_id and template", { field: "target" });
    if (this.scheduler.stats().waiting >= this.config.maxQueuedTasks) {
      throw resourceExhausted(`too many waiting tasks (max_queued_tasks ${this.config.maxQueuedTasks})`);
    }
    const { agents } = this.deps;
    const taskId = newTaskId();
    let agent: Agent;
    let template: TaskTemplate | undefined;
    if (hasAgent) {
      agent = agents.get(input.agentId!);
      this.assertAvailable(agent);
    } else {
      template = validateTemplate(input.template);
      agent = await agents.registerEphemeral({
        agentId: `eph-${taskId.slice("task-".length)}`,
        name: `ephemeral agent of ${taskId}`,
        image: template.image,
        command: template.command,
        env: template.env,
        policy: template.policy,
        resources: template.resources,
        lifecycle: { maxIdleMs: 0 },
      });
    }
    // From here to the enqueue nothing awaits: the check above and the reservation below are atomic.
    const task: Task = {
      taskId,
      agentId: agent.config.agentId,
      directive,
      priority: input.priority,
      state: "submitted",
      stateMessage: "",
      attempt: lineage.attempt,
      parentTaskId: lineage.parentTaskId,
      createdAt: this.deps.clock.now(),
      timeoutMs,
      requestedTimeoutMs: timeoutMs,
      template,
      ephemeral: template !== undefined,
      containerId: "",
      seq: this.deps.tasks.nextSeq(),
      ...(input.traceparent ? { traceparent: input.traceparent } : {}),
    };
    this.deps.bus.publish(this.deps.tasks.insertTask(task));
    agents.registry.update(agent, { currentTaskId: taskId });
    this.logger.info({ taskId, agentId: task.agentId, priority: task.priority, attempt: task.attempt }, "task submitted");
    this.scheduler.enqueue(taskId, task.priority, task.seq);
    return this.get(taskId);
  }

  private assertAvailable(agent: Agent): void {
    const agentId = agent.config.agentId;
    if (agent.currentTaskId) throw failedPrecondition(`agent "${agentId}" is busy with task ${agent.currentTaskId}`, { agentId });
    if (agent.status !== "idle" && agent.status !== "failed") {
      throw failedPrecondition(`agent "${agentId}" is ${agent.status.toUpperCase()}: a task needs an IDLE or FAILED agent`, { agentId });
    }
  }

  /** Starts a task that got a slot. The synchronous part marks it WORKING before anything else can run. */
  private async run(taskId: string): Promise<void> {
    const { agents, tasks } = this.deps;
    const task = tasks.getTask(taskId);
    if (!task || task.state !== "submitted") {
      this.scheduler.release(taskId);
      return;
    }
    const agent = agents.registry.find(task.agentId);
    if (!agent || agent.currentTaskId !== taskId || (agent.status !== "idle" && agent.status !== "failed")) {
      await this.finish(taskId, "rejected", "AGENT_UNAVAILABLE", agent ? `agent is ${agent.status.toUpperCase()}` : "agent was removed");
      return;
    }
    const timeoutMs = effectiveTimeoutMs(task.timeoutMs, this.config.maxExecutionTimeMs);
    const working = this.writeTask({ ...task, state: "working", startedAt: this.deps.clock.now(), timeoutMs });
    const run = this.newRun(taskId);
    for (const cb of this.taskStartListeners) cb(working, agent);
    const paths = resultFilePaths(taskId, agent.config.workspace.mountPoint);
    try {
      await this.deps.workspaces.removeFile(agent.config.agentId, paths.relative);
      const started = await agents.start(agent.config.agentId, run.abort.signal, {
        taskId,
        env: taskEnvironment(working, paths.inContainer),
      });
      const current = this.get(taskId);
      if (current.state === "working") this.writeTask({ ...current, containerId: started.containerId });
      run.timer = setTimeout(() => this.track(this.stopRun(taskId, "TIMEOUT", `timed out after ${timeoutMs} ms`)), timeoutMs);
      this.logger.info({ taskId, agentId: agent.config.agentId, containerId: started.containerId, timeoutMs }, "task working");
    } catch (err) {
      const current = agents.registry.find(agent.config.agentId);
      if (current) agents.registry.update(current, { executionCount: current.executionCount + 1 });
      const reason = run.stopReason ?? "SPAWN_FAILED";
      await this.finish(taskId, reason === "CANCELED_BY_USER" ? "canceled" : "failed", reason, run.stopMessage ?? `container did not start: ${errorMessage(err)}`);
    }
  }

  /** Stops a working task's container for a reason; resolves once the task is terminal. */
  private async stopRun(taskId: string, reason: TaskStateReason, message: string): Promise<void> {
    const task = this.get(taskId);
    if (isTerminal(task.state)) return;
    const run = this.runs.get(taskId) ?? this.newRun(taskId);
    if (run.stopReason) return run.done;
    run.stopReason = reason;
    run.stopMessage = message;
    if (run.timer) clearTimeout(run.timer);
    const agent = this.deps.agents.registry.find(task.agentId);
    if (agent?.status === "running" && agent.currentTaskId === taskId) {
      this.logger.info({ taskId, reason }, "stopping task");
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
  private async finish(taskId: string, state: TaskState, reason: TaskStateReason | undefined, message: string, result?: TaskResult): Promise<void> {
    const { agents } = this.deps;
    const task = this.get(taskId);
    if (isTerminal(task.state)) return;
    const run = this.runs.get(taskId);
    if (run?.timer) clearTimeout(run.timer);
    this.writeTask({ ...task, state, stateReason: reason, stateMessage: message, finishedAt: this.deps.clock.now(), result: result ?? task.result });
    this.runs.delete(taskId);
    this.scheduler.release(taskId);
    const level = state === "completed" ? "info" : "warn";
    this.logger[level]({ taskId, agentId: task.agentId, state, reason, message: message || undefined }, "task finished");
    try {
      const agent = agents.registry.find(task.agentId);
      if (agent && agent.currentTaskId === taskId) {
        const released = agents.registry.update(agent, { currentTaskId: undefined });
        if (released.ephemeral && !this.closed) await this.removeEphemeral(released);
      }
    } catch (err) {
      this.logger.warn({ taskId, agentId: task.agentId, err: errorMessage(err) }, "task cleanup failed");
    } finally {
      run?.resolveDone();
    }
  }

  private async removeEphemeral(agent: Agent): Promise<void> {
    const agentId = agent.config.agentId;
    // A stop may still be settling; wait for it so the container is not left behind.
    for (let i = 0; i < 50; i++) {
      const current = this.deps.agents.registry.find(agentId);
      if (!current) return;
      if (current.status !== "starting" && current.status !== "stopping") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.deps.agents.remove(agentId, { deleteWorkspace: true });
  }

  /**
   * An ephemeral agent outlives its task only when the process died in between: after the
   * task ended and before the agent was removed, or after the agent was made and before
   * its task was stored. Nothing else would ever remove it. Runs at recovery, after the
   * waiting tasks have their agents reserved again.
   */
  private async removeOrphanEphemerals(): Promise<void> {
    const { agents, tasks } = this.deps;
    const orphans: string[] = [];
    let afterId: string | undefined;
    for (;;) {
      const page = agents.registry.store.listAgents({ afterId, limit: 500 });
      for (const agent of page) {
        // Not one whose task's exit is being handled: finishing that task removes it.
        if (!agent.ephemeral || (agent.currentTaskId && this.exiting.has(agent.currentTaskId))) continue;
        const task = agent.currentTaskId ? tasks.getTask(agent.currentTaskId) : undefined;
        if (!task || isTerminal(task.state)) orphans.push(agent.config.agentId);
      }
      if (page.length < 500) break;
      afterId = page.at(-1)!.config.agentId;
    }
    for (const agentId of orphans) {
      try {
        await agents.remove(agentId, { deleteWorkspace: true });
        this.logger.info({ agentId }, "removed an ephemeral agent left without a task");
      } catch (err) {
        if (isAgentorchError(err) && err.kind === "not_found") continue;
        this.logger.warn({ agentId, err: errorMessage(err) }, "could not remove an ephemeral agent left without a task");
      }
    }
  }

  private adopt(task: Task): void {
    const run = this.newRun(task.taskId);
    this.scheduler.markRunning(task.taskId);
    const remaining = Math.max(0, (task.startedAt ?? 0) + task.timeoutMs - this.deps.clock.now());
    run.timer = setTimeout(() => this.track(this.stopRun(task.taskId, "TIMEOUT", `timed out after ${task.timeoutMs} ms`)), remaining);
    this.logger.info({ taskId: task.taskId, containerId: task.containerId, remainingMs: remaining }, "adopted working task");
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

  private track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => this.logger.error({ err: errorMessage(err) }, "task background work failed"));
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }
}
