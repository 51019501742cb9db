/**
 * The SQLite Store against real better-sqlite3 on files in a temp dir (so WAL, reopen
 * and durability are exercised): what a caller of the Store port observes.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Agent, AgentStatus } from "../../src/core/agent.js";
import type { AgentorchError } from "../../src/core/errors.js";
import type { Logger, StoredEvent } from "../../src/core/ports.js";
import { openSqliteStore, PRUNED_THROUGH_KEY, type SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { SCHEMA_VERSION } from "../../src/store/sqlite/schema.js";
import { thrown } from "../support/errors.js";

const silent: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silent,
};

/** Every field present, optional ones included, with values that would expose a lossy codec. */
function fullAgent(id: string, over: Partial<Agent> = {}): Agent {
  return {
    config: {
      agentId: id,
      name: `Agent ${id} — ünïcødé`,
      image: "agentorch/busybox:test",
      command: ["sh", "-c", 'echo "hi" && sleep 1'],
      envNames: ["A", "EMPTY", "JSON"],
      policy: "container_direct",
      resources: { memoryBytes: 268_435_456, cpus: 1.5, pidsLimit: 64, maxOutputBytes: 65_536 },
      lifecycle: { maxIdleMs: 0, maxLifetimeMs: 3_600_000, restartOnCrash: true, maxRestarts: 5 },
      workspace: { mountPoint: "/work", readOnly: true },
    },
    status: "running",
    statusReason: "started by test",
    exitCode: 0,
    containerId: "c0ffee",
    workspacePath: "/data/workspaces/" + id,
    createdAt: 1_700_000_000_123,
    startedAt: 1_700_000_001_456,
    lastActivity: 1_700_000_002_789,
    restartCount: 2,
    executionCount: 3,
    crashRestarts: 1,
    tokenHash: "ab".repeat(32),
    currentTaskId: "task-1",
    ephemeral: true,
    ...over,
  };
}

/** Optional fields absent. */
function minimalAgent(id: string, status: AgentStatus = "idle"): Agent {
  const { exitCode: _e, startedAt: _s, lastActivity: _l, currentTaskId: _t, ...rest } = fullAgent(id);
  return { ...rest, status, statusReason: "", containerId: "", tokenHash: "", ephemeral: false };
}

function causeCode(err: AgentorchError): unknown {
  return (err.cause as { code?: unknown } | undefined)?.code;
}

/** What a caller can observe of the whole store. */
function snapshot(store: SqliteStore) {
  return {
    agents: store.listAgents({ limit: 10_000 }),
    count: store.countAgents(),
    events: store.readEvents(0, 10_000),
    current: store.currentRevision(),
    oldest: store.oldestRevision(),
  };
}

const STATUSES: AgentStatus[] = ["idle", "starting", "running", "stopping", "failed", "terminated"];

let dir: string;
let dbPath: string;
let now: number;
const clock = { now: () => now };
const open: SqliteStore[] = [];

function openStore(path = dbPath): SqliteStore {
  const store = openSqliteStore({ path, logger: silent, clock });
  open.push(store);
  return store;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "agentorch-sqlite-"));
  dbPath = join(dir, "nested", "data", "agentorch.db");
  now = 1_700_000_100_000;
});

