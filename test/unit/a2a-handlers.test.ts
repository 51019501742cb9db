/**
 * The A2A RPCs in memory: a Connect client over createRouterTransport, the handlers over
 * the real card and mailbox services on SQLite. What is checked is what a client sees:
 * proto fields (oneof kinds, Structs, int64 sequences, timestamps, keep-alives) and codes.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { A2AMessageSchema } from "../../gen/agentorch/v1/a2a_pb.js";
import { AgentStatus } from "../../gen/agentorch/v1/agent_pb.js";
import { LifecycleService } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { TaskPriority } from "../../gen/agentorch/v1/task_pb.js";
import { createA2AHandlers } from "../../src/api/a2a-handlers.js";
import type { MailboxConfig } from "../../src/core/a2a/mailbox-service.js";
import { createTestLogger } from "../fakes/clock-and-logger.js";
import { cleanupWorlds, openWorld, register } from "./a2a-fixture.js";

afterEach(cleanupWorlds);

async function setup(mailbox: Partial<MailboxConfig> = {}) {
  const w = await openWorld({ mailbox });
  await register(w, "a", "b");
  const handlers = createA2AHandlers({ cards: w.cards, mailboxes: w.mailboxes, logger: createTestLogger() });
  const client = createClient(LifecycleService, createRouterTransport((router) => router.service(LifecycleService, handlers)));
  return { w, client };
}

async function codeOf(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

const delegation = (taskId: string) =>
  create(A2AMessageSchema, {
    fromAgentId: "a",
    toAgentId: "b",
    kind: {
      case: "taskDelegation",
      value: { taskId, description: "sum", payload: { xs: [1, 2], opts: { deep: { ok: true } }, none: null }, priority: TaskPriority.HIGH },
    },
  });

describe("cards over the API", () => {
  it("publishes, gets and lists cards with the agent's status", async () => {
    const { client, w } = await setup();
    const published = await client.publishAgentCard({
      card: { agentId: "a", capabilities: ["testing"], skills: [{ id: "py", tags: ["python"] }], status: AgentStatus.FAILED },
    });
    expect(published.card).toMatchObject({ agentId: "a", name: "agent a", capabilities: ["testing"], status: AgentStatus.IDLE });
    expect(timestampMs(published.card!.updatedAt!)).toBe(w.clock.now());
    const got = await client.getAgentCard({ agentId: "a" });
    expect(got.card?.skills).toMatchObject([{ id: "py", tags: ["python"] }]);
    expect((await client.listAgentCards({ skill: "python" })).cards.map((c) => c.agentId)).toEqual(["a"]);
    expect(await codeOf(client.getAgentCard({ agentId: "b" }))).toBe(Code.NotFound);
    expect(await codeOf(client.publishAgentCard({ card: { agentId: "zz" } }))).toBe(Code.NotFound);
    expect(await codeOf(client.publishAgentCard({}))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.listAgentCards({ pageSize: -1 }))).toBe(Code.InvalidArgument);
  });
});

describe("messages over the API", () => {
  it("sends, streams (with Structs and ids intact) and acknowledges", async () => {
    const { client } = await setup();
    const sent = await client.sendMessage({ message: delegation("job-1") });
    expect(sent.sequence).toBe(1n);
    const ac = new AbortController();
    const stream = client.streamMessages({ agentId: "b" }, { signal: ac.signal })[Symbol.asyncIterator]();
    const first = (await stream.next()).value!;
    expect(first.message).toMatchObject({
      messageId: sent.messageId,
      fromAgentId: "a",
      toAgentId: "b",
      taskId: "job-1",
      sequence: 1n,
      kind: {
        case: "taskDelegation",
        value: { taskId: "job-1", description: "sum", payload: { xs: [1, 2], opts: { deep: { ok: true } }, none: null }, priority: TaskPriority.HIGH },
      },
    });
    expect(first.message?.sentAt).toBeDefined();
    ac.abort();
    expect((await client.ackMessages({ agentId: "b", upToSequence: 1n })).acknowledgedCount).toBe(1n);
    expect((await client.ackMessages({ agentId: "b", upToSequence: 1n })).acknowledgedCount).toBe(0n);
    expect(await codeOf(client.ackMessages({ agentId: "b", upToSequence: 2n }))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.ackMessages({ agentId: "b", upToSequence: -1n }))).toBe(Code.InvalidArgument);
  });

  it("maps each kind both ways", async () => {
    const { client } = await setup();
    const kinds: NonNullable<MessageInitShape<typeof A2AMessageSchema>["kind"]>[] = [
      { case: "statusUpdate", value: { taskId: "t", progress: 50, message: "half" } },
      { case: "resultSharing", value: { taskId: "t", result: { ok: 1 }, summary: "done" } },
      { case: "capabilityQuery", value: { query: "can you?", requiredCapabilities: ["testing"] } },
      { case: "handshake", value: { agentId: "a", name: "A", capabilities: ["x"] } },
    ];
    for (const kind of kinds) await client.sendMessage({ message: { fromAgentId: "a", toAgentId: "b", kind } });
    const ac = new AbortController();
    const got = [];
    for await (const r of client.streamMessages({ agentId: "b" }, { signal: ac.signal })) {
      got.push(r.message?.kind);
      if (got.length === kinds.length) break;
    }
    ac.abort();
    expect(got).toMatchObject(kinds);
  });

  it("sends keep-alives as responses without a message", async () => {
    const { client } = await setup({ keepAliveMs: 20 });
    const ac = new AbortController();
    const stream = client.streamMessages({ agentId: "b" }, { signal: ac.signal })[Symbol.asyncIterator]();
    const r = await stream.next();
    expect(r.done).toBe(false);
    expect(r.value?.message).toBeUndefined();
    ac.abort();
  });

  it("answers the documented codes", async () => {
    const { client } = await setup({ maxUnackedMessages: 1 });
    expect(await codeOf(client.sendMessage({ message: { fromAgentId: "a", toAgentId: "b" } }))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.sendMessage({}))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.sendMessage({ message: { ...delegation("j"), toAgentId: "nobody" } }))).toBe(Code.NotFound);
    const unknownPriority = { fromAgentId: "a", toAgentId: "b", kind: { case: "taskDelegation", value: { taskId: "j", description: "d", priority: 99 as TaskPriority } } } as const;
    expect(await codeOf(client.sendMessage({ message: unknownPriority }))).toBe(Code.InvalidArgument);
    expect(await codeOf(client.sendMessage({ message: delegation("j") }))).toBe("ok");
    expect(await codeOf(client.sendMessage({ message: delegation("j") }))).toBe(Code.ResourceExhausted);
    const streamCode = async (req: { agentId: string; resumeAfterSequence?: bigint }) => {
      try {
        for await (const r of client.streamMessages(req)) return r;
        return "ok";
      } catch (err) {
        return ConnectError.from(err).code;
      }
    };
    expect(await streamCode({ agentId: "nobody" })).toBe(Code.NotFound);
    expect(await streamCode({ agentId: "b", resumeAfterSequence: -1n })).toBe(Code.InvalidArgument);
    expect(await streamCode({ agentId: "b", resumeAfterSequence: 9n })).toBe(Code.InvalidArgument);
  });

  it("SendAndWait returns the reply, and answers DEADLINE_EXCEEDED when none comes", async () => {
    const { client, w } = await setup();
    const ac = new AbortController();
    const worker = (async () => {
      for await (const r of client.streamMessages({ agentId: "b" }, { signal: ac.signal })) {
        if (r.message?.kind.case !== "taskDelegation") continue;
        const taskId = r.message.kind.value.taskId;
        await client.sendMessage({ message: { fromAgentId: "b", toAgentId: "a", kind: { case: "resultSharing", value: { taskId, result: { sum: 3 } } } } });
        return;
      }
    })();
    const res = await client.sendAndWait({ message: delegation("job-9"), timeout: durationFromMs(5000) });
    await worker;
    ac.abort();
    expect(res.sequence).toBe(1n);
    expect(res.reply).toMatchObject({ fromAgentId: "b", toAgentId: "a", taskId: "job-9", kind: { case: "resultSharing", value: { result: { sum: 3 } } } });

    expect(await codeOf(client.sendAndWait({ message: delegation("job-10"), timeout: durationFromMs(50) }))).toBe(Code.DeadlineExceeded);
    expect(await codeOf(client.sendAndWait({ message: delegation("job-11") }, { timeoutMs: 50 }))).toBe(Code.DeadlineExceeded);
    expect(await codeOf(client.sendAndWait({ message: delegation("job-12"), timeout: { seconds: -1n, nanos: 0 } }))).toBe(Code.InvalidArgument);
    expect(w.mailboxes.hub.count("a")).toBe(0);
  });
});
