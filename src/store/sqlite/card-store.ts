/**
 * A2A cards in the SQLite store: one row per agent (status and time as columns, the rest
 * as JSON). The capability and skill filters of a listing look inside the JSON with
 * SQLite's json_each; cards number no more than agents, and a page walks agent_id order.
 */
import type { AgentStatus } from "../../core/agent.js";
import type { AgentCard } from "../../core/a2a/card.js";
import type { CardQuery, CardStore } from "../../core/a2a/ports.js";
import { AgentorchError } from "../../core/errors.js";
import { decodeJson } from "./codec.js";
import type { SqliteStore } from "./sqlite-store.js";

interface CardRow {
  agent_id: string;
  status: string;
  updated_at: number;
  data: string;
}

type CardBody = Pick<AgentCard, "name" | "description" | "capabilities" | "skills">;

const HAS_CAPABILITY = "EXISTS (SELECT 1 FROM json_each(data, '$.capabilities') c WHERE c.value = @capability)";
const HAS_SKILL = `EXISTS (SELECT 1 FROM json_each(data, '$.skills') s WHERE json_extract(s.value, '$.id') = @skill
  OR EXISTS (SELECT 1 FROM json_each(s.value, '$.tags') t WHERE t.value = @skill))`;

/** The CardStore over an open SqliteStore's database. */
export function createSqliteCardStore(store: SqliteStore): CardStore {
  const { db } = store;
  const get = db.prepare<[string], CardRow>("SELECT agent_id, status, updated_at, data FROM cards WHERE agent_id = ?");
  const put = db.prepare<[string, string, number, string]>(
    `INSERT INTO cards (agent_id, status, updated_at, data) VALUES (?, ?, ?, ?)
     ON CONFLICT (agent_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, data = excluded.data`,
  );
  const setStatus = db.prepare<[string, number, string, string]>("UPDATE cards SET status = ?, updated_at = ? WHERE agent_id = ? AND status <> ?");
  const del = db.prepare<[string]>("DELETE FROM cards WHERE agent_id = ?");
  const lists = new Map<string, ReturnType<typeof db.prepare<Record<string, unknown>, CardRow>>>();
  const listStatement = (q: CardQuery) => {
    const where: string[] = [];
    if (q.afterId !== undefined) where.push("agent_id > @afterId");
    if (q.capability !== undefined) where.push(HAS_CAPABILITY);
    if (q.skill !== undefined) where.push(HAS_SKILL);
    const key = where.join(" AND ");
    let stmt = lists.get(key);
    if (!stmt) {
      stmt = db.prepare<Record<string, unknown>, CardRow>(
        `SELECT agent_id, status, updated_at, data FROM cards ${key ? `WHERE ${key}` : ""} ORDER BY agent_id LIMIT @limit`,
      );
      lists.set(key, stmt);
    }
    return stmt;
  };

  const decode = (row: CardRow): AgentCard => {
    const body = decodeJson(row.data) as CardBody | null;
    if (typeof body !== "object" || body === null || !Array.isArray(body.capabilities) || !Array.isArray(body.skills)) {
      throw new AgentorchError("internal", "store holds a malformed card row");
    }
    return {
      agentId: row.agent_id,
      name: body.name,
      description: body.description,
      capabilities: body.capabilities,
      skills: body.skills,
      status: row.status as AgentStatus,
      updatedAt: row.updated_at,
    };
  };

  return {
    getCard(agentId) {
      return store.read(() => {
        const row = get.get(agentId);
        return row === undefined ? undefined : decode(row);
      });
    },
    putCard(card) {
      const body: CardBody = { name: card.name, description: card.description, capabilities: card.capabilities, skills: card.skills };
      store.write(() => put.run(card.agentId, card.status, card.updatedAt, JSON.stringify(body)));
    },
    setCardStatus(agentId, status, updatedAt) {
      return store.write(() => setStatus.run(status, updatedAt, agentId, status).changes > 0);
    },
    deleteCard(agentId) {
      return store.write(() => del.run(agentId).changes > 0);
    },
    listCards(q) {
      const limit = Math.floor(q.limit);
      if (!(limit > 0)) return [];
      const params: Record<string, unknown> = { limit };
      if (q.afterId !== undefined) params.afterId = q.afterId;
      if (q.capability !== undefined) params.capability = q.capability;
      if (q.skill !== undefined) params.skill = q.skill;
      return store.read(() => listStatement(q).all(params).map(decode));
    },
  };
}
