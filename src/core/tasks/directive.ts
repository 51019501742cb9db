/**
 * Directives and templates as clients send them, the retry feedback a new attempt gets,
 * and the environment a task's container sees. Everything wrong is INVALID_ARGUMENT naming
 * the field; nothing is silently dropped or truncated (except the output tail in feedback,
 * which is a tail by design).
 */
import { posix } from "node:path";
import type { SandboxPolicy } from "../agent.js";
import { type AgentRules, checkString, DEFAULT_AGENT_RULES, validateAgentConfig, validateCommand, validateEnv, validateImage } from "../agent-config.js";
import { AgentorchError, failedPrecondition, invalidArgument, isAgentorchError } from "../errors.js";
import type { Directive, Task, TaskTemplate } from "./task.js";

export const DIRECTIVE_LIMITS = {
  goalLength: 8192,
  entries: 64,
  entryLength: 4096,
  originalRequestLength: 32 * 1024,
  /**
   * Each directive part becomes one environment variable; Linux refuses a single
   * environment string over 128 KiB (MAX_ARG_STRLEN), so each must fit in 64 KiB of UTF-8.
   */
  envValueBytes: 64 * 1024,
  /** Retry gaps: the JSON of all of them. */
  gapsBytes: 32 * 1024,
  /** The previous output quoted in retry feedback, at most (characters, from the end). */
  feedbackOutputChars: 8 * 1024,
} as const;

/** A directive before validation. */
export interface DirectiveInput {
  goal: string;
  constraints?: string[];
  acceptanceCriteria?: string[];
  originalRequest?: string;
}

/** A template before validation: optional parts may be missing. */
export interface TaskTemplateInput {
  image: string;
  command?: string[];
  env?: Record<string, string>;
  /** undefined: the default (container). "unknown" (an unrecognised proto value) is refused. */
  policy?: SandboxPolicy | "unknown";
  resources?: { memoryBytes?: number; cpus?: number; pidsLimit?: number; maxOutputBytes?: number; diskBytes?: number };
}

// Tab, LF and CR are text; every other C0/C1 control and lone surrogates are refused.
// eslint-disable-next-line no-control-regex
const BAD_TEXT_RE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]|\p{Cs}/u;

/** Validates a directive; returns a copy with defaults ([] and "") filled in. */
export function validateDirective(input: DirectiveInput | undefined): Directive {
  if (input === undefined || input === null || typeof input !== "object") {
    throw invalidArgument("directive is required", { field: "directive" });
  }
  const goal = input.goal;
  checkText(goal, "directive.goal", DIRECTIVE_LIMITS.goalLength);
  const constraints = checkList(input.constraints, "directive.constraints");
  const acceptanceCriteria = checkList(input.acceptanceCriteria, "directive.acceptance_criteria");
  const originalRequest = input.originalRequest ?? "";
  checkText(originalRequest, "directive.original_request", DIRECTIVE_LIMITS.originalRequestLength, true);

  // The goal's 8192 characters always fit in envValueBytes; the other parts may not.
  checkBytes(JSON.stringify(constraints), "directive.constraints", DIRECTIVE_LIMITS.envValueBytes, true);
  checkBytes(JSON.stringify(acceptanceCriteria), "directive.acceptance_criteria", DIRECTIVE_LIMITS.envValueBytes, true);
  checkBytes(originalRequest, "directive.original_request", DIRECTIVE_LIMITS.envValueBytes);
  return { goal, constraints, acceptanceCriteria, originalRequest };
}

/** Validates the unmet criteria a client names for a retry. */
export function validateGaps(gaps: string[] | undefined): string[] {
  const out = checkList(gaps, "gaps");
  checkBytes(JSON.stringify(out), "gaps", DIRECTIVE_LIMITS.gapsBytes, true);
  return out;
}

/** Validates a template like an agent configuration, naming fields "template.…"; fills in defaults. */
export function validateTemplate(input: TaskTemplateInput | undefined, rules: AgentRules = DEFAULT_AGENT_RULES): TaskTemplate {
  if (input === undefined || input === null || typeof input !== "object") {
    throw invalidArgument("template is required", { field: "template" });
  }
  const image = validateImage(input.image, "template.image");
  const command = validateCommand(input.command, "template.command");
  // validateEnv refuses reserved names (LD_PRELOAD, proxies, AGENTORCH_*…).
  const envNames = Object.keys(validateEnv(input.env, "template.env")).sort();
  if (input.policy === "unknown") throw invalidArgument("template.policy is not a known SandboxPolicy", { field: "template.policy" });
  const policy: SandboxPolicy = input.policy ?? "container";
  let resources;
  try {
    // One set of resource rules: the agent's. The id is a placeholder, never used.
    resources = validateAgentConfig({ agentId: "template", image, resources: input.resources ?? {} }, rules).resources;
  } catch (err) {
    if (!isAgentorchError(err, "invalid_argument")) throw err;
    const field = err.details.field === undefined ? "template" : `template.${err.details.field}`;
    throw new AgentorchError("invalid_argument", `template.${err.message}`, { field });
  }
  return { image, command, envNames, policy, resources };
}

