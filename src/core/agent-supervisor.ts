/**
 * Watches over running agents: follows the engine's container events (exits, OOM
 * kills), reconciles the registry with what the engine really has (at start-up and
 * whenever the event stream reconnects), enforces idle and lifetime limits on a timer,
 * restarts crashed agents with backoff, and retries container removals that failed.
 */
import { type Agent, CONTAINER_STATES } from "./agent.js";
import type { AgentPauses } from "./agent-pause.js";
import type { AgentRegistry } from "./agent-registry.js";
import { errorMessage } from "./errors.js";
import type { ContainerBackend, ContainerEvent, ContainerInfo, ContainerOutput, Logger } from "./ports.js";

/**
 * What the supervisor asks of the agent service that owns it: the service's own verbs,
 * so every container start, stop and removal keeps its rules. An interface rather than
 * the AgentService class, so the two modules do not import each other.
 */
export interface SupervisedAgents {
  /** Agents with a start or stop under way in this process; left alone. */
  readonly busy: ReadonlySet<string>;
  start(agentId: string, signal: AbortSignal, options: { crashRestart: boolean }): Promise<Agent>;
  stopAs(agent: Agent, final: "idle" | "terminated", reason: string, signal?: AbortSignal): Promise<Agent>;
  captureOutput(agent: Agent): Promise<ContainerOutput | undefined>;
  removeContainer(agentId: string, containerId: string, signal?: AbortSignal): Promise<boolean>;
}

/** A container of an agent ended: it exited, was stopped by the service, or vanished. */
export interface AgentExit {
  /** The agent after its state was written. */
  agent: Agent;
  containerId: string;
  taskId?: string;
  cause: "exited" | "stopped" | "lost";
  exitCode?: number;
  oomKilled: boolean;
  /** The output tail, when it could be read before the container was removed. */
  output?: ContainerOutput;
}

export interface SupervisorDeps {
  registry: AgentRegistry;
  pauses: AgentPauses;
  backend: ContainerBackend;
  logger: Logger;
  instanceId: string;
  enforceIntervalMs: number;
  restartBackoffMs: number;
}

