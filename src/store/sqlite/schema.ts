/**
 * The SQLite schema as an ordered list of migrations. `PRAGMA user_version` records how
 * many have been applied; opening a store applies the rest, each in its own transaction.
 * Adding a table later is one more entry at the end of MIGRATIONS; never edit an entry
 * that has shipped.
 */
import type Database from "better-sqlite3";
import type { Logger } from "../../core/ports.js";
import { AgentorchError } from "../../core/errors.js";

/** Migration i (0-based) brings the schema from version i to version i + 1. */
export const MIGRATIONS: readonly string[] = [
  // 1: agents, the event log, meta, pending container removals, output tails.
  `
  CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    status   TEXT NOT NULL,
    data     TEXT NOT NULL
  );
  -- (status, agent_id): a status-filtered keyset page is one index range scan, already in order.
  CREATE INDEX agents_status ON agents (status, agent_id);

  CREATE TABLE events (
    revision  INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL,
    type      TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    data      TEXT NOT NULL,
    time      INTEGER NOT NULL
  );

  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );

  CREATE TABLE pending_removals (
    container_id TEXT PRIMARY KEY,
    agent_id     TEXT NOT NULL,
    added_at     INTEGER NOT NULL
  );

  CREATE TABLE outputs (
    agent_id  TEXT PRIMARY KEY,
    data      BLOB NOT NULL,
    truncated INTEGER NOT NULL
  );
  `,
  // 2: tasks. (state, seq) and (agent_id, seq) serve the filtered pages and recovery at start-up.
  `
  CREATE TABLE tasks (
    task_id  TEXT PRIMARY KEY,
    seq      INTEGER NOT NULL UNIQUE,
    state    TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    data     TEXT NOT NULL
  );
  CREATE INDEX tasks_state ON tasks (state, seq);
  CREATE INDEX tasks_agent ON tasks (agent_id, seq);
  `,
  // 3: A2A cards and mailboxes. A mailbox row holds its counters (the last sequence given, the
  // acknowledged one, and what is unacknowledged), so a send checks its limits and takes the
  // next sequence with one point read. Messages are keyed by (agent_id, seq); acked_at is set
  // once acknowledged, and the partial index finds the ones the retention may prune.
  // message_id (a random UUID) has no index: nothing looks a message up by it, and a
  // random-key index would add a B-tree page to every send's transaction (p99 x4 measured).
  `
  CREATE TABLE cards (
    agent_id   TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    data       TEXT NOT NULL
  );

  CREATE TABLE mailboxes (
    agent_id      TEXT PRIMARY KEY,
    last_seq      INTEGER NOT NULL,
    acked_seq     INTEGER NOT NULL,
    unacked_count INTEGER NOT NULL,
    unacked_bytes INTEGER NOT NULL
  );

  CREATE TABLE messages (
    agent_id   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    size       INTEGER NOT NULL,
    acked_at   INTEGER,
    data       TEXT NOT NULL,
    PRIMARY KEY (agent_id, seq)
  );
  CREATE INDEX messages_acked ON messages (acked_at) WHERE acked_at IS NOT NULL;
  `,
  // 4: environment values are write-only (issue 12 item 4). They move out of the agent and
  // task JSON (which readers, watch streams and the event log carry) into env_secrets, keyed
  // "agent:<id>" or "task:<id>"; the JSON keeps the sorted names (envNames). Events already
  // logged are scrubbed the same way. Why a table and not encryption with a key file: the
  // key would sit in the same data directory (0700, database 0600), so encryption would only
  // add a second file to lose; what leaked was every read path carrying the values, and a
  // table that only a container start reads closes that. secure_delete (see sqlite-store.ts)
  // zeroes the pages the old JSON leaves behind.
  `
  CREATE TABLE env_secrets (
    owner TEXT PRIMARY KEY,
    env   TEXT NOT NULL
  );
  INSERT INTO env_secrets (owner, env)
    SELECT 'agent:' || agent_id, json_extract(data, '$.config.env') FROM agents
    WHERE json_type(data, '$.config.env') = 'object' AND json_extract(data, '$.config.env') != '{}';
  UPDATE agents SET data = json_set(json_remove(data, '$.config.env'), '$.config.envNames',
      json((SELECT json_group_array(key) FROM (SELECT key FROM json_each(agents.data, '$.config.env') ORDER BY key))))
    WHERE json_type(data, '$.config.env') = 'object';
  UPDATE events SET data = json_set(json_remove(data, '$.config.env'), '$.config.envNames',
      json((SELECT json_group_array(key) FROM (SELECT key FROM json_each(events.data, '$.config.env') ORDER BY key))))
    WHERE kind = 'agent' AND json_type(data, '$.config.env') = 'object';
  INSERT INTO env_secrets (owner, env)
    SELECT 'task:' || task_id, json_extract(data, '$.template.env') FROM tasks
    WHERE json_type(data, '$.template.env') = 'object' AND json_extract(data, '$.template.env') != '{}';
  UPDATE tasks SET data = json_set(json_remove(data, '$.template.env'), '$.template.envNames',
      json((SELECT json_group_array(key) FROM (SELECT key FROM json_each(tasks.data, '$.template.env') ORDER BY key))))
    WHERE json_type(data, '$.template.env') = 'object';
  UPDATE events SET data = json_set(json_remove(data, '$.template.env'), '$.template.envNames',
      json((SELECT json_group_array(key) FROM (SELECT key FROM json_each(events.data, '$.template.env') ORDER BY key))))
    WHERE kind = 'task' AND json_type(data, '$.template.env') = 'object';
  `,
  // 5: per-sender mailbox quotas. Each message row names its sender, and mailbox_senders
  // holds each sender's unacknowledged count and bytes per mailbox, so a send checks its
  // quota with one point read (counting rows instead made sends 3x slower). An ack
  // subtracts what it acknowledged, grouped by sender; a row at zero is deleted. Rows of
  // earlier versions take their sender from their JSON.
  `
  ALTER TABLE messages ADD COLUMN sender TEXT NOT NULL DEFAULT '';
  UPDATE messages SET sender = COALESCE(json_extract(data, '$.fromAgentId'), '');

  CREATE TABLE mailbox_senders (
    agent_id      TEXT NOT NULL,
    sender        TEXT NOT NULL,
    unacked_count INTEGER NOT NULL,
    unacked_bytes INTEGER NOT NULL,
    PRIMARY KEY (agent_id, sender)
  );
  INSERT INTO mailbox_senders (agent_id, sender, unacked_count, unacked_bytes)
    SELECT m.agent_id, m.sender, COUNT(*), SUM(m.size) FROM messages m JOIN mailboxes b ON b.agent_id = m.agent_id
    WHERE m.seq > b.acked_seq GROUP BY m.agent_id, m.sender;
  `,
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Applies the migrations the database lacks. Refuses a database written by a newer
 * build (its schema may hold data this one would misread or drop).
 */
export function migrate(db: Database.Database, logger: Logger): void {
  const current = Number(db.pragma("user_version", { simple: true }));
  if (current > SCHEMA_VERSION) {
    throw new AgentorchError(
      "failed_precondition",
      `database schema version ${current} is newer than this build supports (${SCHEMA_VERSION})`,
    );
  }
  for (let version = current; version < SCHEMA_VERSION; version++) {
    const sql = MIGRATIONS[version]!;
    db.transaction(() => {
      db.exec(sql);
      // user_version is part of the database header: it commits or rolls back with the migration.
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
    logger.info({ schemaVersion: version + 1 }, "store schema migrated");
  }
}
