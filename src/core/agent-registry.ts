/**
 * Reads and writes agents through the store and publishes each committed change.
 * Every write is synchronous and transactional (see Store), which is what makes the
 * check-then-set in AgentService atomic without a lock held across a Docker call.
 */
import type { Agent, AgentStatus } from "./agent.js";
import { validateAgentId } from "./agent-config.js";
import { notFound } from "./errors.js";
import type { EventBus } from "./event-bus.js";
import type { Clock, Logger, Store } from "./ports.js";

export class AgentRegistry {
  constructor(
    readonly store: Store,
    private readonly bus: EventBus,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** The agent, or NOT_FOUND (INVALID_ARGUMENT for a malformed id). */
  get(agentId: string): Agent {
    validateAgentId(agentId);
    const agent = this.store.getAgent(agentId);
    if (!agent) throw notFound(`agent "${agentId}" not found`, { agentId });
    return agent;
  }

  find(agentId: string): Agent | undefined {
    return this.store.getAgent(agentId);
  }

  /** Stores a new agent, its environment values apart (see Store.insertAgent). */
  insert(agent: Agent, env: Record<string, string>): Agent {
    const event = this.store.insertAgent(agent, env);
    this.logger.info({ agentId: agent.config.agentId, status: agent.status }, "agent registered");
    this.bus.publish(event);
    return agent;
  }

  /** Writes the agent; logs a status transition when there is one. */
  save(before: Agent, after: Agent): Agent {
    const event = this.store.updateAgent(after);
    if (before.status !== after.status) {
      this.logger.info(
        { agentId: after.config.agentId, from: before.status, to: after.status, reason: after.statusReason || undefined },
        "agent status",
      );
    }
    this.bus.publish(event);
    return after;
  }

  /** Applies a change to the stored agent and saves it. */
  update(agent: Agent, change: Partial<Agent>): Agent {
    return this.save(agent, { ...agent, ...change });
  }

  /** Convenience for a status change. */
  setStatus(agent: Agent, status: AgentStatus, statusReason: string, extra: Partial<Agent> = {}): Agent {
    return this.update(agent, { status, statusReason, ...extra });
  }

  delete(agentId: string): void {
    const event = this.store.deleteAgent(agentId);
    if (event) {
      this.logger.info({ agentId }, "agent removed");
      this.bus.publish(event);
    }
  }

  now(): number {
    return this.clock.now();
  }
}