/**
 * The constraints of a retry: the previous ones plus one entry with the feedback, exactly:
 *
 *   Previous attempt failed (attempt 1, FAILED: EXIT_NONZERO, exit code 3).
 *   Output:                      ("Output (last 8192 characters):" when cut)
 *   <the previous output tail, or "(no output)">
 *
 *   Unmet criteria:
 *   1. <gap>
 *   2. <gap>                     (the previous acceptance criteria when gaps is empty;
 *                                 "(none given)" when there are none either)
 *
 * Control characters and ANSI escapes in the output are dropped (the feedback is text).
 * The output tail shrinks further if the constraints would not fit in an environment
 * variable; when even that is not enough (too many earlier retries) the retry is
 * FAILED_PRECONDITION.
 */
export function buildRetryConstraints(previous: Task, gaps: string[]): string[] {
  const unmet = validateGaps(gaps);
  const criteria = unmet.length > 0 ? unmet : previous.directive.acceptanceCriteria;
  const output = cleanOutput(previous.result?.output ?? "");
  const wasCut = previous.result?.outputTruncated ?? false;

  let keep = Math.min(output.length, DIRECTIVE_LIMITS.feedbackOutputChars);
  for (;;) {
    const tail = output.slice(output.length - keep);
    const entry = feedbackEntry(previous, tail, wasCut || keep < output.length, criteria);
    const constraints = [...previous.directive.constraints, entry];
    const over = Buffer.byteLength(JSON.stringify(constraints), "utf8") - DIRECTIVE_LIMITS.envValueBytes;
    if (over <= 0) return constraints;
    if (keep === 0) {
      throw failedPrecondition(
        `cannot retry task "${previous.taskId}": its constraints with the feedback would exceed ${DIRECTIVE_LIMITS.envValueBytes} bytes; submit a new task with shorter constraints`,
        { taskId: previous.taskId },
      );
    }
    // Dropping k characters drops at least k bytes of JSON.
    keep = Math.max(0, keep - over);
  }
}

/** Where a task's container writes its result: relative to the workspace, and inside the container. */
export function resultFilePaths(taskId: string, mountPoint: string): { relative: string; inContainer: string } {
  const relative = `.agentorch-result-${taskId}.json`;
  return { relative, inContainer: posix.join(mountPoint, relative) };
}

/**
 * The directive as the task's container sees it: AGENTORCH_* variables (lists as JSON
 * arrays), and the submitting call's trace context when it had one.
 */
export function taskEnvironment(task: Pick<Task, "taskId" | "directive" | "attempt" | "traceparent">, resultFilePath: string): Record<string, string> {
  return {
    ...(task.traceparent ? { AGENTORCH_TRACEPARENT: task.traceparent } : {}),
    AGENTORCH_TASK_ID: task.taskId,
    AGENTORCH_GOAL: task.directive.goal,
    AGENTORCH_CONSTRAINTS: JSON.stringify(task.directive.constraints),
    AGENTORCH_ACCEPTANCE_CRITERIA: JSON.stringify(task.directive.acceptanceCriteria),
    AGENTORCH_ATTEMPT: String(task.attempt),
    AGENTORCH_RESULT_FILE: resultFilePath,
    AGENTORCH_ORIGINAL_REQUEST: task.directive.originalRequest,
  };
}

function feedbackEntry(previous: Task, tail: string, cut: boolean, criteria: readonly string[]): string {
  const state = previous.state.toUpperCase();
  const reason = previous.stateReason === undefined ? "" : `: ${previous.stateReason}`;
  const exit = previous.result?.exitCode === undefined ? "" : `, exit code ${previous.result.exitCode}`;
  const lines = [`Previous attempt failed (attempt ${previous.attempt}, ${state}${reason}${exit}).`];
  lines.push(cut ? `Output (last ${tail.length} characters):` : "Output:");
  lines.push(tail.length > 0 ? tail.replace(/\n$/, "") : "(no output)");
  lines.push("", "Unmet criteria:");
  if (criteria.length === 0) lines.push("(none given)");
  // Continuation lines are indented so a multi-line criterion stays under its number.
  criteria.forEach((c, i) => lines.push(`${i + 1}. ${c.replace(/\r\n?/g, "\n").replace(/\n/g, "\n   ")}`));
  return lines.join("\n");
}

// eslint-disable-next-line no-control-regex
const ANSI_RE = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b[@-_]/g;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

function cleanOutput(s: string): string {
  return s.replace(ANSI_RE, "").replace(/\r\n?/g, "\n").replace(CONTROL_RE, "").replace(/\p{Cs}/gu, "\ufffd");
}

function checkText(value: string, field: string, max: number, allowEmpty = false): void {
  checkString(value, field, max, { allowEmpty, allowNewlines: true });
  if (BAD_TEXT_RE.test(value)) throw invalidArgument(`${field} contains control characters`, { field });
}

function checkList(list: string[] | undefined, field: string): string[] {
  const items = list ?? [];
  if (!Array.isArray(items)) throw invalidArgument(`${field} must be a list of strings`, { field });
  if (items.length > DIRECTIVE_LIMITS.entries) {
    throw invalidArgument(`${field} has ${items.length} entries; at most ${DIRECTIVE_LIMITS.entries}`, { field });
  }
  items.forEach((s, i) => checkText(s, `${field}[${i}]`, DIRECTIVE_LIMITS.entryLength));
  return [...items];
}

function checkBytes(value: string, field: string, max: number, asJson = false): void {
  const n = Buffer.byteLength(value, "utf8");
  if (n > max) throw invalidArgument(`${field} takes ${n} bytes as UTF-8${asJson ? " JSON" : ""}; at most ${max}`, { field });
}
