/**
 * The task part of the core's ports: durable tasks. Shared pieces (the Store's event
 * log, StoredEvent) stay in core/ports.ts; like the A2A ports, this lives with its domain.
 */
import type { StoredEvent } from "../ports.js";
import type { Task, TaskState } from "./task.js";

export interface TaskQuery {
  /** Exclusive: tasks submitted after this sequence number. */
  afterSeq?: number;
  limit: number;
  state?: TaskState;
  agentId?: string;
}

/**
 * Durable tasks; shares the Store's database and event log (kind "task"), with the
 * same synchronous, one-transaction-per-call contract.
 */
export interface TaskStore {
  /** The next submission sequence number (strictly increasing, survives restarts). */
  nextSeq(): number;
  /** Throws already_exists on a duplicate id. env (a template's values) is kept apart from the task, as an agent's is. */
  insertTask(task: Task, env?: Record<string, string>): StoredEvent<Task>;
  /** The template environment values of a task ({} when none): a retry makes its new ephemeral agent with them. */
  taskEnv(taskId: string): Record<string, string>;
  /** Throws not_found when the task is gone. */
  updateTask(task: Task): StoredEvent<Task>;
  getTask(taskId: string): Task | undefined;
  /** Ordered by seq. */
  listTasks(query: TaskQuery): Task[];
  /** Tasks in any of these states, ordered by seq. */
  tasksWithState(states: readonly TaskState[]): Task[];
  countTasksWithState(states: readonly TaskState[]): number;
}
