/**
 * The agent use cases behind AgentOrchestratorService: register, start, stop, remove,
 * read. State lives in the store; containers in the backend. The rule that makes
 * concurrent calls safe without holding a lock across a Docker call: each operation
 * first moves the agent into a transitional status (STARTING, STOPPING) with a
 * synchronous check-and-set, then talks to Docker, then writes the outcome. A second
 * call on the same agent sees the transitional status and is refused.
 *
 * Agent rows are written here alone (and by the AgentSupervisor this service owns);
 * other services read through get/find and reserve agents through the task verbs.
 * Helpers without state of their own live beside it: agent-queries.ts (list, watch),
 * agent-output.ts (container output), agent-container-spec.ts (what a start asks for).
 */
import { type Agent, type AgentStatus, assertTaskCanReserve, assertTransition, CONTAINER_STATES } from "./agent.js";
import { type AgentConfigInput, validateAgentConfig, validateEnv } from "./agent-config.js";
import { AgentPolicy, type Requester } from "./agent-policy.js";
import { containerSpecFor } from "./agent-container-spec.js";
import { workspaceOptionsFor } from "./agent-workspace.js";
import { type AgentPage, allAgents, type ListAgentsInput, listAgents, watchAgents } from "./agent-queries.js";
import { captureOutput, type OutputDeps, readOutput, streamOutput } from "./agent-output.js";
import { AgentPauses } from "./agent-pause.js";
import { AgentRegistry } from "./agent-registry.js";
import { AgentSupervisor, type AgentExit } from "./agent-supervisor.js";
import { checkImageReference } from "./image-reference.js";
import { alreadyExists, errorMessage, failedPrecondition, resourceExhausted } from "./errors.js";
import type { EventBus } from "./event-bus.js";
import type { ContainerBackend, ContainerOutput, Logger, Workspaces } from "./ports.js";
import { newToken } from "./tokens.js";
import { UnrecordedChanges } from "./unrecorded-changes.js";
import { DEFAULT_WATCH_LIMITS, type WatchItem, type WatchRequest } from "./watch.js";

export type { AgentPage, ListAgentsInput } from "./agent-queries.js";

import type { AgentServiceConfig, AgentServiceDeps } from "./agent-service-config.js";
export type { AgentServiceConfig, AgentServiceDeps } from "./agent-service-config.js";

/** Extra settings of a start made for a task run. */
export interface StartOptions {
  taskId?: string;
  env?: Record<string, string>;
  /** Set by crash restarts: keeps the count of restarts in a row. */
  crashRestart?: boolean;
}

export type { Requester } from "./agent-policy.js";

export class AgentService {
  /** Agent rows are written here alone (and by this service's supervisor): every write keeps the check-and-set rule above. */
  private readonly registry: AgentRegistry;
  private readonly supervisor: AgentSupervisor;
  private readonly backend: ContainerBackend;
  private readonly workspaces: Workspaces;
  private readonly logger: Logger;
  private readonly config: AgentServiceConfig;
  private readonly bus: EventBus;
  private readonly outputDeps: OutputDeps;
  /** Stops and removals done while the store refused writes; written once it accepts them. */
  private readonly unrecorded: UnrecordedChanges;
  /** Agents with a start or stop under way in this process; reconciliation leaves them alone. */
  readonly busy = new Set<string>();
  /** The admin's rules: images, mount points, ceilings, networks (TaskService sets the ceilings). */
  readonly policy: AgentPolicy;
  /** Idle agents paused instead of stopped; resumeSoon is how messages and tasks wake one. */
  readonly pauses: AgentPauses;

  constructor(deps: AgentServiceDeps) {
    this.backend = deps.backend;
    this.workspaces = deps.workspaces;
    this.logger = deps.logger.child({ component: "agents" });
    this.config = deps.config;
    this.bus = deps.bus;
    this.policy = new AgentPolicy(deps.config);
    this.registry = new AgentRegistry(deps.store, deps.bus, deps.clock, this.logger);
    this.outputDeps = { store: deps.store, backend: deps.backend, logger: this.logger, capturing: new Map() };
    this.pauses = new AgentPauses({ registry: this.registry, backend: deps.backend, logger: this.logger });
    this.supervisor = new AgentSupervisor(this, {
      pauses: this.pauses,
      registry: this.registry,
      backend: deps.backend,
      logger: this.logger,
      instanceId: deps.config.instanceId,
      enforceIntervalMs: deps.config.enforceIntervalMs,
      restartBackoffMs: deps.config.restartBackoffMs ?? 1000,
    });
    const emitExit = (e: AgentExit) => this.supervisor.emitExit(e);
    this.unrecorded = new UnrecordedChanges({ registry: this.registry, backend: deps.backend, busy: this.busy, emitExit, logger: this.logger });
  }

