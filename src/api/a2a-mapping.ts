/**
 * Proto <-> domain mapping for A2A cards and messages. Only shape and number conversions
 * happen here (oneof -> tagged union, int64, Timestamp, enums); every rule about what a
 * valid card or message is stays in the core (src/core/a2a/card.ts, message.ts).
 * Struct fields arrive from protobuf-es as plain JSON objects and go to the core as they are.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type A2AMessage as A2AMessageProto,
  A2AMessageSchema,
  type AgentCard as AgentCardProto,
  AgentCardSchema,
  CapabilityQuerySchema,
  HandshakeSchema,
  ResultSharingSchema,
  SkillSchema,
  StatusUpdateSchema,
  TaskDelegationSchema,
} from "../../gen/agentorch/v1/a2a_pb.js";
import type { AgentCard, CardInput } from "../core/a2a/card.js";
import type { MessageBody, MessageInput, StoredMessage } from "../core/a2a/message.js";
import { invalidArgument } from "../core/errors.js";
import { agentStatusToProto, taskPriorityFromProto, taskPriorityToProto } from "./enums.js";

/** The core's input from a PublishAgentCard request's card (status and updated_at ignored). */
export function cardFromProto(card: AgentCardProto | undefined): CardInput | undefined {
  if (card === undefined) return undefined;
  return {
    agentId: card.agentId,
    name: card.name,
    description: card.description,
    capabilities: [...card.capabilities],
    skills: card.skills.map((s) => ({ id: s.id, name: s.name, description: s.description, tags: [...s.tags] })),
  };
}

export function cardToProto(card: AgentCard): AgentCardProto {
  return create(AgentCardSchema, {
    agentId: card.agentId,
    name: card.name,
    description: card.description,
    capabilities: card.capabilities,
    skills: card.skills.map((s) => create(SkillSchema, s)),
    status: agentStatusToProto(card.status),
    updatedAt: timestampFromMs(card.updatedAt),
  });
}

/** The core's input from a message as sent (message_id, sequence and sent_at ignored). */
export function messageFromProto(m: A2AMessageProto | undefined): MessageInput | undefined {
  if (m === undefined) return undefined;
  const envelope = { fromAgentId: m.fromAgentId, toAgentId: m.toAgentId, taskId: m.taskId };
  const k = m.kind;
  switch (k.case) {
    case "taskDelegation":
      return {
        ...envelope,
        body: {
          kind: "task_delegation",
          taskId: k.value.taskId,
          description: k.value.description,
          payload: k.value.payload,
          priority: taskPriorityFromProto(k.value.priority, "message.task_delegation.priority"),
        },
      };
    case "statusUpdate":
      return { ...envelope, body: { kind: "status_update", taskId: k.value.taskId, progress: k.value.progress, message: k.value.message } };
    case "resultSharing":
      return { ...envelope, body: { kind: "result_sharing", taskId: k.value.taskId, result: k.value.result, summary: k.value.summary } };
    case "capabilityQuery":
      return {
        ...envelope,
        body: { kind: "capability_query", query: k.value.query, requiredCapabilities: [...k.value.requiredCapabilities] },
      };
    case "handshake":
      return { ...envelope, body: { kind: "handshake", agentId: k.value.agentId, name: k.value.name, capabilities: [...k.value.capabilities] } };
    case undefined:
      return { ...envelope, body: undefined };
    default:
      throw invalidArgument("message has an unknown kind", { field: "message.kind" });
  }
}

/** A stored message as clients receive it. */
export function messageToProto(m: StoredMessage): A2AMessageProto {
  return create(A2AMessageSchema, {
    messageId: m.messageId,
    fromAgentId: m.fromAgentId,
    toAgentId: m.toAgentId,
    taskId: m.taskId,
    sequence: BigInt(m.sequence),
    sentAt: timestampFromMs(m.sentAt),
    kind: kindToProto(m.body),
  });
}

function kindToProto(b: MessageBody): A2AMessageProto["kind"] {
  switch (b.kind) {
    case "task_delegation":
      return {
        case: "taskDelegation",
        value: create(TaskDelegationSchema, { taskId: b.taskId, description: b.description, payload: b.payload, priority: taskPriorityToProto(b.priority) }),
      };
    case "status_update":
      return { case: "statusUpdate", value: create(StatusUpdateSchema, { taskId: b.taskId, progress: b.progress, message: b.message }) };
    case "result_sharing":
      return { case: "resultSharing", value: create(ResultSharingSchema, { taskId: b.taskId, result: b.result, summary: b.summary }) };
    case "capability_query":
      return { case: "capabilityQuery", value: create(CapabilityQuerySchema, { query: b.query, requiredCapabilities: b.requiredCapabilities }) };
    case "handshake":
      return { case: "handshake", value: create(HandshakeSchema, { agentId: b.agentId, name: b.name, capabilities: b.capabilities }) };
  }
}
