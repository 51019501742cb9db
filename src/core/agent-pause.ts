/**
 * Idle agents paused instead of stopped (lifecycle.idle_action PAUSE): the container is
 * frozen with the engine's pause (about 10 ms), keeping its memory, processes, output and
 * token, and thawed when work comes: StartAgent, ReportActivity, a message to its mailbox,
 * or a task for it. The same check-and-set rule as starts and stops: after each engine call
 * the agent is read again, and written only if it still holds the same container in the
 * status the call expected (a stop or an exit that came meanwhile wins).
 *
 * The engine can also pause or unpause a container behind the service's back (`docker
 * unpause`): its events and reconciliation bring the status in line (notice).
 */
import type { Agent } from "./agent.js";
import type { AgentRegistry } from "./agent-registry.js";
import { AgentorchError, errorMessage, failedPrecondition } from "./errors.js";
import type { ContainerBackend, Logger } from "./ports.js";

export interface AgentPausesDeps {
  registry: AgentRegistry;
  backend: ContainerBackend;
  logger: Logger;
}

export class AgentPauses {
  /** Agents with a pause or resume under way here: the engine's own events for them are ours. */
  private readonly underWay = new Set<string>();
  /** Resumes in flight, shared by concurrent callers. */
  private readonly resuming = new Map<string, Promise<Agent>>();

  constructor(private readonly deps: AgentPausesDeps) {}

  /** Freezes a RUNNING agent's container; the agent goes PAUSED. */
  async pause(agent: Agent, reason: string, signal?: AbortSignal): Promise<Agent> {
    const agentId = agent.config.agentId;
    if (agent.status !== "running") throw failedPrecondition(`cannot pause agent "${agentId}": invalid state ${agent.status.toUpperCase()}`, { agentId });
    this.underWay.add(agentId);
    try {
      await this.deps.backend.pause(agent.containerId, signal);
      const current = this.deps.registry.get(agentId);
      if (current.status !== "running" || current.containerId !== agent.containerId) return current;
      if ((current.lastActivity ?? 0) > (agent.lastActivity ?? 0)) {
        // Activity arrived while the container was being frozen: it stays running.
        await this.deps.backend.unpause(agent.containerId, signal);
        return current;
      }
      const paused = this.deps.registry.setStatus(current, "paused", reason);
      this.deps.logger.info({ agentId, containerId: agent.containerId, reason }, "agent paused");
      return paused;
    } finally {
      this.underWay.delete(agentId);
    }
  }

  /** Thaws a PAUSED agent (RUNNING, activity now); any other agent is returned as it is. */
  resume(agentId: string, reason: string, signal?: AbortSignal): Promise<Agent> {
    const agent = this.deps.registry.get(agentId);
    if (agent.status !== "paused") return Promise.resolve(agent);
    let resuming = this.resuming.get(agentId);
    if (!resuming) {
      resuming = this.doResume(agent, reason, signal).finally(() => this.resuming.delete(agentId));
      this.resuming.set(agentId, resuming);
    }
    return resuming;
  }

  /** Resumes in the background (a message or a task arrived); failures are logged, the supervisor notices a lost container. */
  resumeSoon(agentId: string, reason: string): void {
    const agent = this.deps.registry.find(agentId);
    if (agent?.status !== "paused") return;
    this.resume(agentId, reason).catch((err: unknown) => this.deps.logger.warn({ agentId, err: errorMessage(err) }, "could not resume a paused agent"));
  }

  /**
   * What the engine says of an agent's container (an event, or reconciliation): paused or
   * not. A change this service did not make is recorded, with a reason that says so.
   */
  notice(agentId: string, containerId: string, paused: boolean): void {
    if (this.underWay.has(agentId)) return;
    const agent = this.deps.registry.find(agentId);
    if (!agent || agent.containerId !== containerId) return;
    if (paused && agent.status === "running") {
      this.deps.registry.setStatus(agent, "paused", "paused outside agentorch");
      this.deps.logger.warn({ agentId, containerId }, "container paused outside agentorch");
    } else if (!paused && agent.status === "paused") {
      this.deps.registry.setStatus(agent, "running", "unpaused outside agentorch", { lastActivity: this.deps.registry.now() });
      this.deps.logger.warn({ agentId, containerId }, "container unpaused outside agentorch");
    }
  }

  private async doResume(agent: Agent, reason: string, signal?: AbortSignal): Promise<Agent> {
    const agentId = agent.config.agentId;
    this.underWay.add(agentId);
    try {
      await this.deps.backend.unpause(agent.containerId, signal);
      const current = this.deps.registry.get(agentId);
      if (current.status !== "paused" || current.containerId !== agent.containerId) return current;
      const running = this.deps.registry.setStatus(current, "running", reason, { lastActivity: this.deps.registry.now() });
      this.deps.logger.info({ agentId, containerId: agent.containerId, reason }, "agent resumed");
      return running;
    } catch (err) {
      if (err instanceof AgentorchError && err.kind === "not_found") {
        throw failedPrecondition(`cannot resume agent "${agentId}": its container is gone (the service marks it FAILED)`, { agentId });
      }
      throw err;
    } finally {
      this.underWay.delete(agentId);
    }
  }
}
