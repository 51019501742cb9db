/**
 * A2A discovery behind PublishAgentCard, GetAgentCard and ListAgentCards. A card belongs
 * to a registered agent and follows it: its status is the agent's (updated from the
 * committed agent events on the bus), it is deleted when the agent is removed (so an
 * ephemeral agent's card goes with it), and it gains the capabilities inferred from a
 * task's goal when the task starts (a card is made for the agent if it has none).
 *
 * The card write that follows an agent change is its own transaction: a crash in between
 * could leave a stale status or an orphan card, so open() reconciles every card with the
 * agents once at start-up.
 */
import type { Agent } from "../agent.js";
import type { AgentService } from "../agent-service.js";
import { checkString, validateAgentId } from "../agent-config.js";
import { notFound } from "../errors.js";
import type { EventBus } from "../event-bus.js";
import { decodePageToken, encodePageToken, pageSize } from "../page-token.js";
import type { Clock, Logger, StoredEvent } from "../ports.js";
import { inferCapabilities, mergeCapabilities } from "../tasks/capabilities.js";
import type { Task } from "../tasks/task.js";
import { type AgentCard, CARD_LIMITS, type CardInput, validateCardInput, validateSimpleId } from "./card.js";
import type { CardStore } from "./ports.js";

export interface CardServiceDeps {
  cards: CardStore;
  agents: Pick<AgentService, "get" | "find">;
  bus: EventBus;
  clock: Clock;
  logger: Logger;
  /** Where task starts come from (TaskService); each start adds inferred capabilities to the agent's card. */
  tasks?: { onTaskStart(cb: (task: Task, agent: Agent) => void): () => void };
}

export interface ListCardsInput {
  pageSize: number;
  pageToken: string;
  /** "" or undefined: any. */
  capability?: string;
  skill?: string;
}

export interface CardPage {
  cards: AgentCard[];
  nextPageToken: string;
}

const RECONCILE_BATCH = 500;

export class CardService {
  private readonly logger: Logger;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(private readonly deps: CardServiceDeps) {
    this.logger = deps.logger.child({ component: "cards" });
    this.unsubscribe.push(deps.bus.subscribe((e) => this.onEvent(e)));
    if (deps.tasks) this.unsubscribe.push(deps.tasks.onTaskStart((task, agent) => this.onTaskStart(task, agent)));
  }

  /** Brings every card in line with the agents (status; cards of agents that are gone deleted). Call at start-up. */
  open(): void {
    let afterId: string | undefined;
    let fixed = 0;
    for (;;) {
      const page = this.deps.cards.listCards({ afterId, limit: RECONCILE_BATCH });
      for (const card of page) {
        const agent = this.deps.agents.find(card.agentId);
        if (!agent) {
          if (this.deps.cards.deleteCard(card.agentId)) fixed++;
        } else if (this.deps.cards.setCardStatus(card.agentId, agent.status, this.deps.clock.now())) {
          fixed++;
        }
      }
      if (page.length < RECONCILE_BATCH) break;
      afterId = page.at(-1)!.agentId;
    }
    if (fixed > 0) this.logger.info({ cards: fixed }, "cards reconciled with agents");
  }

  close(): void {
    for (const u of this.unsubscribe.splice(0)) u();
  }

  /** Creates or replaces a registered agent's card. NOT_FOUND for an unknown agent. */
  publish(input: CardInput | undefined): AgentCard {
    const valid = validateCardInput(input);
    const agent = this.deps.agents.get(valid.agentId);
    const card: AgentCard = {
      ...valid,
      name: valid.name || agent.config.name,
      status: agent.status,
      updatedAt: this.deps.clock.now(),
    };
    this.deps.cards.putCard(card);
    this.logger.info({ agentId: card.agentId, capabilities: card.capabilities.length, skills: card.skills.length }, "card published");
    return card;
  }

  get(agentId: string): AgentCard {
    validateAgentId(agentId);
    const card = this.deps.cards.getCard(agentId);
    if (!card) throw notFound(`agent "${agentId}" has no card`, { agentId });
    return card;
  }

  /** A page of cards ordered by agent id, optionally filtered by an exact capability and/or skill (id or tag). */
  list(input: ListCardsInput): CardPage {
    const limit = pageSize(input.pageSize);
    const capability = input.capability || undefined;
    const skill = input.skill || undefined;
    if (capability !== undefined) validateSimpleId(capability, "capability");
    // A skill filter also matches tags, which are freer than ids.
    if (skill !== undefined) checkString(skill, "skill", CARD_LIMITS.idLength);
    const filter = JSON.stringify([capability ?? "", skill ?? ""]);
    const afterId = decodePageToken(input.pageToken, filter);
    const rows = this.deps.cards.listCards({ afterId, limit: limit + 1, capability, skill });
    const more = rows.length > limit;
    const cards = more ? rows.slice(0, limit) : rows;
    return { cards, nextPageToken: more ? encodePageToken(cards.at(-1)!.agentId, filter) : "" };
  }

  /** Adds capabilities to an agent's card (making a minimal card when it has none). The card keeps at most 64. */
  gainCapabilities(agent: Agent, capabilities: readonly string[]): AgentCard {
    const agentId = agent.config.agentId;
    const existing = this.deps.cards.getCard(agentId);
    const base: AgentCard = existing ?? {
      agentId,
      name: agent.config.name,
      description: "",
      capabilities: [],
      skills: [],
      status: agent.status,
      updatedAt: 0,
    };
    const merged = mergeCapabilities(base.capabilities, capabilities);
    const kept = merged.slice(0, CARD_LIMITS.capabilities);
    if (kept.length < merged.length) this.logger.debug({ agentId, dropped: merged.slice(kept.length) }, "card is full: capabilities not added");
    if (existing && kept.length === existing.capabilities.length) return existing;
    const card: AgentCard = { ...base, capabilities: kept, updatedAt: this.deps.clock.now() };
    this.deps.cards.putCard(card);
    return card;
  }

  private onTaskStart(task: Task, agent: Agent): void {
    // A task must start even when the card cannot be written: log, never throw into the scheduler.
    try {
      const card = this.gainCapabilities(agent, inferCapabilities(task.directive.goal));
      this.logger.debug({ agentId: card.agentId, taskId: task.taskId, capabilities: card.capabilities }, "card capabilities from task");
    } catch (err) {
      this.logger.warn({ agentId: agent.config.agentId, taskId: task.taskId, err }, "card not updated at task start");
    }
  }

  private onEvent(event: StoredEvent): void {
    if (event.kind !== "agent") return;
    if (event.type === "removed") {
      if (this.deps.cards.deleteCard(event.id)) this.logger.info({ agentId: event.id }, "card removed with its agent");
    } else if (event.type === "changed") {
      const agent = event.entity as Agent;
      this.deps.cards.setCardStatus(event.id, agent.status, this.deps.clock.now());
    }
  }
}