  async register(input: AgentConfigInput, _signal?: AbortSignal, requester: Requester = {}): Promise<Agent> {
    return this.insertAgent(input, false, requester);
  }

  /**
   * Registers an agent made for one task; removed when the task ends. Stored ephemeral in
   * the same write that creates it, so a crash cannot leave it looking like a user's agent
   * (TaskService removes ephemeral agents left without a task when it recovers).
   */
  async registerEphemeral(input: AgentConfigInput, requester: Requester = {}): Promise<Agent> {
    return this.insertAgent(input, true, requester);
  }

  private async insertAgent(input: AgentConfigInput, ephemeral: boolean, requester: Requester): Promise<Agent> {
    const config = validateAgentConfig(input, this.policy.rules());
    const env = validateEnv(input.env);
    this.policy.checkImage(config.image);
    this.policy.checkNetwork(config.policy, config.agentId, config.image, requester);
    if (this.registry.find(config.agentId)) throw alreadyExists(`agent "${config.agentId}" already exists`, { agentId: config.agentId });
    const workspacePath = await this.workspaces.create(config.agentId, workspaceOptionsFor(config, this.policy.rules().ceilings));
    const now = this.registry.now();
    const counts = { restartCount: 0, executionCount: 0, crashRestarts: 0 };
    return this.registry.insert({ config, status: "idle", statusReason: "registered", containerId: "", workspacePath, createdAt: now, ...counts, tokenHash: "", ephemeral }, env);
  }

  /** The agent, or NOT_FOUND (INVALID_ARGUMENT for a malformed id). */
  get(agentId: string): Agent {
    return this.registry.get(agentId);
  }

  /** The agent, or undefined when there is none. */
  find(agentId: string): Agent | undefined {
    return this.registry.find(agentId);
  }

  /** A page of agents in id order, and the revision it reflects (to watch from). */
  list(input: ListAgentsInput): AgentPage {
    return listAgents(this.registry.store, input);
  }

  /** Every ephemeral agent (made for a task), read page by page. */
  ephemeralAgents(): Agent[] {
    return allAgents(this.registry.store).filter((a) => a.ephemeral);
  }

  async start(agentId: string, signal?: AbortSignal, options: StartOptions = {}): Promise<Agent> {
    let agent = this.registry.get(agentId);
    if (agent.status === "paused" && !options.taskId) return this.pauses.resume(agentId, "resumed by a start", signal);
    // A task runs in a container of its own: a paused one (idle by definition) makes way.
    if (agent.status === "paused") agent = await this.stopAs(agent, "idle", `making way for task ${options.taskId}`, signal, { reportExit: false });
    assertTransition(agentId, agent.status, "starting", "start");
    if (agent.currentTaskId && !options.taskId) {
      throw failedPrecondition(`agent "${agentId}" is reserved by task ${agent.currentTaskId}`, { agentId });
    }
    // The same check as at register: an agent stored before it existed is refused here, in the same words.
    checkImageReference(agent.config.image);
    // The image allowlist and the ceilings may have changed since the agent registered.
    this.policy.checkStart(agent);
    const active = this.registry.store.countAgentsWithStatus(CONTAINER_STATES);
    if (active >= this.config.maxRunning) {
      throw resourceExhausted(`running-agent limit reached (${this.config.maxRunning}); stop an agent first`, { agentId });
    }
    const previous = agent.status;
    const starting = this.registry.setStatus(agent, "starting", options.crashRestart ? "restarting after crash" : "starting");
    this.busy.add(agentId);
    let running: Agent;
    try {
      running = await this.spawnFor(starting, previous, signal, options);
    } finally {
      this.busy.delete(agentId);
    }
    // After busy is cleared: an exit that raced ahead of the start is handled now.
    this.supervisor.containerKnown(running.containerId);
    return running;
  }

