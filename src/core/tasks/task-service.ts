/**
 * The task use cases behind LifecycleService: submit, run under the scheduler with a
 * timeout, cancel, retry with feedback, reap zombies, and tune the limits live.
 *
 * A task runs as its agent's container (the directive in its environment). The service
 * keeps the public verbs; the run lifecycle (run, stop, exit handling, finish) is in
 * task-runs.ts, recovery after a restart and zombie reaping in task-recovery.ts.
 */
import type { Agent } from "../agent.js";
import { ceilingsOf } from "../agent-ceilings.js";
import type { AgentService, Requester } from "../agent-service.js";
import { errorMessage, invalidArgument, notFound, resourceExhausted } from "../errors.js";
import type { EventBus } from "../event-bus.js";
import { decodePageToken, encodePageToken, pageSize } from "../page-token.js";
import type { Clock, Logger, Store, Workspaces } from "../ports.js";
import { DEFAULT_WATCH_LIMITS, validateWatchIds, type WatchItem, type WatchLimits, type WatchRequest, watchEvents } from "../watch.js";
import {
  buildRetryConstraints,
  type DirectiveInput,
  type TaskTemplateInput,
  validateDirective,
  validateGaps,
  validateTemplate,
} from "./directive.js";
import { applyLifecycleConfigUpdate, DEFAULT_LIFECYCLE_CONFIG, type LifecycleConfig, validateLifecycleConfig } from "./lifecycle-config.js";
import type { TaskStore } from "./ports.js";
import { createScheduler, type Scheduler } from "./scheduler.js";
import {
  assertRetryable,
  assertTaskTransition,
  type Directive,
  newTaskId,
  type Task,
  type TaskPriority,
  type TaskState,
  type TaskTemplate,
  validateTaskId,
  validateTaskTimeoutMs,
} from "./task.js";
import { TaskRecovery } from "./task-recovery.js";
import { TaskRuns } from "./task-runs.js";

export interface SubmitTaskInput {
  directive: DirectiveInput | undefined;
  agentId?: string;
  template?: TaskTemplateInput;
  priority: TaskPriority;
  /** 0: max_execution_time. */
  timeoutMs: number;
  /** The submitting call's W3C traceparent, already validated; its container gets it as AGENTORCH_TRACEPARENT. */
  traceparent?: string;
  /** Who submits: a template asking for a network needs what an agent's registration needs. */
  requester?: Requester;
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

const CONFIG_META_KEY = "lifecycle_config";

export class TaskService {
  private config: LifecycleConfig;
  private readonly scheduler: Scheduler;
  private readonly runs: TaskRuns;
  private readonly recovery: TaskRecovery;
  private readonly pending = new Set<Promise<unknown>>();
  private readonly logger: Logger;
  private reapTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: TaskServiceDeps) {
    this.logger = deps.logger.child({ component: "tasks" });
    const stored = deps.store.getMeta(CONFIG_META_KEY);
    this.config = validateLifecycleConfig({
      ...DEFAULT_LIFECYCLE_CONFIG,
      ...deps.defaults,
      ...(stored ? (JSON.parse(stored) as Partial<LifecycleConfig>) : {}),
    });
    // The agent ceilings are part of this config: the agent service checks against them.
    deps.agents.policy.setCeilings(ceilingsOf(this.config));
    this.scheduler = createScheduler({
      maxConcurrent: this.config.maxConcurrentTasks,
      maxQueued: this.config.maxQueuedTasks,
      onStart: (taskId) => this.track(this.runs.run(taskId)),
      logger: this.logger,
    });
    const { agents, tasks, workspaces, clock, bus } = deps;
    const shared = { agents, tasks, clock, logger: this.logger, scheduler: this.scheduler, config: () => this.config };
    this.runs = new TaskRuns({ ...shared, workspaces, bus, track: (p) => this.track(p) });
    this.recovery = new TaskRecovery({ ...shared, runs: this.runs });
  }

  /** Recovers after a restart (see TaskRecovery) and starts the zombie reaper. Call after agents.open(). */
  async open(): Promise<void> {
    await this.recovery.recover();
    this.runs.markOpened();
    if (this.deps.reapIntervalMs > 0) {
      this.reapTimer = setInterval(() => this.track(this.reapZombies()), this.deps.reapIntervalMs);
      this.reapTimer.unref();
    }
  }

  async close(): Promise<void> {
    this.runs.close();
    if (this.reapTimer) clearInterval(this.reapTimer);
    await Promise.allSettled([...this.pending]);
  }

  /** Called when a task's container is about to start (the A2A card gains capabilities). */
  onTaskStart(cb: (task: Task, agent: Agent) => void): () => void {
    return this.runs.onTaskStart(cb);
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
    this.deps.agents.policy.setCeilings(ceilingsOf(next));
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
      await this.runs.finish(taskId, "canceled", "CANCELED_BY_USER", "canceled before it started");
    } else {
      await this.runs.stopRun(taskId, "CANCELED_BY_USER", "canceled while working");
    }
    return this.get(taskId);
  }

  async retry(taskId: string, gaps: string[], requester: Requester = {}): Promise<Task> {
    const previous = this.get(taskId);
    assertRetryable(previous);
    const constraints = buildRetryConstraints(previous, validateGaps(gaps));
    const directive: Directive = { ...previous.directive, constraints };
    // The template's env values are not on the task (they are write-only): its stored ones.
    const template = previous.template && { ...previous.template, env: this.deps.tasks.taskEnv(previous.taskId) };
    const target = previous.ephemeral ? { template } : { agentId: previous.agentId };
    return this.submitValidated(
      directive,
      { directive, priority: previous.priority, timeoutMs: previous.requestedTimeoutMs ?? 0, requester, ...target },
      { attempt: previous.attempt + 1, parentTaskId: previous.taskId },
    );
  }

  /**
   * Fails and cleans up WORKING tasks whose container is gone, that no run of this
   * process owns, or that outran zombie_timeout. Returns their ids.
   */
  reapZombies(signal?: AbortSignal): Promise<string[]> {
    return this.recovery.reapZombies(signal);
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
    let env: Record<string, string> = {};
    if (hasAgent) {
      agent = agents.availableForTask(input.agentId!);
    } else {
      template = validateTemplate(input.template, agents.policy.rules());
      env = input.template?.env ?? {};
      const agentId = `eph-${taskId.slice("task-".length)}`;
      agents.policy.checkNetwork(template.policy, agentId, template.image, input.requester ?? {}, "template.policy");
      agent = await agents.registerEphemeral({
        agentId,
        name: `ephemeral agent of ${taskId}`,
        image: template.image,
        command: template.command,
        env,
        policy: template.policy,
        resources: template.resources,
        lifecycle: { maxIdleMs: 0 },
      }, input.requester);
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
    this.deps.bus.publish(this.deps.tasks.insertTask(task, env));
    agents.reserveForTask(agent.config.agentId, taskId);
    this.logger.info({ taskId, agentId: task.agentId, priority: task.priority, attempt: task.attempt }, "task submitted");
    this.scheduler.enqueue(taskId, task.priority, task.seq);
    return this.get(taskId);
  }

  private track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => this.logger.error({ err: errorMessage(err) }, "task background work failed"));
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }
}
