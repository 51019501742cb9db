/**
 * Reads of many agents: a page in id order with the revision it reflects, every agent,
 * and the agent watch stream (replay after a revision or a snapshot, then live events).
 */
import type { Agent, AgentStatus } from "./agent.js";
import { validateAgentId } from "./agent-config.js";
import type { EventBus } from "./event-bus.js";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.js";
import type { Store } from "./ports.js";
import { validateWatchIds, type WatchItem, type WatchLimits, type WatchRequest, watchEvents } from "./watch.js";

export interface ListAgentsInput {
  pageSize: number;
  pageToken: string;
  status?: AgentStatus;
}

export interface AgentPage {
  agents: Agent[];
  nextPageToken: string;
  revision: number;
}

/** A page of agents in id order (optionally of one status), and the revision it reflects. */
export function listAgents(store: Store, input: ListAgentsInput): AgentPage {
  const limit = pageSize(input.pageSize);
  const filter = input.status ?? "";
  const afterId = decodePageToken(input.pageToken, filter);
  // One synchronous read: the page and the revision it reflects are consistent.
  const agents = store.listAgents({ afterId, limit: limit + 1, status: input.status });
  const revision = store.currentRevision();
  const more = agents.length > limit;
  const page = more ? agents.slice(0, limit) : agents;
  const last = page.at(-1);
  return { agents: page, nextPageToken: more && last ? encodePageToken(last.config.agentId, filter) : "", revision };
}

/** Agent events: replayed after a revision or after a snapshot, then live (see watchEvents). */
export function watchAgents(store: Store, bus: EventBus, limits: WatchLimits, req: WatchRequest): AsyncGenerator<WatchItem<Agent>> {
  const ids = validateWatchIds(req.ids, validateAgentId, "agent_ids");
  return watchEvents<Agent>(store, bus, {
    kind: "agent",
    match: ids ? (id) => ids.has(id) : undefined,
    resumeAfter: req.sendInitialState ? undefined : req.resumeAfter,
    snapshot: req.sendInitialState
      ? () => (ids ? [...ids].flatMap((id) => store.getAgent(id) ?? []) : allAgents(store))
      : undefined,
    ...limits,
    signal: req.signal,
    onCutOff: req.onCutOff,
  });
}

/** Every agent, read page by page. */
export function allAgents(store: Store): Agent[] {
  const out: Agent[] = [];
  for (;;) {
    const page = store.listAgents({ afterId: out.at(-1)?.config.agentId, limit: 1000 });
    out.push(...page);
    if (page.length < 1000) return out;
  }
}