  private async spawnFor(starting: Agent, previous: AgentStatus, signal: AbortSignal | undefined, options: StartOptions): Promise<Agent> {
    const agentId = starting.config.agentId;
    const { token, hash } = newToken();
    let started: { containerId: string; startedAt: number };
    try {
      // Mounted again if it is not (after a reboot); the size is the one fixed at registration.
      await this.workspaces.create(agentId, workspaceOptionsFor(starting.config, this.policy.rules().ceilings));
      const env = this.registry.store.agentEnv(agentId);
      const spec = containerSpecFor(starting, env, token, this.config, options);
      // Agents stored before every agent had a CPU limit (cpus 0) get today's default.
      if (spec.resources.cpus === 0) spec.resources = { ...spec.resources, cpus: this.policy.defaultCpus() };
      started = await this.backend.spawn(spec, signal);
    } catch (err) {
      this.registry.setStatus(this.registry.get(agentId), previous, `start failed: ${errorMessage(err)}`);
      throw err;
    }
    try {
      const current = this.registry.get(agentId);
      return this.registry.update(current, {
        status: "running",
        statusReason: options.taskId ? `running task ${options.taskId}` : "running",
        containerId: started.containerId,
        startedAt: this.registry.now(),
        lastActivity: this.registry.now(),
        exitCode: undefined,
        restartCount: current.executionCount > 0 ? current.restartCount + 1 : current.restartCount,
        executionCount: current.executionCount + 1,
        crashRestarts: options.crashRestart ? current.crashRestarts : 0,
        tokenHash: hash,
      });
    } catch (err) {
      // The container must not outlive a start we could not record, and the agent must not
      // stay STARTING: put it back as it was (best effort: when the store still refuses
      // writes, the next reconciliation marks it FAILED "start interrupted").
      await this.removeContainer(agentId, started.containerId);
      try {
        this.registry.setStatus(this.registry.get(agentId), previous, `start failed: ${errorMessage(err)}`);
      } catch (restoreErr) {
        this.logger.warn({ agentId, err: errorMessage(restoreErr) }, "could not record the failed start; the agent stays STARTING until reconciled");
      }
      throw err;
    }
  }

  async stop(agentId: string, signal?: AbortSignal): Promise<Agent> {
    const agent = this.registry.get(agentId);
    assertTransition(agentId, agent.status, "stopping", "stop");
    return this.stopAs(agent, "idle", "stopped", signal);
  }

  /**
   * Kills the agent's container and leaves it in final. A kill that fails still ends in
   * final; the container is recorded for the reaper. A store that refuses writes (a full
   * disk) does not keep the container running: it is killed all the same and the record
   * follows once the store can write (UnrecordedChanges; the answer's status reason says so).
   */
  async stopAs(agent: Agent, final: "idle" | "terminated" | "failed", reason: string, signal?: AbortSignal, opts = { reportExit: true }): Promise<Agent> {
    const agentId = agent.config.agentId;
    let stopping: Agent;
    try {
      stopping = this.registry.setStatus(agent, "stopping", reason);
    } catch (err) {
      return this.unrecorded.killUnrecorded(agent, final, reason, err, signal);
    }
    this.busy.add(agentId);
    try {
      const output = await this.captureOutput(stopping, signal);
      await this.removeContainer(agentId, stopping.containerId, signal);
      let stopped: Agent;
      try {
        stopped = this.registry.setStatus(this.registry.get(agentId), final, reason, { tokenHash: "" });
      } catch (err) {
        return this.unrecorded.stopped(stopping, final, reason, err);
      }
      // Not reported when a paused container makes way for a task: the task's run has not begun.
      if (opts.reportExit) this.supervisor.emitExit({ agent: stopped, containerId: stopping.containerId, taskId: stopping.currentTaskId, cause: "stopped", oomKilled: false, output });
      return stopped;
    } finally {
      if (!this.unrecorded.get(agentId)) this.busy.delete(agentId);
    }
  }

  /** Removes the agent: container, then record (recordPending: once the store can write), then workspace. */
  async remove(agentId: string, opts: { deleteWorkspace: boolean }, signal?: AbortSignal): Promise<{ recordPending: boolean; keptWorkspace?: string }> {
    const agent = this.registry.get(agentId);
    if ((agent.status === "starting" || agent.status === "stopping") && !this.unrecorded.get(agentId)) {
      throw failedPrecondition(`cannot remove agent "${agentId}": invalid state ${agent.status.toUpperCase()}; retry shortly`, { agentId });
    }
    if (CONTAINER_STATES.includes(agent.status)) {
      await this.stopAs(agent, "idle", "removing", signal);
    } else if (agent.containerId) {
      // An exited container may still be there (its removal failed or is under way).
      await this.removeContainer(agentId, agent.containerId, signal);
    }
    let recordPending = false;
    try {
      this.registry.delete(agentId);
    } catch (err) {
      recordPending = this.unrecorded.removed(agentId, err);
    }
    // Kept unless asked, but aside: a later agent of this id starts with an empty workspace.
    if (opts.deleteWorkspace) await this.workspaces.remove(agentId);
    const keptWorkspace = opts.deleteWorkspace ? undefined : await this.workspaces.setAside(agentId);
    return { recordPending, keptWorkspace };
  }

  /** The tail of the current container's output, or of the last one's as saved when it ended. */
  async output(agentId: string, maxBytes: number, signal?: AbortSignal): Promise<ContainerOutput> {
    return readOutput(this.outputDeps, this.registry.get(agentId), maxBytes, signal);
  }

  /** Follows output: the last tailBytes, then (with follow) live chunks until the container stops. */
  async *streamOutput(agentId: string, tailBytes: number, follow: boolean, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    yield* streamOutput(this.outputDeps, this.registry.get(agentId), tailBytes, follow, signal);
  }

