/**
 * Env values in the SQLite store (issue 12 item 4): kept in env_secrets only, never in an
 * agent's or task's row or event; and a database written before that (values in clear in
 * the agent and task JSON and in every event) is migrated: values moved, JSON scrubbed.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createSqliteTaskStore } from "../../src/store/sqlite/task-store.js";
import { MIGRATIONS } from "../../src/store/sqlite/schema.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { createTestLogger } from "../fakes/clock-and-logger.js";

const SECRET = "s3cr3t-value-0123456789";
let dir: string;
let path: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "agentorch-env-"));
  path = join(dir, "agentorch.db");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Tables (other than env_secrets) with a row that holds text. */
function tablesHolding(text: string): string[] {
  const db = new Database(path, { readonly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
    return tables.filter((t) => (db.prepare(`SELECT * FROM "${t}"`).all() as object[]).some((r) => JSON.stringify(r).includes(text)));
  } finally {
    db.close();
  }
}

/** An agent and a template task as builds before schema 4 stored them, with their events. */
function writeOldDatabase(): void {
  const db = new Database(path);
  for (const [i, sql] of MIGRATIONS.slice(0, 3).entries()) {
    db.exec(sql);
    db.pragma(`user_version = ${i + 1}`);
  }
  const agent = {
    config: {
      agentId: "old-1",
      name: "old-1",
      image: "img",
      command: [],
      env: { ZED: "z", API_KEY: SECRET },
      policy: "container",
      resources: { memoryBytes: 536870912, cpus: 0, pidsLimit: 256, maxOutputBytes: 262144 },
      lifecycle: { maxIdleMs: 0, maxLifetimeMs: 0, restartOnCrash: false, maxRestarts: 3 },
      workspace: { mountPoint: "/workspace", readOnly: false },
    },
    status: "idle",
  };
  const bare = { ...agent, config: { ...agent.config, agentId: "old-2", env: {} } };
  const task = { taskId: "task-1", agentId: "eph-1", seq: 1, state: "completed", template: { image: "img", command: [], env: { TOKEN: SECRET } } };
  db.prepare("INSERT INTO agents (agent_id, status, data) VALUES (?, 'idle', ?)").run("old-1", JSON.stringify(agent));
  db.prepare("INSERT INTO agents (agent_id, status, data) VALUES (?, 'idle', ?)").run("old-2", JSON.stringify(bare));
  db.prepare("INSERT INTO tasks (task_id, seq, state, agent_id, data) VALUES ('task-1', 1, 'completed', 'eph-1', ?)").run(JSON.stringify(task));
  const ev = db.prepare("INSERT INTO events (revision, kind, type, entity_id, data, time) VALUES (?, ?, ?, ?, ?, 0)");
  ev.run(1, "agent", "added", "old-1", JSON.stringify(agent));
  ev.run(2, "agent", "changed", "old-1", JSON.stringify({ ...agent, status: "running" }));
  ev.run(3, "task", "added", "task-1", JSON.stringify(task));
  db.close();
}

describe("env values in the store", () => {
  it("new agents and tasks: values only in env_secrets; the agent carries the names", () => {
    const store = openSqliteStore({ path, logger: createTestLogger() });
    const tasks = createSqliteTaskStore(store);
    const base = {
      name: "a",
      image: "img",
      command: [],
      policy: "container" as const,
      resources: { memoryBytes: 1, cpus: 0, pidsLimit: 1, maxOutputBytes: 1 },
      lifecycle: { maxIdleMs: 0, maxLifetimeMs: 0, restartOnCrash: false, maxRestarts: 0 },
      workspace: { mountPoint: "/workspace", readOnly: false },
    };
    const event = store.insertAgent(
      {
        config: { ...base, agentId: "a", envNames: ["API_KEY"] },
        status: "idle",
        statusReason: "",
        containerId: "",
        workspacePath: "/w",
        createdAt: 0,
        restartCount: 0,
        executionCount: 0,
        crashRestarts: 0,
        tokenHash: "",
        ephemeral: false,
      },
      { API_KEY: SECRET },
    );
    expect(JSON.stringify(event)).not.toContain(SECRET);
    expect(store.agentEnv("a")).toEqual({ API_KEY: SECRET });
    expect(store.agentEnv("nobody")).toEqual({});
    tasks.insertTask(
      {
        taskId: "t-1",
        agentId: "a",
        directive: { goal: "g", constraints: [], acceptanceCriteria: [], originalRequest: "" },
        priority: "normal",
        state: "submitted",
        stateMessage: "",
        attempt: 1,
        createdAt: 0,
        timeoutMs: 0,
        template: { image: "img", command: [], envNames: ["T"], policy: "container", resources: base.resources },
        ephemeral: true,
        containerId: "",
        seq: 1,
      },
      { T: SECRET },
    );
    expect(tasks.taskEnv("t-1")).toEqual({ T: SECRET });
    store.close();
    expect(tablesHolding(SECRET)).toEqual(["env_secrets"]);

    const again = openSqliteStore({ path, logger: createTestLogger() });
    again.deleteAgent("a");
    expect(again.agentEnv("a")).toEqual({});
    again.close();
  });

  it("migrates a database with values in clear: moved to env_secrets, names left, events scrubbed", () => {
    writeOldDatabase();
    expect(tablesHolding(SECRET).sort()).toEqual(["agents", "events", "tasks"]);
    const store = openSqliteStore({ path, logger: createTestLogger() });
    try {
      expect(store.getAgent("old-1")?.config.envNames).toEqual(["API_KEY", "ZED"]);
      expect(store.getAgent("old-1")?.config).not.toHaveProperty("env");
      expect(store.agentEnv("old-1")).toEqual({ ZED: "z", API_KEY: SECRET });
      expect(store.getAgent("old-2")?.config.envNames).toEqual([]);
      expect(store.agentEnv("old-2")).toEqual({});
      const events = store.readEvents(0, 10);
      expect(events.map((e) => (e.entity as { config?: { envNames: string[] } }).config?.envNames)).toEqual([["API_KEY", "ZED"], ["API_KEY", "ZED"], undefined]);
      expect((events[2]!.entity as { template: { envNames: string[] } }).template.envNames).toEqual(["TOKEN"]);
      const tasks = createSqliteTaskStore(store);
      expect(tasks.getTask("task-1")?.template?.envNames).toEqual(["TOKEN"]);
      expect(tasks.taskEnv("task-1")).toEqual({ TOKEN: SECRET });
    } finally {
      store.close();
    }
    expect(tablesHolding(SECRET)).toEqual(["env_secrets"]);
    // secure_delete: the rewritten rows leave no copy of the old JSON in the file's free pages.
    const file = Buffer.concat([readFileSync(path), readFileSync(`${path}-wal`, { flag: "a+" })]).toString("latin1");
    expect(file.split(SECRET).length - 1).toBeLessThanOrEqual(2);
  });
});
