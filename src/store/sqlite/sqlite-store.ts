/**
 * The embedded Store: one SQLite file (WAL) under the data directory. Every call is one
 * transaction; every entity write appends its event in that same transaction, so the
 * event log and the tables never disagree, even after a crash.
 */
import { chmodSync, closeSync, mkdirSync, openSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import type { Agent, AgentStatus } from "../../core/agent.js";
import { AgentorchError, alreadyExists, invalidArgument, notFound, unavailable } from "../../core/errors.js";
import type {
  AgentQuery,
  Clock,
  ContainerOutput,
  EntityKind,
  EventType,
  Logger,
  StoredEvent,
  Store,
} from "../../core/ports.js";
import { systemClock } from "../../core/ports.js";
import { decodeAgent, decodeJson, encodeAgent, fromBlob, toBlob } from "./codec.js";
import { mapStoreError, sqliteCode } from "./errors.js";
import { SCHEMA_VERSION, migrate } from "./schema.js";
import { prepareStatements, type Statements } from "./statements.js";

/** Meta key holding the highest revision ever pruned: the counter never goes back, even when the log is emptied. */
export const PRUNED_THROUGH_KEY = "store.events.pruned_through";

export interface SqliteStoreOptions {
  /** A file path (its directory is created) or ":memory:". */
  path: string;
  logger: Logger;
  /** Stamps events and pending removals; the system clock by default. */
  clock?: Clock;
  /** While writes fail, how often a probe write checks whether they work again (default 1 s). */
  probeMs?: number;
}

/**
 * The Store, plus what later store modules of this package (tasks, cards, mailboxes)
 * need to share its database and its event log. The core sees only Store.
 */
export interface SqliteStore extends Store {
  /** The open database: for this package's store modules only. */
  readonly db: Database.Database;
  /** Runs fn in one write transaction (nested calls become savepoints); SQLite failures are mapped to AgentorchErrors. */
  write<T>(fn: () => T): T;
  /** Runs a read; SQLite failures are mapped to AgentorchErrors. */
  read<T>(fn: () => T): T;
  /** Stores environment values apart from every entity's JSON (owner "agent:<id>" or "task:<id>"); {} deletes them. Only inside write(). */
  putEnv(owner: string, env: Record<string, string>): void;
  /** The values stored for owner, {} when none. */
  getEnv(owner: string): Record<string, string>;
  /** Appends an event with the next revision. Only inside write(), so it commits with the change it reports. */
  appendEvent<T>(kind: EntityKind, type: EventType, id: string, entity: T): StoredEvent<T>;
  /**
   * False from a write SQLite could not make (disk full, I/O error, read-only) until a write
   * succeeds again; meanwhile a tiny probe write is tried every probeMs (health "store").
   */
  writable(): boolean;
  /** Called with every change of writable(); returns an unsubscribe function. */
  onWritable(cb: (writable: boolean) => void): () => void;
}

/** Meta key the probe writes while the store refuses writes. */
export const WRITE_PROBE_KEY = "store.write_probe";

/** Opens (creating and migrating as needed) the SQLite store at path. */
export function openSqliteStore(options: SqliteStoreOptions): SqliteStore {
  const { path, logger } = options;
  const memory = path === ":memory:" || path === "";
  if (!memory) mkdirSync(dirname(resolve(path)), { recursive: true });
  let db: Database.Database;
  try {
    if (!memory) restrictFileModes(path);
    db = new Database(path, { timeout: 5000 });
  } catch (err) {
    throw mapStoreError(err, "open");
  }
  try {
    const journal = String(db.pragma("journal_mode = WAL", { simple: true }));
    if (!memory && journal !== "wal") logger.warn({ path, journal }, "store could not switch to WAL");
    // NORMAL under WAL: a committed transaction survives a crash of the process (not of the OS).
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
    db.pragma("busy_timeout = 5000");
    // Deleted content (an agent's env values when it is removed, JSON rewritten by a migration)
    // is overwritten with zeros rather than left in free pages of the file.
    db.pragma("secure_delete = ON");
    migrate(db, logger);
  } catch (err) {
    db.close();
    throw mapStoreError(err, "open");
  }
  logger.info({ path, schemaVersion: SCHEMA_VERSION }, "store opened");
  return new SqliteStoreImpl(db, logger, options.clock ?? systemClock, options.probeMs ?? 1000);
}

class SqliteStoreImpl implements SqliteStore {
  private readonly s: Statements;
  private readonly tx: Database.Transaction<(fn: () => unknown) => unknown>;
  private closed = false;
  private canWrite = true;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly writableListeners = new Set<(writable: boolean) => void>();

  constructor(
    readonly db: Database.Database,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly probeMs: number,
  ) {
    this.s = prepareStatements(db);
    this.tx = db.transaction((fn: () => unknown) => fn());
  }

  // ------------------------------------------------------------ plumbing

  write<T>(fn: () => T): T {
    this.assertOpen();
    try {
      // IMMEDIATE takes the write lock up front: no deferred-upgrade deadlock with another connection.
      const out = this.tx.immediate(fn) as T;
      this.setWritable(true);
      return out;
    } catch (err) {
      const mapped = mapStoreError(err, "write");
      // A refusal raised on purpose (not found, duplicate…) is the caller's business; a write
      // SQLite could not make (disk full, I/O error) is the operator's: say so at error level,
      // with SQLite's own message. The transaction was rolled back: nothing changed.
      if (mapped !== err) {
        this.logger.error({ err, code: sqliteCode(err) }, "store write failed; nothing was changed");
        if (mapped.kind === "unavailable") this.setWritable(false);
      }
      throw mapped;
    }
  }

  writable(): boolean {
    return this.canWrite;
  }

  onWritable(cb: (writable: boolean) => void): () => void {
    this.writableListeners.add(cb);
    return () => this.writableListeners.delete(cb);
  }

  private setWritable(writable: boolean): void {
    if (this.canWrite === writable) return;
    this.canWrite = writable;
    this.logger.warn({ writable }, writable ? "store writable again" : "store not writable; probing until a write succeeds");
    if (!writable && !this.probeTimer) {
      this.probeTimer = setInterval(() => this.probe(), this.probeMs);
      this.probeTimer.unref();
    } else if (writable) {
      clearInterval(this.probeTimer);
      this.probeTimer = undefined;
    }
    for (const cb of this.writableListeners) cb(writable);
  }

  /** A tiny real write (a rollback would write nothing, so prove nothing). */
  private probe(): void {
    if (this.closed) return;
    try {
      this.tx.immediate(() => this.s.setMeta.run(WRITE_PROBE_KEY, String(this.clock.now())));
      this.setWritable(true);
    } catch {
      // Still refused (logged once, when it began); tried again on the next tick.
    }
  }

  read<T>(fn: () => T): T {
    this.assertOpen();
    try {
      return fn();
    } catch (err) {
      throw mapStoreError(err, "read");
    }
  }

  private assertOpen(): void {
    if (this.closed) throw unavailable("store is closed");
  }

  appendEvent<T>(kind: EntityKind, type: EventType, id: string, entity: T): StoredEvent<T> {
    return this.appendJson(kind, type, id, JSON.stringify(entity)) as StoredEvent<T>;
  }

  private appendJson(kind: EntityKind, type: EventType, id: string, json: string): StoredEvent {
    if (!this.db.inTransaction) {
      throw new AgentorchError("internal", "event appended outside a write transaction");
    }
    const time = this.clock.now();
    const revision = this.s.appendEvent.get(PRUNED_THROUGH_KEY, kind, type, id, json, time)!;
    // The decoded copy, not the caller's object: subscribers see exactly what readEvents will replay.
    return { revision, kind, type, id, entity: decodeJson(json), time };
  }

  putEnv(owner: string, env: Record<string, string>): void {
    if (!this.db.inTransaction) throw new AgentorchError("internal", "env stored outside a write transaction");
    if (Object.keys(env).length === 0) this.s.deleteEnv.run(owner);
    else this.s.putEnv.run(owner, JSON.stringify(env));
  }

  getEnv(owner: string): Record<string, string> {
    return this.read(() => {
      const json = this.s.getEnv.get(owner);
      return json === undefined ? {} : (decodeJson(json) as Record<string, string>);
    });
  }

  // ------------------------------------------------------------ agents

  getAgent(agentId: string): Agent | undefined {
    return this.read(() => {
      const json = this.s.getAgent.get(agentId);
      return json === undefined ? undefined : decodeAgent(json);
    });
  }

  listAgents(query: AgentQuery): Agent[] {
    const limit = Math.floor(query.limit);
    if (!(limit > 0)) return [];
    return this.read(() => {
      const { afterId, status } = query;
      let rows: string[];
      if (status === undefined) {
        rows = afterId === undefined ? this.s.listAgents.all(limit) : this.s.listAgentsAfter.all(afterId, limit);
      } else {
        rows =
          afterId === undefined
            ? this.s.listAgentsByStatus.all(status, limit)
            : this.s.listAgentsByStatusAfter.all(status, afterId, limit);
      }
      return rows.map(decodeAgent);
    });
  }

  agentsWithStatus(statuses: readonly AgentStatus[]): Agent[] {
    const unique = [...new Set(statuses)];
    if (unique.length === 0) return [];
    return this.read(() => this.s.agentsWithStatus(unique.length).all(...unique).map(decodeAgent));
  }

  countAgentsWithStatus(statuses: readonly AgentStatus[]): number {
    const unique = [...new Set(statuses)];
    if (unique.length === 0) return 0;
    return this.read(() => this.s.countAgentsWithStatus(unique.length).get(...unique) ?? 0);
  }

  countAgents(): number {
    return this.read(() => this.s.countAgents.get() ?? 0);
  }

  insertAgent(agent: Agent, env: Record<string, string> = {}): StoredEvent<Agent> {
    const id = agent.config.agentId;
    const json = encodeAgent(agent);
    return this.write(() => {
      if (this.s.insertAgent.run(id, agent.status, json).changes === 0) {
        throw alreadyExists(`agent "${id}" already exists`, { agentId: id });
      }
      this.putEnv(`agent:${id}`, env);
      return this.appendJson("agent", "added", id, json) as StoredEvent<Agent>;
    });
  }

  agentEnv(agentId: string): Record<string, string> {
    return this.getEnv(`agent:${agentId}`);
  }

  updateAgent(agent: Agent): StoredEvent<Agent> {
    const id = agent.config.agentId;
    const json = encodeAgent(agent);
    return this.write(() => {
      if (this.s.updateAgent.run(agent.status, json, id).changes === 0) {
        throw notFound(`agent "${id}" not found`, { agentId: id });
      }
      return this.appendJson("agent", "changed", id, json) as StoredEvent<Agent>;
    });
  }

  deleteAgent(agentId: string): StoredEvent<Agent> | undefined {
    return this.write(() => {
      const json = this.s.deleteAgent.get(agentId);
      if (json === undefined) return undefined;
      // The output tail belongs to this agent: a later agent with the same id must not inherit it.
      this.s.deleteOutput.run(agentId);
      this.s.deleteEnv.run(`agent:${agentId}`);
      return this.appendJson("agent", "removed", agentId, json) as StoredEvent<Agent>;
    });
  }

  // ------------------------------------------------------------ pending removals

  addPendingRemoval(containerId: string, agentId: string): void {
    this.write(() => this.s.addPendingRemoval.run(containerId, agentId, this.clock.now()));
  }

  pendingRemovals(): { containerId: string; agentId: string }[] {
    return this.read(() => this.s.pendingRemovals.all());
  }

  deletePendingRemoval(containerId: string): void {
    this.write(() => this.s.deletePendingRemoval.run(containerId));
  }

  // ------------------------------------------------------------ outputs

  saveOutput(agentId: string, output: ContainerOutput): void {
    this.write(() => this.s.saveOutput.run(agentId, toBlob(output.data), output.truncated ? 1 : 0));
  }

  getOutput(agentId: string): ContainerOutput | undefined {
    return this.read(() => {
      const row = this.s.getOutput.get(agentId);
      return row === undefined ? undefined : { data: fromBlob(row.data), truncated: row.truncated !== 0 };
    });
  }

  // ------------------------------------------------------------ event log

  currentRevision(): number {
    return this.read(() => this.s.currentRevision.get(PRUNED_THROUGH_KEY) ?? 0);
  }

  oldestRevision(): number {
    return this.read(() => this.s.oldestRevision.get() ?? this.currentRevision() + 1);
  }

  readEvents(afterRevision: number, limit: number): StoredEvent[] {
    const max = Math.floor(limit);
    if (!(max > 0)) return [];
    return this.read(() =>
      this.s.readEvents.all(afterRevision, max).map((row) => ({
        revision: row.revision,
        kind: row.kind,
        type: row.type,
        id: row.entity_id,
        entity: decodeJson(row.data),
        time: row.time,
      })),
    );
  }

  pruneEvents(keep: number): void {
    const kept = Math.max(0, Math.floor(keep));
    this.write(() => {
      const through = (this.s.currentRevision.get(PRUNED_THROUGH_KEY) ?? 0) - kept;
      const oldest = this.s.oldestRevision.get();
      if (oldest === undefined || oldest > through) return;
      this.s.pruneEvents.run(through);
      const previous = Number(this.s.getMeta.get(PRUNED_THROUGH_KEY) ?? 0);
      this.s.setMeta.run(PRUNED_THROUGH_KEY, String(Math.max(previous, through)));
    });
  }

  // ------------------------------------------------------------ meta

  getMeta(key: string): string | undefined {
    return this.read(() => this.s.getMeta.get(key));
  }

  setMeta(key: string, value: string): void {
    if (key === PRUNED_THROUGH_KEY) throw invalidArgument(`meta key "${key}" is reserved by the store`);
    this.write(() => this.s.setMeta.run(key, value));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probeTimer);
    this.db.close();
    this.logger.debug({ path: this.db.name }, "store closed");
  }
}

/**
 * The database holds tokens' hashes, env names and every agent's history: 0600, whatever
 * the umask. Created empty with that mode before SQLite opens it (its -wal and -shm files
 * take the database's mode); an existing file, and its companions, are narrowed to it.
 */
function restrictFileModes(path: string): void {
  closeSync(openSync(path, "a", 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      chmodSync(file, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
}