  // ------------------------------------------------------------------ task reservations (TaskService)

  /** The agent, when a task could reserve it now; FAILED_PRECONDITION when another task holds it or it is not IDLE or FAILED. */
  availableForTask(agentId: string): Agent {
    const agent = this.registry.get(agentId);
    assertTaskCanReserve(agent);
    return agent;
  }

  /**
   * Reserves the agent for a task: no other task and no start but the task's until it is
   * released. A synchronous check-and-set, refused as availableForTask refuses.
   */
  reserveForTask(agentId: string, taskId: string): Agent {
    const agent = this.registry.get(agentId);
    assertTaskCanReserve(agent);
    return this.registry.update(agent, { currentTaskId: taskId });
  }

  /** At recovery: reserves the agent again for a waiting task, unless it is gone or held (its run checks its status). */
  restoreReservation(agentId: string, taskId: string): void {
    const agent = this.registry.find(agentId);
    if (agent && !agent.currentTaskId) this.registry.update(agent, { currentTaskId: taskId });
  }

  /** Ends a task's reservation. The agent as released; undefined when it is gone or not held by that task. */
  releaseFromTask(agentId: string, taskId: string): Agent | undefined {
    const agent = this.registry.find(agentId);
    if (!agent || agent.currentTaskId !== taskId) return undefined;
    return this.registry.update(agent, { currentTaskId: undefined });
  }

  /** Counts a task's run whose container never started (a start that succeeds counts itself). */
  recordFailedRun(agentId: string): void {
    const agent = this.registry.find(agentId);
    if (agent) this.registry.update(agent, { executionCount: agent.executionCount + 1 });
  }

  /** Marks activity of a running agent (moves last_activity, so the idle limit counts real idleness); resumes a paused one. */
  async touch(agentId: string): Promise<Agent> {
    const agent = this.registry.get(agentId);
    if (agent.status === "paused") return this.pauses.resume(agentId, "resumed by reported activity");
    if (agent.status !== "running") throw failedPrecondition(`agent "${agentId}" is not running: invalid state ${agent.status.toUpperCase()}`, { agentId });
    return this.registry.update(agent, { lastActivity: this.registry.now() });
  }

  /** Agent events: replayed after a revision or after a snapshot, then live (see watchEvents). */
  watch(req: WatchRequest): AsyncGenerator<WatchItem<Agent>> {
    return watchAgents(this.registry.store, this.bus, this.config.watch ?? DEFAULT_WATCH_LIMITS, req);
  }

  /** Where a container is: running, exited (its exit is being handled) or gone. UNAVAILABLE when the engine cannot tell. */
  async containerState(containerId: string, signal?: AbortSignal): Promise<"running" | "exited" | "gone"> {
    const info = await this.backend.inspect(containerId, signal);
    return info === undefined ? "gone" : info.running ? "running" : "exited";
  }

  enforceLifecycle(signal?: AbortSignal): Promise<string[]> {
    return this.supervisor.enforce(signal);
  }

  engineHealthy(): boolean {
    return this.supervisor.engineHealthy;
  }

  onEngineHealth(cb: (healthy: boolean) => void): () => void {
    return this.supervisor.onEngineHealth(cb);
  }

  /** Called with every container exit the service notices (after the agent's state is written). */
  onExit(cb: (exit: AgentExit) => void): () => void {
    return this.supervisor.onExit(cb);
  }

  async open(): Promise<void> {
    await this.supervisor.open();
    // Workspaces of no agent are a crashed registration's (RemoveAgent moves kept ones aside).
    for (const agentId of (await this.workspaces.list()).filter((id) => !this.registry.find(id))) {
      this.logger.info({ agentId }, "removing the workspace of no registered agent");
      await this.workspaces.remove(agentId);
    }
  }

  async close(): Promise<void> {
    this.unrecorded.close();
    await this.supervisor.close();
  }

  /** Saves the container's output tail so it can be read after the container is gone. */
  captureOutput(agent: Agent, signal?: AbortSignal): Promise<ContainerOutput | undefined> {
    return captureOutput(this.outputDeps, agent, signal);
  }

  /** Removes a container; on failure records it for the reaper instead of failing the caller. */
  async removeContainer(agentId: string, containerId: string, signal?: AbortSignal): Promise<boolean> {
    if (!containerId) return true;
    try {
      await this.backend.remove(containerId, signal);
      return true;
    } catch (err) {
      this.logger.warn({ agentId, containerId, err: errorMessage(err) }, "container removal failed; the reaper will retry");
      this.registry.store.addPendingRemoval(containerId, agentId);
      return false;
    }
  }

  /** Stops and removals made while the store refused writes, not yet recorded (0 when none). */
  unrecordedCount(): number {
    return this.unrecorded.size;
  }
}
