/**
 * A2A mailboxes in the SQLite store. A send is one transaction: an upsert of the mailbox
 * row that takes the next sequence and adds to the unacknowledged counters, and the
 * insert of the message (the JSON of the whole stored message). An acknowledgement moves
 * acked_seq forward, stamps acked_at and subtracts what it acknowledged, in one transaction.
 */
import type { StoredMessage } from "../../core/a2a/message.js";
import type { MailboxState, MailboxStore } from "../../core/a2a/ports.js";
import { AgentorchError } from "../../core/errors.js";
import { decodeJson } from "./codec.js";
import type { SqliteStore } from "./sqlite-store.js";

interface StateRow {
  last_seq: number;
  acked_seq: number;
  unacked_count: number;
  unacked_bytes: number;
}

const EMPTY: MailboxState = { lastSequence: 0, ackedSequence: 0, unackedCount: 0, unackedBytes: 0 };

/** The MailboxStore over an open SqliteStore's database. */
export function createSqliteMailboxStore(store: SqliteStore): MailboxStore {
  const { db } = store;
  const state = db.prepare<[string], StateRow>("SELECT last_seq, acked_seq, unacked_count, unacked_bytes FROM mailboxes WHERE agent_id = ?");
  const nextSeq = db
    .prepare<[string, number], number>(
      `INSERT INTO mailboxes (agent_id, last_seq, acked_seq, unacked_count, unacked_bytes) VALUES (?, 1, 0, 1, ?)
       ON CONFLICT (agent_id) DO UPDATE SET last_seq = last_seq + 1, unacked_count = unacked_count + 1,
         unacked_bytes = unacked_bytes + excluded.unacked_bytes
       RETURNING last_seq`,
    )
    .pluck();
  const insert = db.prepare<[string, number, string, number, string, string]>(
    "INSERT INTO messages (agent_id, seq, message_id, size, acked_at, data, sender) VALUES (?, ?, ?, ?, NULL, ?, ?)",
  );
  const fromSender = db.prepare<[string, string], { n: number; bytes: number }>(
    "SELECT unacked_count AS n, unacked_bytes AS bytes FROM mailbox_senders WHERE agent_id = ? AND sender = ?",
  );
  const addSender = db.prepare<[string, string, number]>(
    `INSERT INTO mailbox_senders (agent_id, sender, unacked_count, unacked_bytes) VALUES (?, ?, 1, ?)
     ON CONFLICT (agent_id, sender) DO UPDATE SET unacked_count = unacked_count + 1, unacked_bytes = unacked_bytes + excluded.unacked_bytes`,
  );
  const pendingBySender = db.prepare<[string, number, number], { sender: string; n: number; bytes: number }>(
    "SELECT sender, COUNT(*) AS n, SUM(size) AS bytes FROM messages WHERE agent_id = ? AND seq > ? AND seq <= ? GROUP BY sender",
  );
  const subSender = db.prepare<[number, number, string, string]>(
    "UPDATE mailbox_senders SET unacked_count = unacked_count - ?, unacked_bytes = unacked_bytes - ? WHERE agent_id = ? AND sender = ?",
  );
  const dropEmptySenders = db.prepare<[string]>("DELETE FROM mailbox_senders WHERE agent_id = ? AND unacked_count <= 0");
  const deleteSenders = db.prepare<[string]>("DELETE FROM mailbox_senders WHERE agent_id = ?");
  // The acknowledged sequence is read in the same statement: a stream never sees an acknowledged message.
  const readUnacked = db.prepare<[string, number, string, number], { size: number; data: string }>(
    `SELECT size, data FROM messages
     WHERE agent_id = ? AND seq > MAX(?, COALESCE((SELECT acked_seq FROM mailboxes WHERE agent_id = ?), 0))
     ORDER BY seq LIMIT ?`,
  );
  const pending = db.prepare<[string, number, number], { n: number; bytes: number }>(
    "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM messages WHERE agent_id = ? AND seq > ? AND seq <= ?",
  );
  const markAcked = db.prepare<[number, string, number, number]>("UPDATE messages SET acked_at = ? WHERE agent_id = ? AND seq > ? AND seq <= ?");
  const moveAcked = db.prepare<[number, number, number, string]>(
    "UPDATE mailboxes SET acked_seq = ?, unacked_count = unacked_count - ?, unacked_bytes = unacked_bytes - ? WHERE agent_id = ?",
  );
  const pruneByTime = db.prepare<[number, number]>(
    `DELETE FROM messages WHERE rowid IN (
       SELECT rowid FROM messages WHERE acked_at IS NOT NULL AND acked_at < ? LIMIT ?)`,
  );
  // CROSS JOIN keeps mailboxes as the outer loop: one index range per mailbox, not a scan of every message.
  const pruneByCount = db.prepare<[number, number]>(
    `DELETE FROM messages WHERE rowid IN (
       SELECT m.rowid FROM mailboxes b CROSS JOIN messages m ON m.agent_id = b.agent_id AND m.seq <= b.acked_seq - ? LIMIT ?)`,
  );
  const deleteMessages = db.prepare<[string]>("DELETE FROM messages WHERE agent_id = ?");
  const deleteBox = db.prepare<[string]>("DELETE FROM mailboxes WHERE agent_id = ?");
  const ids = db.prepare<[], string>("SELECT agent_id FROM mailboxes ORDER BY agent_id").pluck();

  const decode = (json: string): StoredMessage => {
    const m = decodeJson(json) as StoredMessage | null;
    if (typeof m !== "object" || m === null || typeof m.sequence !== "number" || typeof m.body !== "object") {
      throw new AgentorchError("internal", "store holds a malformed message row");
    }
    return m;
  };
  const toState = (row: StateRow | undefined): MailboxState =>
    row === undefined
      ? EMPTY
      : { lastSequence: row.last_seq, ackedSequence: row.acked_seq, unackedCount: row.unacked_count, unackedBytes: row.unacked_bytes };

  return {
    state(agentId) {
      return store.read(() => toState(state.get(agentId)));
    },
    senderState(agentId, sender) {
      return store.read(() => {
        const row = fromSender.get(agentId, sender);
        return { unackedCount: row?.n ?? 0, unackedBytes: row?.bytes ?? 0 };
      });
    },
    append(message, messageId, sentAt) {
      return store.write(() => {
        const sequence = nextSeq.get(message.toAgentId, message.size)!;
        const stored: StoredMessage = { ...message, messageId, sequence, sentAt };
        insert.run(message.toAgentId, sequence, messageId, message.size, JSON.stringify(stored), message.fromAgentId);
        addSender.run(message.toAgentId, message.fromAgentId, message.size);
        return stored;
      });
    },
    readUnacked(agentId, afterSequence, limit, maxBytes) {
      const max = Math.floor(limit);
      if (!(max > 0)) return [];
      return store.read(() => {
        const out: StoredMessage[] = [];
        let bytes = 0;
        for (const row of readUnacked.iterate(agentId, afterSequence, agentId, max)) {
          if (out.length > 0 && bytes + row.size > maxBytes) break;
          bytes += row.size;
          out.push(decode(row.data));
        }
        return out;
      });
    },
    ack(agentId, upToSequence, ackedAt) {
      return store.write(() => {
        const current = toState(state.get(agentId));
        const upTo = Math.min(upToSequence, current.lastSequence);
        if (upTo <= current.ackedSequence) return 0;
        const { n, bytes } = pending.get(agentId, current.ackedSequence, upTo)!;
        for (const s of pendingBySender.all(agentId, current.ackedSequence, upTo)) subSender.run(s.n, s.bytes, agentId, s.sender);
        dropEmptySenders.run(agentId);
        markAcked.run(ackedAt, agentId, current.ackedSequence, upTo);
        moveAcked.run(upTo, n, bytes, agentId);
        return n;
      });
    },
    pruneAcked(ackedBefore, keepPerMailbox, limit) {
      const max = Math.max(1, Math.floor(limit));
      return store.write(() => {
        const byTime = pruneByTime.run(ackedBefore, max).changes;
        const byCount = pruneByCount.run(Math.max(0, Math.floor(keepPerMailbox)), max).changes;
        return byTime + byCount;
      });
    },
    deleteMailbox(agentId) {
      return store.write(() => {
        const n = deleteMessages.run(agentId).changes;
        deleteBox.run(agentId);
        deleteSenders.run(agentId);
        return n;
      });
    },
    mailboxIds() {
      return store.read(() => ids.all());
    },
  };
}
