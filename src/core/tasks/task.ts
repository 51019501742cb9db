/**
 * Tasks in the core's own terms: one run of a directive on an agent, its states (A2A v1.0
 * names) with the legal transitions in one table, priorities, and results.
 */
import { randomUUID } from "node:crypto";
import type { Resources, SandboxPolicy } from "../agent.js";
import { validateAgentId } from "../agent-config.js";
import { failedPrecondition, invalidArgument } from "../errors.js";

/**
 * submitted -> working -> completed | failed | canceled
 * submitted -> canceled (cancelled while waiting; never ran)
 * submitted -> rejected (could not run when its turn came, e.g. its agent was removed or busy)
 * submitted -> failed (a service error before its container started)
 * completed, failed, canceled and rejected are terminal. A timeout is failed with reason TIMEOUT.
 */
export type TaskState = "submitted" | "working" | "completed" | "failed" | "canceled" | "rejected";

/** The one table of legal task transitions. */
export const TASK_TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  submitted: ["working", "canceled", "rejected", "failed"],
  working: ["completed", "failed", "canceled"],
  completed: [],
  failed: [],
  canceled: [],
  rejected: [],
};

export const TASK_STATES: readonly TaskState[] = Object.keys(TASK_TRANSITIONS) as TaskState[];

/** True for states a task never leaves. */
export function isTerminal(state: TaskState): boolean {
  return TASK_TRANSITIONS[state].length === 0;
}

/** Throws FAILED_PRECONDITION naming the current state when from -> to is not legal. */
export function assertTaskTransition(taskId: string, from: TaskState, to: TaskState, op: string): void {
  if (!TASK_TRANSITIONS[from].includes(to)) {
    throw failedPrecondition(`cannot ${op} task "${taskId}": invalid state ${from.toUpperCase()}`, { taskId });
  }
}

/** Only failed or canceled tasks may be retried; anything else is FAILED_PRECONDITION naming the state. */
export function assertRetryable(task: Pick<Task, "taskId" | "state">): void {
  if (task.state !== "failed" && task.state !== "canceled") {
    throw failedPrecondition(
      `cannot retry task "${task.taskId}": invalid state ${task.state.toUpperCase()} (only FAILED or CANCELED tasks can be retried)`,
      { taskId: task.taskId },
    );
  }
}

/** Waiting tasks run higher priority first. */
export type TaskPriority = "low" | "normal" | "high" | "critical";

/** Numeric rank of each priority: larger runs first. */
export const PRIORITY_RANK: Readonly<Record<TaskPriority, number>> = { low: 0, normal: 1, high: 2, critical: 3 };

export const TASK_PRIORITIES: readonly TaskPriority[] = ["low", "normal", "high", "critical"];

/**
 * Why a task is in its (terminal) state; stable codes shown to clients as state_reason.
 * Absent while submitted/working and when completed.
 */
export type TaskStateReason =
  | "TIMEOUT"
  | "ZOMBIE"
  | "CANCELED_BY_USER"
  | "CONTAINER_LOST"
  | "SERVICE_ERROR"
  | "EXIT_NONZERO"
  | "OOM_KILLED"
  | "SPAWN_FAILED"
  | "AGENT_UNAVAILABLE";

/** The work a task asks of an agent. Validated by validateDirective. */
export interface Directive {
  goal: string;
  constraints: string[];
  acceptanceCriteria: string[];
  /** "" when none was given. */
  originalRequest: string;
}

/** An ephemeral agent's description: validated, defaults filled in. */
export interface TaskTemplate {
  image: string;
  command: string[];
  /** Sorted names of the template's environment; the values are kept apart (TaskStore.taskEnv), like an agent's. */
  envNames: string[];
  policy: SandboxPolicy;
  resources: Resources;
}

/** What a finished task's container produced. */
export interface TaskResult {
  /** exitCode === 0. */
  success: boolean;
  /** Absent when the container never exited by itself (killed, vanished, never started). */
  exitCode?: number;
  /** Output tail as UTF-8. */
  output: string;
  outputTruncated: boolean;
  durationMs: number;
  /** The JSON object from AGENTORCH_RESULT_FILE, if any and valid. */
  data?: Record<string, unknown>;
  /** Why the result file was not used; "" when data is set or there was no file. */
  dataError: string;
}

/** A task as stored. Times are epoch milliseconds, durations milliseconds. */
export interface Task {
  taskId: string;
  /** The agent that runs it; for a template task, the ephemeral agent made for it. */
  agentId: string;
  directive: Directive;
  priority: TaskPriority;
  state: TaskState;
  stateReason?: TaskStateReason;
  /** Human-readable detail of stateReason; "" when none. */
  stateMessage: string;
  /** 1 for a submitted task; parent's attempt + 1 for a retry. */
  attempt: number;
  parentTaskId?: string;
  createdAt: number;
  /** When it became working. */
  startedAt?: number;
  finishedAt?: number;
  result?: TaskResult;
  /**
   * Before start: the timeout asked for (0 = none, i.e. max_execution_time). From start: the
   * limit it runs under (see effectiveTimeoutMs).
   */
  timeoutMs: number;
  /** The timeout the client asked for (0 = none); a retry asks for the same. */
  requestedTimeoutMs?: number;
  template?: TaskTemplate;
  ephemeral: boolean;
  /** Container running (or that ran) the task; "" before it started. */
  containerId: string;
  /**
   * Scheduling order within a priority: monotonically increasing across submissions and
   * persisted, so first-come-first-served survives a restart.
   */
  seq: number;
  /** The W3C traceparent of the call that submitted it (validated by the API), passed to its container. */
  traceparent?: string;
}

/** The limit a task runs under: its own timeout capped at max_execution_time (0 = just the maximum). */
export function effectiveTimeoutMs(requestedMs: number, maxExecutionTimeMs: number): number {
  return requestedMs > 0 ? Math.min(requestedMs, maxExecutionTimeMs) : maxExecutionTimeMs;
}

/** A submitted timeout: 0 (none: max_execution_time applies) or a positive whole number of ms; longer ones are capped at start. */
export function validateTaskTimeoutMs(ms: number, field = "timeout"): number {
  if (!Number.isSafeInteger(ms) || ms < 0) throw invalidArgument(`${field} must be zero or a positive duration (got ${ms} ms)`, { field });
  return ms;
}

/** Throws INVALID_ARGUMENT unless id is a well-formed task id (1-64 ASCII letters, digits, '-'). */
export function validateTaskId(id: string, field = "task_id"): string {
  return validateAgentId(id, field);
}

/** A fresh task id ("task-" and a random UUID): unique, and safe in file names and labels. */
export function newTaskId(): string {
  return `task-${randomUUID()}`;
}
