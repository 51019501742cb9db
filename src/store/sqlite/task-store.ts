/**
 * Tasks in the SQLite store: one row per task (indexed columns plus the JSON of the
 * whole task), each write with its "task" event in the same transaction.
 */
import { alreadyExists, AgentorchError, notFound } from "../../core/errors.js";
import type { StoredEvent } from "../../core/ports.js";
import type { TaskQuery, TaskStore } from "../../core/tasks/ports.js";
import type { Task, TaskState } from "../../core/tasks/task.js";
import { decodeJson } from "./codec.js";
import type { SqliteStore } from "./sqlite-store.js";

export function createSqliteTaskStore(store: SqliteStore): TaskStore {
  const { db } = store;
  const insert = db.prepare<[string, number, string, string, string]>(
    "INSERT OR IGNORE INTO tasks (task_id, seq, state, agent_id, data) VALUES (?, ?, ?, ?, ?)",
  );
  const update = db.prepare<[string, string, string, string]>("UPDATE tasks SET state = ?, agent_id = ?, data = ? WHERE task_id = ?");
  const get = db.prepare<[string], string>("SELECT data FROM tasks WHERE task_id = ?").pluck();
  const nextSeq = db.prepare<[], number>("SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks").pluck();
  const cache = new Map<string, ReturnType<typeof db.prepare<unknown[], string>>>();

  const decode = (json: string): Task => {
    const v = decodeJson(json) as Task | null;
    if (typeof v !== "object" || v === null || typeof v.taskId !== "string") throw new AgentorchError("internal", "store holds a malformed task row");
    return v;
  };
  const statement = (sql: string) => {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare<unknown[], string>(sql).pluck();
      cache.set(sql, s);
    }
    return s;
  };
  const readAll = (sql: string, params: unknown[]): Task[] => store.read(() => statement(sql).all(...params).map(decode));

  return {
    nextSeq: () => store.read(() => nextSeq.get() ?? 1),
    insertTask(task: Task, env: Record<string, string> = {}): StoredEvent<Task> {
      const json = JSON.stringify(task);
      return store.write(() => {
        if (insert.run(task.taskId, task.seq, task.state, task.agentId, json).changes === 0) {
          throw alreadyExists(`task "${task.taskId}" already exists`, { taskId: task.taskId });
        }
        store.putEnv(`task:${task.taskId}`, env);
        return store.appendEvent("task", "added", task.taskId, task);
      });
    },
    updateTask(task: Task): StoredEvent<Task> {
      const json = JSON.stringify(task);
      return store.write(() => {
        if (update.run(task.state, task.agentId, json, task.taskId).changes === 0) {
          throw notFound(`task "${task.taskId}" not found`, { taskId: task.taskId });
        }
        return store.appendEvent("task", "changed", task.taskId, task);
      });
    },
    taskEnv(taskId: string): Record<string, string> {
      return store.getEnv(`task:${taskId}`);
    },
    getTask(taskId: string): Task | undefined {
      return store.read(() => {
        const json = get.get(taskId);
        return json === undefined ? undefined : decode(json);
      });
    },
    listTasks(q: TaskQuery): Task[] {
      const limit = Math.floor(q.limit);
      if (!(limit > 0)) return [];
      const where: string[] = [];
      const params: unknown[] = [];
      if (q.afterSeq !== undefined) {
        where.push("seq > ?");
        params.push(q.afterSeq);
      }
      if (q.state !== undefined) {
        where.push("state = ?");
        params.push(q.state);
      }
      if (q.agentId !== undefined) {
        where.push("agent_id = ?");
        params.push(q.agentId);
      }
      params.push(limit);
      return readAll(`SELECT data FROM tasks ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY seq LIMIT ?`, params);
    },
    tasksWithState(states: readonly TaskState[]): Task[] {
      const unique = [...new Set(states)];
      if (unique.length === 0) return [];
      return readAll(`SELECT data FROM tasks WHERE state IN (${unique.map(() => "?").join(",")}) ORDER BY seq`, unique);
    },
    countTasksWithState(states: readonly TaskState[]): number {
      const unique = [...new Set(states)];
      if (unique.length === 0) return 0;
      return store.read(() => Number(db.prepare(`SELECT COUNT(*) FROM tasks WHERE state IN (${unique.map(() => "?").join(",")})`).pluck().get(...unique)));
    },
  };
}