const MAX_BACKOFF_MS = 30_000;
const EARLY_EVENT_TTL_MS = 60_000;
const KILL_SETTLE_MS = 250;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class AgentSupervisor {
  engineHealthy = false;
  private readonly healthListeners = new Set<(healthy: boolean) => void>();
  private readonly exitListeners = new Set<(exit: AgentExit) => void>();
  private readonly abort = new AbortController();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly pending = new Set<Promise<unknown>>();
  /** Containers that were OOM-killed; their "die" follows. */
  private readonly oomKilled = new Set<string>();
  /** Exits of containers whose start has not been recorded yet. */
  private readonly early = new Map<string, { event: ContainerEvent; at: number }>();
  private reconciling: Promise<void> | undefined;
  /** Containers whose exit this process is handling now: reconciliation leaves them alone. */
  private readonly handling = new Set<string>();
  private enforceTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly service: SupervisedAgents,
    private readonly deps: SupervisorDeps,
  ) {}

  async open(): Promise<void> {
    const { backend, logger } = this.deps;
    try {
      await backend.ping(AbortSignal.timeout(5000));
      this.setHealth(true);
      await this.reconcile();
    } catch (err) {
      this.setHealth(false);
      logger.warn({ endpoint: backend.endpoint, err: errorMessage(err) }, "Docker engine unreachable; container RPCs answer UNAVAILABLE until it is back");
    }
    backend.watch(
      this.deps.instanceId,
      {
        onEvent: (event) => this.track(this.handleEvent(event)),
        onConnected: () => {
          this.setHealth(true);
          this.track(this.reconcile());
        },
        onDisconnected: (err) => {
          if (this.abort.signal.aborted) return;
          this.setHealth(false);
          logger.warn({ endpoint: backend.endpoint, err: errorMessage(err) }, "Docker event stream lost; reconnecting");
        },
      },
      this.abort.signal,
    );
    if (this.deps.enforceIntervalMs > 0) {
      this.enforceTimer = setInterval(() => this.track(this.enforce()), this.deps.enforceIntervalMs);
      this.enforceTimer.unref();
    }
  }

  async close(): Promise<void> {
    this.abort.abort();
    if (this.enforceTimer) clearInterval(this.enforceTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.pending]);
  }

  onEngineHealth(cb: (healthy: boolean) => void): () => void {
    this.healthListeners.add(cb);
    return () => this.healthListeners.delete(cb);
  }

  onExit(cb: (exit: AgentExit) => void): () => void {
    this.exitListeners.add(cb);
    return () => this.exitListeners.delete(cb);
  }

  /** Called once a start is recorded: an exit that raced ahead of it is handled now. */
  containerKnown(containerId: string): void {
    const early = this.early.get(containerId);
    if (!early) return;
    this.early.delete(containerId);
    this.track(this.handleEvent(early.event));
  }

  /** Emits an exit to listeners (the lifecycle service uses it to finish tasks). */
  emitExit(exit: AgentExit): void {
    for (const cb of this.exitListeners) {
      try {
        cb(exit);
      } catch (err) {
        this.deps.logger.error({ err, agentId: exit.agent.config.agentId }, "exit listener failed");
      }
    }
  }

  /** One pass of idle and lifetime enforcement; returns the agents it stopped or paused. */
  async enforce(signal?: AbortSignal): Promise<string[]> {
    const { registry, pauses } = this.deps;
    const now = registry.now();
    const jobs: Promise<Agent>[] = [];
    // Paused agents too: a paused agent still counts against its lifetime.
    for (const agent of registry.store.agentsWithStatus(["running", "paused"])) {
      if (this.service.busy.has(agent.config.agentId)) continue;
      const { maxLifetimeMs, maxIdleMs } = agent.config.lifecycle;
      const startedAt = agent.startedAt ?? now;
      if (maxLifetimeMs > 0 && now - startedAt >= maxLifetimeMs) {
        jobs.push(this.service.stopAs(agent, "terminated", "max lifetime reached", signal));
      } else if (agent.status === "running" && maxIdleMs > 0 && !agent.currentTaskId && now - (agent.lastActivity ?? startedAt) >= maxIdleMs) {
        if (agent.config.lifecycle.idleAction === "pause") jobs.push(pauses.pause(agent, "idle timeout", signal));
        else jobs.push(this.service.stopAs(agent, "idle", "idle timeout", signal));
      }
    }
    const results = await Promise.allSettled(jobs);
    await this.reapPendingRemovals(signal);
    return results.flatMap((r) => (r.status === "fulfilled" ? [r.value.config.agentId] : []));
  }

  /** Brings the registry in line with the engine. Safe to call concurrently (calls share one run). */
  reconcile(): Promise<void> {
    this.reconciling ??= this.doReconcile().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  private async doReconcile(): Promise<void> {
    const { backend, registry, logger, instanceId } = this.deps;
    const containers = await backend.list(instanceId, this.abort.signal);
    const byId = new Map(containers.map((c) => [c.containerId, c]));
    let adopted = 0;
    let removed = 0;
    const pendingRemoval = new Set(registry.store.pendingRemovals().map((p) => p.containerId));
    const leftBehind: { agent: Agent; container: ContainerInfo }[] = [];
    for (const c of containers) {
      const agent = registry.find(c.labels.agentId);
      if (agent && agent.containerId === c.containerId) {
        // Its exit is recorded (the agent is no longer active), yet the container is still
        // here and was never handed to the reaper: the process died inside handleExit, after
        // writing the exit and before removing the container and reporting the exit.
        const inactive = !CONTAINER_STATES.includes(agent.status);
        if (inactive && !pendingRemoval.has(c.containerId) && !this.handling.has(c.containerId) && !this.service.busy.has(agent.config.agentId)) {
          leftBehind.push({ agent, container: c });
        }
        continue;
      }
      if (agent && this.service.busy.has(agent.config.agentId)) continue;
      // An orphan (its agent is gone) or a stale container of a start that never got recorded.
      logger.info({ containerId: c.containerId, agentId: c.labels.agentId }, agent ? "removing stale container" : "removing orphan container");
      await this.service.removeContainer(c.labels.agentId, c.containerId, this.abort.signal);
      removed++;
    }
    for (const { agent, container } of leftBehind) {
      await this.finishRecordedExit(agent, container);
      removed++;
    }
    for (const agent of registry.store.agentsWithStatus(CONTAINER_STATES)) {
      const agentId = agent.config.agentId;
      if (this.service.busy.has(agentId)) continue;
      const c = byId.get(agent.containerId);
      if (agent.status === "stopping") {
        if (c) await this.service.removeContainer(agentId, c.containerId, this.abort.signal);
        registry.setStatus(registry.get(agentId), "idle", agent.statusReason || "stopped", { tokenHash: "" });
      } else if (agent.status === "starting") {
        if (c) await this.service.removeContainer(agentId, c.containerId, this.abort.signal);
        registry.setStatus(registry.get(agentId), "failed", "start interrupted by a service restart", { tokenHash: "" });
      } else if (!c) {
        this.handleLost(agent);
      } else if (!c.running) {
        await this.handleExit(agent, c.containerId, c.exitCode ?? -1, c.oomKilled);
      } else {
        adopted++;
        this.deps.pauses.notice(agentId, c.containerId, c.paused === true);
      }
    }
    await this.reapPendingRemovals(this.abort.signal);
    logger.info({ containers: containers.length, adopted, removed }, "reconciled with the engine");
  }

  private async handleEvent(event: ContainerEvent): Promise<void> {
    if (event.type === "oom") {
      this.oomKilled.add(event.containerId);
      return;
    }
    if (event.type === "pause" || event.type === "unpause") {
      this.deps.pauses.notice(event.labels.agentId, event.containerId, event.type === "pause");
      return;
    }
    if (event.type !== "die" && event.type !== "destroy") return;
    const { registry } = this.deps;
    const agent = registry.find(event.labels.agentId);
    if (!agent) return;
    if (agent.containerId !== event.containerId) {
      if (agent.status === "starting") this.rememberEarly(event);
      return;
    }
    if (agent.status !== "running" && agent.status !== "paused") return;
    if (this.service.busy.has(agent.config.agentId)) {
      // Recorded RUNNING, but the start has not returned yet: it hands the event back
      // through containerKnown. (Dropped here, a container that exits at once stayed
      // RUNNING until the next reconciliation.)
      this.rememberEarly(event);
      return;
    }
    let exitCode = event.exitCode;
    let oom = this.oomKilled.has(event.containerId);
    let gone = event.type === "destroy";
    if (!gone && (exitCode === undefined || exitCode === 137)) {
      // A SIGKILL we did not send is often `docker rm -f`: look again shortly to tell a removal
      // from a kill, and to catch an OOM the engine reports after the exit.
      await sleep(KILL_SETTLE_MS);
      const info = await this.deps.backend.inspect(event.containerId).catch(() => null);
      // Gone, or on its way (a slow engine may still list a container `docker rm -f` is removing).
      if (info === undefined || info?.removing) gone = true;
      else if (info) {
        exitCode = info.exitCode ?? exitCode;
        oom ||= info.oomKilled;
      }
    }
    const current = registry.find(agent.config.agentId);
    if (!current || (current.status !== "running" && current.status !== "paused") || current.containerId !== event.containerId) return;
    if (gone) this.handleLost(current);
    else await this.handleExit(current, event.containerId, exitCode ?? -1, oom);
  }

  /** The container vanished (removed from outside, or gone while the service was down). */
  private handleLost(agent: Agent): void {
    this.oomKilled.delete(agent.containerId);
    const lost = this.deps.registry.setStatus(agent, "failed", "container lost", { tokenHash: "" });
    this.deps.logger.warn({ agentId: agent.config.agentId, containerId: agent.containerId }, "container lost");
    this.emitExit({ agent: lost, containerId: agent.containerId, taskId: agent.currentTaskId, cause: "lost", oomKilled: false });
  }

  /** The rest of an interrupted handleExit: save the output, remove the container, report the recorded exit. */
  private async finishRecordedExit(agent: Agent, container: ContainerInfo): Promise<void> {
    const agentId = agent.config.agentId;
    this.deps.logger.info({ agentId, containerId: container.containerId }, "finishing the recorded exit of a container left behind");
    this.handling.add(container.containerId);
    try {
      const output = await this.service.captureOutput(agent);
      await this.service.removeContainer(agentId, container.containerId, this.abort.signal);
      const exitCode = agent.exitCode ?? container.exitCode ?? -1;
      this.emitExit({ agent, containerId: container.containerId, taskId: agent.currentTaskId, cause: "exited", exitCode, oomKilled: container.oomKilled, output });
      if (agent.status === "failed") this.maybeRestart(agent);
    } finally {
      this.handling.delete(container.containerId);
    }
  }

  /** Writes the outcome of an exited container first, then saves its output and removes it. */
  private async handleExit(agent: Agent, containerId: string, exitCode: number, oom: boolean): Promise<void> {
    this.handling.add(containerId);
    try {
      await this.recordExit(agent, containerId, exitCode, oom);
    } finally {
      this.handling.delete(containerId);
    }
  }

  private async recordExit(agent: Agent, containerId: string, exitCode: number, oom: boolean): Promise<void> {
    const { registry, logger } = this.deps;
    const agentId = agent.config.agentId;
    this.oomKilled.delete(containerId);
    const clean = exitCode === 0 && !oom;
    const reason = oom ? `OOM killed (exit code ${exitCode})` : `exited with code ${exitCode}`;
    const ended = registry.setStatus(agent, clean ? "idle" : "failed", reason, {
      exitCode,
      tokenHash: "",
      crashRestarts: clean ? 0 : agent.crashRestarts,
    });
    logger.info({ agentId, containerId, exitCode, oom }, "container exited");
    const output = await this.service.captureOutput(ended);
    await this.service.removeContainer(agentId, containerId, this.abort.signal);
    this.emitExit({ agent: ended, containerId, taskId: agent.currentTaskId, cause: "exited", exitCode, oomKilled: oom, output });
    if (!clean) this.maybeRestart(ended);
  }

  private maybeRestart(agent: Agent): void {
    const { lifecycle } = agent.config;
    if (!lifecycle.restartOnCrash || agent.ephemeral || agent.currentTaskId) return;
    const agentId = agent.config.agentId;
    if (agent.crashRestarts >= lifecycle.maxRestarts) {
      this.deps.logger.warn({ agentId, restarts: agent.crashRestarts }, "crash restarts exhausted; agent stays FAILED");
      return;
    }
    const delay = Math.min(this.deps.restartBackoffMs * 2 ** agent.crashRestarts, MAX_BACKOFF_MS);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.track(this.restart(agentId));
    }, delay);
    this.timers.add(timer);
  }

  private async restart(agentId: string): Promise<void> {
    const { registry, logger } = this.deps;
    const agent = registry.find(agentId);
    if (!agent || agent.status !== "failed" || this.abort.signal.aborted) return;
    registry.update(agent, { crashRestarts: agent.crashRestarts + 1 });
    try {
      await this.service.start(agentId, this.abort.signal, { crashRestart: true });
      logger.info({ agentId, attempt: agent.crashRestarts + 1 }, "restarted after crash");
    } catch (err) {
      logger.warn({ agentId, err: errorMessage(err) }, "crash restart failed");
    }
  }

  private async reapPendingRemovals(signal?: AbortSignal): Promise<void> {
    const { registry, backend, logger } = this.deps;
    for (const { containerId, agentId } of registry.store.pendingRemovals()) {
      try {
        await backend.remove(containerId, signal);
        registry.store.deletePendingRemoval(containerId);
        logger.info({ containerId, agentId }, "reaped container whose removal had failed");
      } catch (err) {
        logger.debug({ containerId, err: errorMessage(err) }, "reaper: removal still failing");
      }
    }
  }

  private rememberEarly(event: ContainerEvent): void {
    const now = Date.now();
    for (const [id, e] of this.early) if (now - e.at > EARLY_EVENT_TTL_MS) this.early.delete(id);
    this.early.set(event.containerId, { event, at: now });
  }

  private setHealth(healthy: boolean): void {
    if (this.engineHealthy === healthy) return;
    this.engineHealthy = healthy;
    for (const cb of this.healthListeners) cb(healthy);
  }

  /** Keeps a background promise so close() can wait for it, and so it never rejects unhandled. */
  private track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => this.deps.logger.warn({ err: errorMessage(err) }, "background work failed"));
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }
}
