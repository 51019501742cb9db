/**
 * How tasks look to a person: the `tasks ls` table, the `tasks get` fields, the lines a
 * followed task prints as its state changes, and the exit code of its outcome.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { TaskPriority, TaskState } from "../../gen/agentorch/v1/task_pb.js";
import type { Task } from "../../gen/agentorch/v1/task_pb.js";
import {
  absoluteAndRelative,
  colors,
  enumName,
  formatDuration,
  formatMillis,
  paintState,
  printFields,
  printTable,
  relativeTime,
  shellJoin,
  shortId,
  truncate,
} from "./output.js";

/** Exit codes of a task's outcome (tasks submit --wait, tasks watch, tasks retry --wait). */
export const TASK_EXIT: Readonly<Record<string, number>> = {
  COMPLETED: 0,
  FAILED: 10,
  CANCELED: 11,
  REJECTED: 12,
};

/** "SUBMITTED", "COMPLETED"… */
export function stateName(state: TaskState): string {
  return enumName(TaskState, state);
}

/** Whether the task will never change again. */
export function isTerminalState(state: TaskState): boolean {
  return state === TaskState.COMPLETED || state === TaskState.FAILED || state === TaskState.CANCELED || state === TaskState.REJECTED;
}

/** The exit code for a terminal task. */
export function taskExitCode(task: Task): number {
  return TASK_EXIT[stateName(task.state)] ?? 1;
}

/** How long the task ran (or has been running); "-" before it started. */
export function taskRunTime(t: Task, now = Date.now()): string {
  if (t.result?.duration) return formatDuration(t.result.duration);
  if (!t.startedAt) return "-";
  const end = t.finishedAt ? timestampDate(t.finishedAt).getTime() : now;
  return formatMillis(end - timestampDate(t.startedAt).getTime());
}

/**
 * Prints tasks as a table. wide (-o wide) shows the whole goal and adds ATTEMPT and
 * CONTAINER.
 */
export function printTaskTable(tasks: readonly Task[], now = Date.now(), wide = false): void {
  const rows = tasks.map((t) => [
    t.taskId,
    paintState(stateName(t.state)),
    t.agentId + (t.ephemeral ? " (ephemeral)" : ""),
    enumName(TaskPriority, t.priority),
    wide ? (t.directive?.goal ?? "").replace(/\s+/g, " ").trim() : truncate(t.directive?.goal ?? "", 40),
    relativeTime(t.createdAt, now),
    taskRunTime(t, now),
    ...(wide ? [String(t.attempt), t.containerId ? shortId(t.containerId) : "-"] : []),
    t.stateReason || "",
  ]);
  printTable(["ID", "STATE", "AGENT", "PRIORITY", "GOAL", "AGE", "RAN", ...(wide ? ["ATTEMPT", "CONTAINER"] : []), "REASON"], rows);
}

/** Prints one task in detail, its output last. */
export function printTask(t: Task, now = Date.now()): void {
  const d = t.directive;
  const r = t.result;
  const list = (items: readonly string[] | undefined) =>
    items && items.length > 0 ? items.map((c, i) => `\n  ${i + 1}. ${c.replace(/\n/g, "\n     ")}`).join("") : undefined;
  printFields([
    ["ID", t.taskId],
    ["State", paintState(stateName(t.state)) + (t.stateReason ? ` (${t.stateReason}${t.stateMessage ? `: ${t.stateMessage}` : ""})` : "")],
    ["Agent", t.agentId + (t.ephemeral ? " (ephemeral)" : "")],
    ["Image", t.template ? t.template.image + (t.template.command.length ? ` -- ${shellJoin(t.template.command)}` : "") : undefined],
    ["Priority", enumName(TaskPriority, t.priority)],
    ["Attempt", String(t.attempt) + (t.parentTaskId ? ` (retry of ${t.parentTaskId})` : "")],
    ["Timeout", t.timeout ? formatDuration(t.timeout) : "default"],
    ["Goal", d?.goal ?? ""],
    ["Constraints", list(d?.constraints)],
    ["Criteria", list(d?.acceptanceCriteria)],
    ["Container", t.containerId ? shortId(t.containerId) : undefined],
    ["Created", absoluteAndRelative(t.createdAt, now)],
    ["Started", absoluteAndRelative(t.startedAt, now)],
    ["Finished", absoluteAndRelative(t.finishedAt, now)],
    ["Ran", taskRunTime(t, now)],
    ["Exit code", r?.exitCode === undefined ? undefined : String(r.exitCode)],
    ["Result data", r?.data ? JSON.stringify(r.data) : r?.dataError ? `(not used: ${r.dataError})` : undefined],
  ]);
  printTaskOutput(t);
}

/** Prints the task's output tail under a header, when it has any. */
export function printTaskOutput(t: Task, write: (line: string) => void = (l) => process.stdout.write(l + "\n")): void {
  const out = t.result?.output ?? "";
  if (out === "") return;
  write(colors.dim(t.result?.outputTruncated ? "output (older output cut off):" : "output:"));
  write(out.replace(/\n$/, ""));
}

/** One line for a followed task's state: "15:04:05  task ID  FAILED  EXIT_NONZERO: exited with code 3, ran 0.4s". */
export function taskStateLine(t: Task): string {
  const time = colors.dim(new Date().toTimeString().slice(0, 8));
  const extra: string[] = [];
  if (t.state === TaskState.SUBMITTED) extra.push(`priority ${enumName(TaskPriority, t.priority)}`);
  if (t.state === TaskState.WORKING) extra.push(`on agent ${t.agentId}${t.containerId ? `, container ${shortId(t.containerId)}` : ""}`);
  if (t.stateReason) extra.push(t.stateMessage ? `${t.stateReason}: ${t.stateMessage}` : t.stateReason);
  if (isTerminalState(t.state) && t.startedAt) extra.push(`ran ${taskRunTime(t)}`);
  const name = stateName(t.state);
  return `${time}  task ${t.taskId}  ${paintState(name)}${" ".repeat(Math.max(0, 10 - name.length))}${extra.length ? " " + extra.join(", ") : ""}`.trimEnd();
}
