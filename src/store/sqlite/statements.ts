/**
 * Every SQL statement of the store, prepared once when the store opens (preparing
 * costs more than running a small query). Statements with an IN list of variable
 * length are prepared once per length and cached.
 */
import type Database from "better-sqlite3";
import type { EntityKind, EventType } from "../../core/ports.js";

type Stmt<P extends unknown[], R = unknown> = Database.Statement<P, R>;

export interface EventRow {
  revision: number;
  kind: EntityKind;
  type: EventType;
  entity_id: string;
  data: string;
  time: number;
}

/** The store's prepared statements; `pluck` ones return their single column. */
export interface Statements {
  getAgent: Stmt<[string], string>;
  listAgents: Stmt<[number], string>;
  listAgentsAfter: Stmt<[string, number], string>;
  listAgentsByStatus: Stmt<[string, number], string>;
  listAgentsByStatusAfter: Stmt<[string, string, number], string>;
  agentsWithStatus(count: number): Stmt<string[], string>;
  countAgentsWithStatus(count: number): Stmt<string[], number>;
  countAgents: Stmt<[], number>;
  insertAgent: Stmt<[string, string, string]>;
  updateAgent: Stmt<[string, string, string]>;
  deleteAgent: Stmt<[string], string>;
  deleteOutput: Stmt<[string]>;
  /** Params: owner ("agent:<id>", "task:<id>"), env JSON. */
  putEnv: Stmt<[string, string]>;
  getEnv: Stmt<[string], string>;
  deleteEnv: Stmt<[string]>;

  /** Params: pruned-through meta key, kind, type, entity id, data, time. Returns the new revision. */
  appendEvent: Stmt<[string, string, string, string, string, number], number>;
  /** Param: pruned-through meta key. */
  currentRevision: Stmt<[string], number>;
  oldestRevision: Stmt<[], number>;
  readEvents: Stmt<[number, number], EventRow>;
  pruneEvents: Stmt<[number]>;

  addPendingRemoval: Stmt<[string, string, number]>;
  pendingRemovals: Stmt<[], { containerId: string; agentId: string }>;
  deletePendingRemoval: Stmt<[string]>;

  saveOutput: Stmt<[string, Buffer, number]>;
  getOutput: Stmt<[string], { data: Buffer; truncated: number }>;

  getMeta: Stmt<[string], string>;
  setMeta: Stmt<[string, string]>;
}

// The last revision ever issued: the newest in the log, or the highest pruned when the log was emptied.
const LAST_REVISION = `MAX(
  COALESCE((SELECT MAX(revision) FROM events), 0),
  COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 0))`;

/** Prepares every statement on db. */
export function prepareStatements(db: Database.Database): Statements {
  const pluck = <P extends unknown[], R>(sql: string) => db.prepare<P, R>(sql).pluck();
  const cached = <S>(make: (count: number) => S) => {
    const byCount = new Map<number, S>();
    return (count: number): S => {
      let stmt = byCount.get(count);
      if (stmt === undefined) byCount.set(count, (stmt = make(count)));
      return stmt;
    };
  };
  const marks = (count: number) => Array.from({ length: count }, () => "?").join(", ");

  return {
    getAgent: pluck("SELECT data FROM agents WHERE agent_id = ?"),
    listAgents: pluck("SELECT data FROM agents ORDER BY agent_id LIMIT ?"),
    listAgentsAfter: pluck("SELECT data FROM agents WHERE agent_id > ? ORDER BY agent_id LIMIT ?"),
    listAgentsByStatus: pluck("SELECT data FROM agents WHERE status = ? ORDER BY agent_id LIMIT ?"),
    listAgentsByStatusAfter: pluck(
      "SELECT data FROM agents WHERE status = ? AND agent_id > ? ORDER BY agent_id LIMIT ?",
    ),
    agentsWithStatus: cached((n) =>
      pluck<string[], string>(`SELECT data FROM agents WHERE status IN (${marks(n)}) ORDER BY agent_id`),
    ),
    countAgentsWithStatus: cached((n) =>
      pluck<string[], number>(`SELECT COUNT(*) FROM agents WHERE status IN (${marks(n)})`),
    ),
    countAgents: pluck("SELECT COUNT(*) FROM agents"),
    insertAgent: db.prepare(
      "INSERT INTO agents (agent_id, status, data) VALUES (?, ?, ?) ON CONFLICT (agent_id) DO NOTHING",
    ),
    updateAgent: db.prepare("UPDATE agents SET status = ?, data = ? WHERE agent_id = ?"),
    deleteAgent: pluck("DELETE FROM agents WHERE agent_id = ? RETURNING data"),
    deleteOutput: db.prepare("DELETE FROM outputs WHERE agent_id = ?"),
    putEnv: db.prepare("INSERT INTO env_secrets (owner, env) VALUES (?, ?) ON CONFLICT (owner) DO UPDATE SET env = excluded.env"),
    getEnv: pluck("SELECT env FROM env_secrets WHERE owner = ?"),
    deleteEnv: db.prepare("DELETE FROM env_secrets WHERE owner = ?"),

    appendEvent: pluck(
      `INSERT INTO events (revision, kind, type, entity_id, data, time)
       VALUES (${LAST_REVISION} + 1, ?, ?, ?, ?, ?) RETURNING revision`,
    ),
    currentRevision: pluck(`SELECT ${LAST_REVISION}`),
    oldestRevision: pluck("SELECT revision FROM events ORDER BY revision LIMIT 1"),
    readEvents: db.prepare(
      "SELECT revision, kind, type, entity_id, data, time FROM events WHERE revision > ? ORDER BY revision LIMIT ?",
    ),
    pruneEvents: db.prepare("DELETE FROM events WHERE revision <= ?"),

    addPendingRemoval: db.prepare(
      `INSERT INTO pending_removals (container_id, agent_id, added_at) VALUES (?, ?, ?)
       ON CONFLICT (container_id) DO UPDATE SET agent_id = excluded.agent_id`,
    ),
    pendingRemovals: db.prepare(
      "SELECT container_id AS containerId, agent_id AS agentId FROM pending_removals ORDER BY added_at, container_id",
    ),
    deletePendingRemoval: db.prepare("DELETE FROM pending_removals WHERE container_id = ?"),

    saveOutput: db.prepare(
      `INSERT INTO outputs (agent_id, data, truncated) VALUES (?, ?, ?)
       ON CONFLICT (agent_id) DO UPDATE SET data = excluded.data, truncated = excluded.truncated`,
    ),
    getOutput: db.prepare("SELECT data, truncated FROM outputs WHERE agent_id = ?"),

    getMeta: pluck("SELECT value FROM meta WHERE key = ?"),
    setMeta: db.prepare(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    ),
  };
}
