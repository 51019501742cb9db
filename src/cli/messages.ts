/**
 * `agentorch messages …`: send an A2A message from one agent to another, and tail an
 * agent's mailbox (pending messages first, then live ones) (LifecycleService).
 */
import { create } from "@bufbuild/protobuf";
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import {
  A2AMessageSchema,
  CapabilityQuerySchema,
  HandshakeSchema,
  ResultSharingSchema,
  StatusUpdateSchema,
  TaskDelegationSchema,
} from "../../gen/agentorch/v1/a2a_pb.js";
import type { A2AMessage } from "../../gen/agentorch/v1/a2a_pb.js";
import { AckMessagesResponseSchema, SendMessageResponseSchema } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { TaskPriority } from "../../gen/agentorch/v1/task_pb.js";
import { contextOf } from "./context.js";
import { resolveAgentId } from "./resolve.js";
import { usageError } from "./errors.js";
import { colors, printJson, printJsonLine, truncate } from "./output.js";
import { collect, parseCount, parseEnum } from "./parse.js";

interface SendOptions {
  taskId?: string;
  payload?: string;
  priority?: string;
  progress?: string;
  capability?: string[];
  name?: string;
}

const KINDS = ["delegate", "status", "result", "query", "handshake"] as const;

function parseStruct(flag: string, text: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw usageError(`${flag}: expected a JSON object: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw usageError(`${flag}: expected a JSON object such as {"k": 1}`);
  return value as JsonObject;
}

/** Builds the A2A message of `messages send`. */
export function messageFrom(from: string, to: string, kind: string, text: string | undefined, o: SendOptions): A2AMessage {
  const msg = create(A2AMessageSchema, { fromAgentId: from, toAgentId: to, taskId: o.taskId ?? "" });
  const taskId = o.taskId ?? "";
  switch (kind) {
    case "delegate":
    case "task_delegation":
      msg.kind = {
        case: "taskDelegation",
        value: create(TaskDelegationSchema, {
          taskId,
          description: text ?? "",
          payload: o.payload === undefined ? undefined : parseStruct("--payload", o.payload),
          priority: o.priority === undefined ? TaskPriority.UNSPECIFIED : parseEnum("--priority", TaskPriority, o.priority),
        }),
      };
      break;
    case "status":
    case "status_update":
      msg.kind = {
        case: "statusUpdate",
        value: create(StatusUpdateSchema, { taskId, message: text ?? "", progress: o.progress === undefined ? 0 : parseCount("--progress", o.progress) }),
      };
      break;
    case "result":
    case "result_sharing":
      msg.kind = {
        case: "resultSharing",
        value: create(ResultSharingSchema, { taskId, summary: text ?? "", result: o.payload === undefined ? undefined : parseStruct("--payload", o.payload) }),
      };
      break;
    case "query":
    case "capability_query":
      msg.kind = { case: "capabilityQuery", value: create(CapabilityQuerySchema, { query: text ?? "", requiredCapabilities: o.capability ?? [] }) };
      break;
    case "handshake":
      msg.kind = { case: "handshake", value: create(HandshakeSchema, { agentId: from, name: o.name ?? text ?? "", capabilities: o.capability ?? [] }) };
      break;
    default:
      throw usageError(`messages send: unknown kind "${kind}": expected one of ${KINDS.join(", ")}`);
  }
  return msg;
}

/** "#4  15:04:05  a -> b  status_update  task T  50%: text" */
function messageLine(m: A2AMessage): string {
  const time = m.sentAt ? timestampDate(m.sentAt).toTimeString().slice(0, 8) : "--:--:--";
  const task = m.taskId ? `  task ${m.taskId}` : "";
  let kind: string = m.kind.case ?? "unknown";
  let body = "";
  switch (m.kind.case) {
    case "taskDelegation":
      kind = "task_delegation";
      body = m.kind.value.description + (m.kind.value.payload ? ` ${JSON.stringify(m.kind.value.payload)}` : "");
      break;
    case "statusUpdate":
      kind = "status_update";
      body = `${m.kind.value.progress}%${m.kind.value.message ? `: ${m.kind.value.message}` : ""}`;
      break;
    case "resultSharing":
      kind = "result_sharing";
      body = m.kind.value.summary + (m.kind.value.result ? ` ${JSON.stringify(m.kind.value.result)}` : "");
      break;
    case "capabilityQuery":
      kind = "capability_query";
      body = m.kind.value.query + (m.kind.value.requiredCapabilities.length ? ` [${m.kind.value.requiredCapabilities.join(", ")}]` : "");
      break;
    case "handshake":
      body = `${m.kind.value.name}${m.kind.value.capabilities.length ? ` [${m.kind.value.capabilities.join(", ")}]` : ""}`;
      break;
  }
  return `${colors.bold(`#${m.sequence}`)}  ${colors.dim(time)}  ${m.fromAgentId} -> ${m.toAgentId}  ${colors.cyan(kind)}${task}  ${truncate(body, 200)}`;
}

/** Adds `messages` and its subcommands to the root. */
export function addMessagesCommands(root: Command): void {
  const messages = root.command("messages").alias("msg").description("A2A messages between agents, through durable mailboxes");

  messages
    .command("send")
    .description("send a message from one agent to another (stored before this returns)")
    .argument("<from>", "the sending agent's id")
    .argument("<to>", "the receiving agent's id")
    .argument("<kind>", `one of ${KINDS.join(", ")}`)
    .argument("[text]", "delegate: the description; status: the message; result: the summary; query: the query; handshake: the name")
    .option("--task-id <id>", "correlates the message with a task")
    .option("--payload <json>", "delegate: the payload; result: the result (a JSON object)")
    .option("--priority <priority>", "delegate: low, normal, high or critical")
    .option("--progress <percent>", "status: progress 0-100")
    .option("--capability <name>", "query: a required capability; handshake: a capability offered (repeatable)", collect)
    .option("--name <name>", "handshake: the sender's name")
    .addHelpText(
      "after",
      `
Examples:
  agentorch messages send planner coder delegate "write the tests" --task-id t1 --payload '{"files":["a.ts"]}'
  agentorch messages send coder planner status "halfway" --task-id t1 --progress 50`,
    )
    .action(async (from: string, to: string, kind: string, text: string | undefined, o: SendOptions, cmd: Command) => {
      const message = messageFrom(from, to, kind.toLowerCase(), text, o);
      const ctx = contextOf(cmd);
      message.fromAgentId = await resolveAgentId(ctx, from);
      message.toAgentId = await resolveAgentId(ctx, to);
      const res = await ctx.clients.lifecycle.sendMessage({ message }, ctx.unary);
      if (ctx.json) return printJson(SendMessageResponseSchema, res);
      process.stdout.write(`sent message ${res.messageId} to ${message.toAgentId} (sequence ${res.sequence})\n`);
    });

  messages
    .command("tail")
    .description("print an agent's mailbox: unacknowledged messages first, then live ones, until Ctrl-C")
    .argument("<agent-id>", "the mailbox's agent (or a unique prefix of its id)")
    .option("--after <sequence>", "only messages after this sequence")
    .option("--ack", "acknowledge each message once printed (it is then not delivered again)")
    .addHelpText("after", "\nWith -o json: one A2AMessage per line.")
    .action(async (text: string, o: { after?: string; ack?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const agentId = await resolveAgentId(ctx, text);
      const after = o.after === undefined ? 0n : BigInt(parseCount("--after", o.after));
      let count = 0;
      ctx.status.set(() => `mailbox of ${agentId}: ${count} message${count === 1 ? "" : "s"} · Ctrl-C to stop`);
      for await (const { message } of ctx.clients.lifecycle.streamMessages({ agentId, resumeAfterSequence: after })) {
        if (!message) continue; // keep-alive
        count++;
        if (ctx.json) printJsonLine(A2AMessageSchema, message);
        else ctx.status.log(messageLine(message));
        if (o.ack) await ctx.clients.lifecycle.ackMessages({ agentId, upToSequence: message.sequence }, ctx.unary);
      }
      ctx.status.clear();
    });

  messages
    .command("ack")
    .description("acknowledge an agent's messages up to a sequence: they are handled and not delivered again")
    .argument("<agent-id>", "the mailbox's agent (or a unique prefix of its id)")
    .argument("<sequence>", "the last message handled (the #N that messages tail prints)")
    .addHelpText("after", "\nAcknowledging again, or a lower sequence, changes nothing (exit 0); a sequence beyond the last message is refused (exit 2).")
    .action(async (text: string, sequence: string, _o: unknown, cmd: Command) => {
      const upToSequence = BigInt(parseCount("<sequence>", sequence.replace(/^#/, "")));
      const ctx = contextOf(cmd);
      const agentId = await resolveAgentId(ctx, text);
      const res = await ctx.clients.lifecycle.ackMessages({ agentId, upToSequence }, ctx.unary);
      if (ctx.json) return printJson(AckMessagesResponseSchema, res);
      const n = res.acknowledgedCount;
      process.stdout.write(`acknowledged ${n} message${n === 1n ? "" : "s"} of ${agentId} (up to #${upToSequence})\n`);
    });
}