afterEach(() => {
  for (const store of open.splice(0)) store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("opening", () => {
  it("creates the parent directory and a WAL database at the current schema version", () => {
    const store = openStore();
    expect(existsSync(dbPath)).toBe(true);
    expect(store.db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(store.db.pragma("synchronous", { simple: true })).toBe(1); // NORMAL
    expect(store.db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(store.db.pragma("busy_timeout", { simple: true })).toBe(5000);
    expect(store.db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
  });

  it("works in memory", () => {
    const store = openStore(":memory:");
    store.insertAgent(minimalAgent("a"));
    expect(store.getAgent("a")).toStrictEqual(minimalAgent("a"));
  });

  it("refuses a database written by a newer schema", () => {
    const store = openStore();
    store.close();
    const raw = new Database(dbPath);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const err = thrown(() => openStore());
    expect(err.kind).toBe("failed_precondition");
    expect(err.message).toContain("newer");
  });

  it("close is idempotent, and a closed store answers unavailable", () => {
    const store = openStore();
    store.close();
    store.close();
    expect(thrown(() => store.getAgent("a")).kind).toBe("unavailable");
    expect(thrown(() => store.insertAgent(minimalAgent("a"))).kind).toBe("unavailable");
  });
});

describe("agents", () => {
  it("round-trips every field, optional ones present or absent, through insert, update and delete", () => {
    const store = openStore();
    const agent = fullAgent("full-1");

    const added = store.insertAgent(agent);
    expect(added).toStrictEqual({ revision: 1, kind: "agent", type: "added", id: "full-1", entity: agent, time: now });
    expect(store.getAgent("full-1")).toStrictEqual(agent);

    now += 1000;
    const stopped: Agent = { ...minimalAgent("full-1", "idle"), createdAt: agent.createdAt, restartCount: 7 };
    const changed = store.updateAgent(stopped);
    expect(changed).toStrictEqual({
      revision: 2,
      kind: "agent",
      type: "changed",
      id: "full-1",
      entity: stopped,
      time: now,
    });
    const read = store.getAgent("full-1")!;
    expect(read).toStrictEqual(stopped);
    for (const key of ["exitCode", "startedAt", "lastActivity", "currentTaskId"]) expect(read).not.toHaveProperty(key);

    now += 1000;
    const removed = store.deleteAgent("full-1");
    expect(removed).toStrictEqual({
      revision: 3,
      kind: "agent",
      type: "removed",
      id: "full-1",
      entity: stopped,
      time: now,
    });
    expect(store.getAgent("full-1")).toBeUndefined();
    expect(store.countAgents()).toBe(0);
  });

  it("stores a field set to undefined as absent, and returns event entities exactly as replayed", () => {
    const store = openStore();
    const agent: Agent = { ...minimalAgent("u"), exitCode: undefined, currentTaskId: undefined };
    const event = store.insertAgent(agent);
    expect(Object.keys(store.getAgent("u")!)).not.toContain("exitCode");
    expect(store.getAgent("u")).toStrictEqual(minimalAgent("u"));
    expect(event.entity).toStrictEqual(minimalAgent("u"));
    expect(store.readEvents(0, 10)).toStrictEqual([event]);
  });

  it("refuses a duplicate id with already_exists, keeps the first agent and appends no event", () => {
    const store = openStore();
    store.insertAgent(fullAgent("dup"));
    const before = snapshot(store);

    const err = thrown(() => store.insertAgent(minimalAgent("dup")));
    expect(err.kind).toBe("already_exists");
    expect(err.details.agentId).toBe("dup");
    expect(snapshot(store)).toStrictEqual(before);
    expect(store.getAgent("dup")).toStrictEqual(fullAgent("dup"));
  });

  it("update of a missing agent is not_found; delete of a missing agent is undefined; neither appends", () => {
    const store = openStore();
    store.insertAgent(minimalAgent("present"));
    const before = snapshot(store);

    const err = thrown(() => store.updateAgent(minimalAgent("missing")));
    expect(err.kind).toBe("not_found");
    expect(store.deleteAgent("missing")).toBeUndefined();
    expect(store.getAgent("missing")).toBeUndefined();
    expect(snapshot(store)).toStrictEqual(before);
  });

  it("pages with a keyset over 250 agents, with and without a status filter: each agent once, in order", () => {
    const store = openStore();
    const ids: string[] = [];
    // Mixed case, digits and '-': byte order differs from numeric and from case-insensitive order.
    for (let i = 0; i < 250; i++) ids.push(i % 3 === 0 ? `Agent-${i}` : i % 3 === 1 ? `agent-${i}` : `${i}-z`);
    const statusOf = (i: number) => STATUSES[(i * 7) % STATUSES.length]!;
    // Insert in a scrambled order so that insertion order cannot pass for sort order.
    for (let k = 0; k < 250; k++) {
      const i = (k * 101) % 250;
      store.insertAgent(minimalAgent(ids[i]!, statusOf(i)));
    }
    const sorted = [...ids].sort();

    const pageAll = (status?: AgentStatus, limit = 7) => {
      const seen: string[] = [];
      let afterId: string | undefined;
      for (;;) {
        const page = store.listAgents({ afterId, limit, status });
        expect(page.length).toBeLessThanOrEqual(limit);
        seen.push(...page.map((a) => a.config.agentId));
        if (page.length < limit) return seen;
        afterId = page.at(-1)!.config.agentId;
      }
    };

    expect(pageAll()).toStrictEqual(sorted);
    expect(pageAll(undefined, 100)).toStrictEqual(sorted);
    for (const status of STATUSES) {
      const expected = sorted.filter((id) => statusOf(ids.indexOf(id)) === status);
      expect(expected.length).toBeGreaterThan(0);
      const got = pageAll(status);
      expect(got).toStrictEqual(expected);
      for (const id of got) expect(store.getAgent(id)!.status).toBe(status);
    }
    expect(store.listAgents({ limit: 0 })).toStrictEqual([]);
    expect(store.listAgents({ afterId: sorted.at(-1), limit: 10 })).toStrictEqual([]);
  });

  it("uses the status index for a filtered page (no table scan, no sort)", () => {
    const store = openStore();
    const plan = store.db
      .prepare("EXPLAIN QUERY PLAN SELECT data FROM agents WHERE status = ? AND agent_id > ? ORDER BY agent_id LIMIT ?")
      .all("idle", "a", 10) as { detail: string }[];
    const details = plan.map((row) => row.detail).join("\n");
    expect(details).toContain("agents_status");
    expect(details).not.toContain("TEMP B-TREE");
  });

  it("finds and counts agents by a set of statuses", () => {
    const store = openStore();
    const statuses: AgentStatus[] = ["idle", "running", "running", "failed", "stopping", "running"];
    statuses.forEach((status, i) => store.insertAgent(minimalAgent(`a${i}`, status)));

    const ids = (agents: Agent[]) => agents.map((a) => a.config.agentId);
    expect(ids(store.agentsWithStatus(["running"]))).toStrictEqual(["a1", "a2", "a5"]);
    expect(ids(store.agentsWithStatus(["running", "stopping", "running"]))).toStrictEqual(["a1", "a2", "a4", "a5"]);
    expect(store.agentsWithStatus([])).toStrictEqual([]);
    expect(store.agentsWithStatus(["terminated"])).toStrictEqual([]);
    expect(store.countAgentsWithStatus(["running", "stopping"])).toBe(4);
    expect(store.countAgentsWithStatus(["idle", "failed"])).toBe(2);
    expect(store.countAgentsWithStatus([])).toBe(0);
    expect(store.countAgents()).toBe(6);

    store.updateAgent(minimalAgent("a1", "idle"));
    expect(store.countAgentsWithStatus(["running"])).toBe(2);
    expect(store.countAgentsWithStatus(["idle"])).toBe(2);
  });
});

describe("event log", () => {
  /** Inserts, updates and deletes a few agents; returns how many events that made. */
  function churn(store: SqliteStore, prefix: string): number {
    store.insertAgent(minimalAgent(`${prefix}a`));
    store.insertAgent(minimalAgent(`${prefix}b`));
    store.updateAgent(minimalAgent(`${prefix}a`, "starting"));
    store.deleteAgent(`${prefix}b`);
    store.updateAgent(minimalAgent(`${prefix}a`, "running"));
    store.deleteAgent(`${prefix}a`);
    return 6;
  }

  it("gives gap-free, ordered revisions across insert, update and delete", () => {
    const store = openStore();
    expect(store.currentRevision()).toBe(0);
    expect(store.oldestRevision()).toBe(1);
    expect(store.readEvents(0, 10)).toStrictEqual([]);

    const n = churn(store, "x") + churn(store, "y");
    const events = store.readEvents(0, 1000);
    expect(events.map((e) => e.revision)).toStrictEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(events.slice(0, 6).map((e) => [e.type, e.id])).toStrictEqual([
      ["added", "xa"],
      ["added", "xb"],
      ["changed", "xa"],
      ["removed", "xb"],
      ["changed", "xa"],
      ["removed", "xa"],
    ]);
    expect((events[4] as StoredEvent<Agent>).entity.status).toBe("running");
    expect(store.currentRevision()).toBe(n);
    expect(store.oldestRevision()).toBe(1);

    for (const after of [0, 1, 5, n - 1, n, n + 5]) {
      expect(store.readEvents(after, 1000).map((e) => e.revision)).toStrictEqual(
        events.filter((e) => e.revision > after).map((e) => e.revision),
      );
    }
    expect(store.readEvents(3, 4).map((e) => e.revision)).toStrictEqual([4, 5, 6, 7]);
    expect(store.readEvents(3, 0)).toStrictEqual([]);
  });

  it("prunes to the newest N, moves oldestRevision, and never reuses a revision (not even after pruning all)", () => {
    const store = openStore();
    churn(store, "p"); // revisions 1..6
    churn(store, "q"); // 7..12

    store.pruneEvents(4);
    expect(store.oldestRevision()).toBe(9);
    expect(store.currentRevision()).toBe(12);
    expect(store.readEvents(0, 100).map((e) => e.revision)).toStrictEqual([9, 10, 11, 12]);

    store.pruneEvents(10); // keeps more than there is: nothing changes
    expect(store.oldestRevision()).toBe(9);

    expect(store.insertAgent(minimalAgent("after-prune")).revision).toBe(13);

    store.pruneEvents(0);
    expect(store.readEvents(0, 100)).toStrictEqual([]);
    expect(store.currentRevision()).toBe(13);
    expect(store.oldestRevision()).toBe(14);
    expect(store.updateAgent(minimalAgent("after-prune", "starting")).revision).toBe(14);
    expect(store.oldestRevision()).toBe(14);

    // Emptied again, then closed: the counter is durable too.
    store.pruneEvents(0);
    store.close();
    const reopened = openStore();
    expect(reopened.currentRevision()).toBe(14);
    expect(reopened.oldestRevision()).toBe(15);
    expect(reopened.deleteAgent("after-prune")!.revision).toBe(15);
  });

  it("continues revisions after close and reopen, with the log intact", () => {
    const store = openStore();
    churn(store, "r");
    const events = store.readEvents(0, 100);
    store.close();

    const reopened = openStore();
    expect(reopened.readEvents(0, 100)).toStrictEqual(events);
    expect(reopened.currentRevision()).toBe(6);
    expect(reopened.insertAgent(minimalAgent("next")).revision).toBe(7);
  });

  it("refuses setMeta on the key that holds the revision counter", () => {
    const store = openStore();
    expect(thrown(() => store.setMeta(PRUNED_THROUGH_KEY, "0")).kind).toBe("invalid_argument");
  });
});

describe("failed writes leave no trace", () => {
  function seeded(): SqliteStore {
    const store = openStore();
    store.insertAgent(fullAgent("keep-1"));
    store.insertAgent(minimalAgent("keep-2"));
    store.saveOutput("keep-1", { data: new Uint8Array([1, 2, 3]), truncated: false });
    return store;
  }
  const big = (id: string, status: AgentStatus = "idle") => ({
    ...minimalAgent(id, status),
    statusReason: "x".repeat(256 * 1024),
  });

  it("disk full (SQLITE_FULL): unavailable with the cause, agents and events as before, then recovers", () => {
    const store = seeded();
    const before = snapshot(store);
    const pages = Number(store.db.pragma("page_count", { simple: true }));
    store.db.pragma(`max_page_count = ${pages}`);

    for (const write of [
      () => store.insertAgent(big("new")),
      () => store.updateAgent(big("keep-2", "running")),
      () => store.saveOutput("keep-2", { data: new Uint8Array(256 * 1024), truncated: true }),
    ]) {
      const err = thrown(write);
      expect(err.kind).toBe("unavailable");
      expect(err.message).toBe("store write failed: SQLITE_FULL");
      expect(causeCode(err)).toBe("SQLITE_FULL");
    }
    expect(snapshot(store)).toStrictEqual(before);
    expect(store.getAgent("new")).toBeUndefined();
    expect(store.getOutput("keep-2")).toBeUndefined();

    store.db.pragma("max_page_count = 1073741823");
    expect(store.insertAgent(big("new")).revision).toBe(before.current + 1);
  });

  it("read-only database (SQLITE_READONLY): unavailable, nothing written", () => {
    const store = seeded();
    const before = snapshot(store);
    store.db.pragma("query_only = 1");

    const insert = thrown(() => store.insertAgent(minimalAgent("new")));
    expect(insert.kind).toBe("unavailable");
    expect(insert.message).toMatch(/^store write failed: SQLITE_READONLY/);
    expect(causeCode(insert)).toMatch(/^SQLITE_READONLY/);
    expect(thrown(() => store.deleteAgent("keep-1")).kind).toBe("unavailable");
    expect(thrown(() => store.pruneEvents(0)).kind).toBe("unavailable");
    expect(thrown(() => store.setMeta("k", "v")).kind).toBe("unavailable");

    store.db.pragma("query_only = 0");
    expect(snapshot(store)).toStrictEqual(before);
    expect(store.getOutput("keep-1")).toStrictEqual({ data: new Uint8Array([1, 2, 3]), truncated: false });
  });

  it("database locked by another connection (SQLITE_BUSY): unavailable after the busy timeout", () => {
    const store = seeded();
    const before = snapshot(store);
    store.db.pragma("busy_timeout = 50");
    const other = new Database(dbPath);
    try {
      other.exec("BEGIN IMMEDIATE");
      const err = thrown(() => store.insertAgent(minimalAgent("new")));
      expect(err.kind).toBe("unavailable");
      expect(err.message).toMatch(/^store write failed: SQLITE_BUSY/);
      other.exec("ROLLBACK");
    } finally {
      other.close();
    }
    expect(snapshot(store)).toStrictEqual(before);
    expect(store.insertAgent(minimalAgent("new")).revision).toBe(before.current + 1);
  });

  it("a failure after the agent row was written rolls the row back too (internal for an unexpected constraint)", () => {
    const store = seeded();
    const before = snapshot(store);
    store.db.exec("CREATE TRIGGER fail_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'boom'); END");

    for (const write of [
      () => store.insertAgent(minimalAgent("new")),
      () => store.updateAgent(minimalAgent("keep-1", "failed")),
      () => store.deleteAgent("keep-1"),
    ]) {
      const err = thrown(write);
      expect(err.kind).toBe("internal");
      expect(causeCode(err)).toMatch(/^SQLITE_CONSTRAINT/);
    }
    store.db.exec("DROP TRIGGER fail_events");
    expect(snapshot(store)).toStrictEqual(before);
    expect(store.getAgent("keep-1")).toStrictEqual(fullAgent("keep-1"));
    expect(store.getOutput("keep-1")).toStrictEqual({ data: new Uint8Array([1, 2, 3]), truncated: false });
  });
});

describe("pending removals, outputs, meta", () => {
  it("round-trips pending removals in the order they were added, re-adding updates in place", () => {
    const store = openStore();
    expect(store.pendingRemovals()).toStrictEqual([]);
    store.addPendingRemoval("c1", "a1");
    now += 1;
    store.addPendingRemoval("c2", "a2");
    now += 1;
    store.addPendingRemoval("c1", "a3");
    expect(store.pendingRemovals()).toStrictEqual([
      { containerId: "c1", agentId: "a3" },
      { containerId: "c2", agentId: "a2" },
    ]);
    store.deletePendingRemoval("c1");
    store.deletePendingRemoval("never-added");
    expect(store.pendingRemovals()).toStrictEqual([{ containerId: "c2", agentId: "a2" }]);
  });

  it("round-trips output bytes and the truncated flag, and drops an agent's output with the agent", () => {
    const store = openStore();
    const bytes = new Uint8Array([0, 1, 0x7f, 0x80, 0xfe, 0xff, 10, 13]);
    expect(store.getOutput("a")).toBeUndefined();

    store.saveOutput("a", { data: bytes, truncated: true });
    const got = store.getOutput("a")!;
    expect(got).toStrictEqual({ data: bytes, truncated: true });
    expect(got.data).toBeInstanceOf(Uint8Array);

    // A view into a larger buffer stores only its own bytes.
    const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
    store.saveOutput("a", { data: backing.subarray(2, 5), truncated: false });
    expect(store.getOutput("a")).toStrictEqual({ data: new Uint8Array([1, 2, 3]), truncated: false });

    store.saveOutput("b", { data: new Uint8Array(0), truncated: false });
    expect(store.getOutput("b")).toStrictEqual({ data: new Uint8Array(0), truncated: false });

    store.insertAgent(minimalAgent("a"));
    store.deleteAgent("a");
    expect(store.getOutput("a")).toBeUndefined();
    expect(store.getOutput("b")).toBeDefined();
  });

  it("round-trips meta values", () => {
    const store = openStore();
    expect(store.getMeta("instance-id")).toBeUndefined();
    store.setMeta("instance-id", "abc");
    store.setMeta("empty", "");
    expect(store.getMeta("instance-id")).toBe("abc");
    expect(store.getMeta("empty")).toBe("");
    store.setMeta("instance-id", "def");
    expect(store.getMeta("instance-id")).toBe("def");
  });

  it("keeps everything across close and reopen", () => {
    const store = openStore();
    const agent = fullAgent("durable");
    store.insertAgent(agent);
    store.insertAgent(minimalAgent("durable-2", "failed"));
    store.addPendingRemoval("c9", "durable");
    store.saveOutput("durable", { data: new Uint8Array([104, 105]), truncated: true });
    store.setMeta("instance-id", "xyz");
    const events = store.readEvents(0, 100);
    store.close();

    const reopened = openStore();
    expect(reopened.getAgent("durable")).toStrictEqual(agent);
    expect(reopened.agentsWithStatus(["failed"])).toStrictEqual([minimalAgent("durable-2", "failed")]);
    expect(reopened.pendingRemovals()).toStrictEqual([{ containerId: "c9", agentId: "durable" }]);
    expect(reopened.getOutput("durable")).toStrictEqual({ data: new Uint8Array([104, 105]), truncated: true });
    expect(reopened.getMeta("instance-id")).toBe("xyz");
    expect(reopened.readEvents(0, 100)).toStrictEqual(events);
  });
});

describe("speed (printed, not asserted)", () => {
  it("lists a 100-agent page out of 10,000 agents", () => {
    const store = openStore();
    store.write(() => {
      for (let i = 0; i < 10_000; i++) {
        store.insertAgent(fullAgent(`agent-${String(i).padStart(5, "0")}`, { status: STATUSES[i % 6]! }));
      }
    });
    const median = (run: () => unknown) => {
      const times: number[] = [];
      for (let i = 0; i < 31; i++) {
        const t0 = performance.now();
        run();
        times.push(performance.now() - t0);
      }
      return times.sort((a, b) => a - b)[15]!;
    };
    const first = median(() => store.listAgents({ limit: 100 }));
    const middle = median(() => store.listAgents({ afterId: "agent-05000", limit: 100 }));
    const filtered = median(() => store.listAgents({ afterId: "agent-05000", limit: 100, status: "running" }));
    const page = store.listAgents({ afterId: "agent-05000", limit: 100, status: "running" });
    expect(page).toHaveLength(100);
    console.log(
      `sqlite listAgents, 100 of 10,000 agents, median of 31: first page ${first.toFixed(2)} ms, ` +
        `middle page ${middle.toFixed(2)} ms, status-filtered middle page ${filtered.toFixed(2)} ms (target p99 < 20 ms)`,
    );
  });
});
