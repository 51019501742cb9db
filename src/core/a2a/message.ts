/**
 * A2A messages in the core's own terms (the five kinds of the source system, each with
 * the envelope that routes and orders it), and their validation. Everything wrong is
 * INVALID_ARGUMENT naming the field; nothing is silently dropped or truncated.
 *
 * A message's size is the UTF-8 length of the JSON of its sender, receiver, task id and
 * kind (about its stored size). It is what counts against the message size limit and the
 * mailbox byte limit.
 */
import { validateAgentId } from "../agent-config.js";
import { invalidArgument } from "../errors.js";
import type { TaskPriority } from "../tasks/task.js";
import { checkName, checkText, validateCapabilities } from "./card.js";

/** A JSON value as a google.protobuf.Struct holds it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface TaskDelegation {
  kind: "task_delegation";
  taskId: string;
  description: string;
  payload?: JsonObject;
  priority: TaskPriority;
}
export interface StatusUpdate {
  kind: "status_update";
  taskId: string;
  progress: number;
  message: string;
}
export interface ResultSharing {
  kind: "result_sharing";
  taskId: string;
  result?: JsonObject;
  summary: string;
}
export interface CapabilityQuery {
  kind: "capability_query";
  query: string;
  requiredCapabilities: string[];
}
export interface Handshake {
  kind: "handshake";
  agentId: string;
  name: string;
  capabilities: string[];
}

/** Exactly one kind per message. */
export type MessageBody = TaskDelegation | StatusUpdate | ResultSharing | CapabilityQuery | Handshake;
export type MessageKind = MessageBody["kind"];

/** A message as a client sends it. body undefined: no kind was set. priority "unknown": a value the API did not recognise. */
export interface MessageInput {
  fromAgentId: string;
  toAgentId: string;
  /** "" when none. */
  taskId: string;
  body: (Omit<TaskDelegation, "priority"> & { priority: TaskPriority | "unknown" }) | Exclude<MessageBody, TaskDelegation> | undefined;
}

/** A validated message, before the mailbox gives it an id, a sequence and a time. */
export interface NewMessage {
  fromAgentId: string;
  toAgentId: string;
  /** "" when none; filled from the kind's task_id when the envelope has none. */
  taskId: string;
  body: MessageBody;
  /** Bytes of the stored JSON form. */
  size: number;
}

/** A message in a mailbox. sentAt is epoch ms. */
export interface StoredMessage extends NewMessage {
  messageId: string;
  /** Position in the receiver's mailbox: 1, 2, 3… never reused while the mailbox exists. */
  sequence: number;
  sentAt: number;
}

export const MESSAGE_LIMITS = {
  taskIdLength: 128,
  descriptionLength: 8192,
  statusMessageLength: 4096,
  summaryLength: 8192,
  queryLength: 4096,
  /** Struct payloads and results: objects and lists nested at most this deep. */
  structDepth: 32,
} as const;

const TASK_PRIORITIES = new Set<string>(["low", "normal", "high", "critical"]);

/**
 * Validates a message as sent and measures it. maxBytes is the size limit in force.
 * The envelope's task_id, when empty, takes the kind's task_id; when both are set they must agree.
 */
export function validateMessage(input: MessageInput | undefined, maxBytes: number): NewMessage {
  if (input === undefined || input === null || typeof input !== "object") throw invalidArgument("message is required", { field: "message" });
  const fromAgentId = validateAgentId(input.fromAgentId, "message.from_agent_id");
  const toAgentId = validateAgentId(input.toAgentId, "message.to_agent_id");
  let taskId = checkTaskId(input.taskId, "message.task_id", true);
  const body = validateBody(input.body, fromAgentId);
  if ("taskId" in body) {
    if (taskId === "") taskId = body.taskId;
    else if (taskId !== body.taskId) {
      throw invalidArgument(`message.task_id "${taskId}" differs from the ${body.kind}'s task_id "${body.taskId}"`, { field: "message.task_id" });
    }
  }
  const size = Buffer.byteLength(JSON.stringify({ fromAgentId, toAgentId, taskId, body }), "utf8");
  if (size > maxBytes) throw invalidArgument(`message takes ${size} bytes; at most ${maxBytes}`, { field: "message" });
  return { fromAgentId, toAgentId, taskId, body, size };
}

