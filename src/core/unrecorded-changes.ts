/**
 * Stops and removals that were carried out (the container is gone) but that the store
 * could not record, because it refused writes (a full disk, an I/O error). A full disk
 * must never keep an operator from stopping an agent: AgentService kills first, and
 * hands the record here when the store says no. This keeps it in memory and writes it
 * as soon as the store accepts writes again (retried every second), then reports the
 * exit as a stop that was recorded at once would have.
 *
 * While a change waits here its agent stays in AgentService.busy, so reconciliation,
 * the engine's event stream and the lifecycle timer leave it alone (its container's
 * death is not a crash). Not durable: a process that dies before the store can write
 * again loses the record, and the next start's reconciliation finds a RUNNING agent
 * without a container and marks it FAILED "container lost" (the container stays gone).
 */
import { type Agent, CONTAINER_STATES } from "./agent.js";
import type { AgentRegistry } from "./agent-registry.js";
import type { AgentExit } from "./agent-supervisor.js";
import { errorMessage, isAgentorchError } from "./errors.js";
import type { ContainerBackend, Logger } from "./ports.js";

type StopFinal = "idle" | "terminated" | "failed";

export type UnrecordedChange =
  | { type: "stop"; final: StopFinal; reason: string; containerId: string; taskId?: string }
  | { type: "remove" };

export interface UnrecordedDeps {
  registry: AgentRegistry;
  backend: Pick<ContainerBackend, "remove">;
  /** AgentService.busy: agents listed here are left alone by the supervisor. */
  busy: Set<string>;
  emitExit(exit: AgentExit): void;
  logger: Logger;
  /** How often to try again; 1 s by default. */
  retryMs?: number;
}

/** A store write that failed for want of a writable store (not a refusal on purpose). */
export const isStoreUnavailable = (err: unknown): boolean => isAgentorchError(err, "unavailable");

export class UnrecordedChanges {
  private readonly pending = new Map<string, UnrecordedChange>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: UnrecordedDeps) {}

  /** The change waiting for an agent, if any. */
  get(agentId: string): UnrecordedChange | undefined {
    return this.pending.get(agentId);
  }

  get size(): number {
    return this.pending.size;
  }

  /** Keeps a change (a removal replaces a stop), marks the agent busy, and schedules the write. */
  add(agentId: string, change: UnrecordedChange, cause: unknown): void {
    this.pending.set(agentId, change);
    this.deps.busy.add(agentId);
    this.deps.logger.warn(
      { agentId, change: change.type, err: errorMessage(cause) },
      "container stopped, but the store cannot record it yet; it is written as soon as the store accepts writes",
    );
    this.timer ??= setInterval(() => this.flush(), this.deps.retryMs ?? 1000);
    this.timer.unref();
  }

  /**
   * The store refused even the STOPPING mark: kill the container anyway, and keep the stop
   * to record. Throws cause (UNAVAILABLE, the store's) only when the engine fails too.
   */
  async killUnrecorded(agent: Agent, final: StopFinal, reason: string, cause: unknown, signal?: AbortSignal): Promise<Agent> {
    if (!isStoreUnavailable(cause)) throw cause;
    const agentId = agent.config.agentId;
    const { busy } = this.deps;
    // A start or stop of this process is under way: it will meet the same store.
    if (busy.has(agentId) && !this.pending.has(agentId)) throw cause;
    busy.add(agentId);
    try {
      if (agent.containerId) await this.deps.backend.remove(agent.containerId, signal);
    } catch (err) {
      if (!this.pending.has(agentId)) busy.delete(agentId);
      this.deps.logger.warn({ agentId, err: errorMessage(err) }, "could not stop the container while the store refuses writes");
      throw cause;
    }
    return this.stopped(agent, final, reason, cause);
  }

  /** The container is gone, its record refused: keep the stop (a waiting removal wins) and answer the agent as it will be. Rethrows what is no store failure. */
  stopped(agent: Agent, final: StopFinal, reason: string, cause: unknown): Agent {
    if (!isStoreUnavailable(cause)) throw cause;
    const agentId = agent.config.agentId;
    if (this.pending.get(agentId)?.type !== "remove") {
      this.add(agentId, { type: "stop", final, reason, containerId: agent.containerId, taskId: agent.currentTaskId }, cause);
    }
    return {
      ...agent,
      status: final,
      statusReason: `${reason}; not recorded yet (${errorMessage(cause)}): recorded once the store can write`,
      tokenHash: "",
    };
  }

  /** The container is gone, the agent's deletion refused: keep it to record (true), or rethrow what is no store failure. */
  removed(agentId: string, cause: unknown): true {
    if (!isStoreUnavailable(cause)) throw cause;
    this.add(agentId, { type: "remove" }, cause);
    return true;
  }

  /** Writes what it can, in order; stops at the first write the store still refuses. */
  flush(): void {
    const { registry, logger } = this.deps;
    for (const [agentId, change] of this.pending) {
      try {
        this.apply(agentId, change);
      } catch (err) {
        if (isStoreUnavailable(err)) return;
        logger.warn({ agentId, change: change.type, err: errorMessage(err) }, "dropping an unrecordable stop or removal");
      }
      this.pending.delete(agentId);
      this.deps.busy.delete(agentId);
      logger.info({ agentId, change: change.type, revision: registry.store.currentRevision() }, "recorded a stop or removal made while the store was full");
    }
    this.stopTimer();
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private apply(agentId: string, change: UnrecordedChange): void {
    const { registry } = this.deps;
    const agent = registry.find(agentId);
    if (!agent) return;
    if (change.type === "remove") {
      registry.delete(agentId);
      return;
    }
    if (agent.containerId !== change.containerId || !CONTAINER_STATES.includes(agent.status)) return;
    const stopped: Agent = registry.setStatus(agent, change.final, change.reason, { tokenHash: "" });
    this.deps.emitExit({ agent: stopped, containerId: change.containerId, taskId: change.taskId, cause: "stopped", oomKilled: false });
  }

  private stopTimer(): void {
    if (this.pending.size > 0 || !this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