function validateBody(body: MessageInput["body"], fromAgentId: string): MessageBody {
  if (body === undefined || body === null || typeof body !== "object") {
    throw invalidArgument("message must set exactly one kind (task_delegation, status_update, result_sharing, capability_query or handshake)", {
      field: "message.kind",
    });
  }
  switch (body.kind) {
    case "task_delegation": {
      const f = "message.task_delegation";
      if (!TASK_PRIORITIES.has(body.priority)) throw invalidArgument(`${f}.priority is not a known TaskPriority`, { field: `${f}.priority` });
      const description = checkText(body.description, `${f}.description`, MESSAGE_LIMITS.descriptionLength);
      if (description === "") throw invalidArgument(`${f}.description is required`, { field: `${f}.description` });
      const out: TaskDelegation = {
        kind: body.kind,
        taskId: checkTaskId(body.taskId, `${f}.task_id`, false),
        description,
        priority: body.priority as TaskPriority,
      };
      if (body.payload !== undefined) out.payload = checkStruct(body.payload, `${f}.payload`);
      return out;
    }
    case "status_update": {
      const f = "message.status_update";
      const progress = body.progress ?? 0;
      if (!Number.isInteger(progress) || progress < 0 || progress > 100) {
        throw invalidArgument(`${f}.progress must be between 0 and 100 (got ${progress})`, { field: `${f}.progress` });
      }
      return {
        kind: body.kind,
        taskId: checkTaskId(body.taskId, `${f}.task_id`, false),
        progress,
        message: checkText(body.message, `${f}.message`, MESSAGE_LIMITS.statusMessageLength),
      };
    }
    case "result_sharing": {
      const f = "message.result_sharing";
      const out: ResultSharing = {
        kind: body.kind,
        taskId: checkTaskId(body.taskId, `${f}.task_id`, false),
        summary: checkText(body.summary, `${f}.summary`, MESSAGE_LIMITS.summaryLength),
      };
      if (body.result !== undefined) out.result = checkStruct(body.result, `${f}.result`);
      return out;
    }
    case "capability_query": {
      const f = "message.capability_query";
      return {
        kind: body.kind,
        query: checkText(body.query, `${f}.query`, MESSAGE_LIMITS.queryLength),
        requiredCapabilities: validateCapabilities(body.requiredCapabilities, `${f}.required_capabilities`),
      };
    }
    case "handshake": {
      const f = "message.handshake";
      if (body.agentId !== fromAgentId) {
        throw invalidArgument(`${f}.agent_id must equal message.from_agent_id ("${fromAgentId}")`, { field: `${f}.agent_id` });
      }
      return {
        kind: body.kind,
        agentId: body.agentId,
        name: checkName(body.name, `${f}.name`),
        capabilities: validateCapabilities(body.capabilities, `${f}.capabilities`),
      };
    }
    default:
      throw invalidArgument("message has an unknown kind", { field: "message.kind" });
  }
}

/** A correlation id: 1-128 characters without control characters ("" allowed when optional). */
export function checkTaskId(value: string | undefined, field: string, optional: boolean): string {
  const v = checkText(value, field, MESSAGE_LIMITS.taskIdLength);
  if (!optional && v === "") throw invalidArgument(`${field} is required`, { field });
  if (/[\r\n\t]/.test(v)) throw invalidArgument(`${field} contains control characters`, { field });
  return v;
}

/** Checks a Struct's JSON: finite numbers, nesting at most structDepth. Returns it unchanged (its size counts in the message's). */
export function checkStruct(value: JsonObject, field: string): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidArgument(`${field} must be an object`, { field });
  checkJson(value, field, 1);
  return value;
}

function checkJson(v: JsonValue, field: string, depth: number): void {
  if (v === null || typeof v === "boolean") return;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw invalidArgument(`${field} holds a number that is not finite`, { field });
    return;
  }
  if (typeof v === "string") return;
  if (depth > MESSAGE_LIMITS.structDepth) {
    throw invalidArgument(`${field} is nested more than ${MESSAGE_LIMITS.structDepth} levels deep`, { field });
  }
  if (Array.isArray(v)) {
    for (const item of v) checkJson(item, field, depth + 1);
    return;
  }
  if (typeof v !== "object") throw invalidArgument(`${field} holds a value that is not JSON`, { field });
  for (const item of Object.values(v)) checkJson(item, field, depth + 1);
}
