/**
 * Durable mailboxes on the real SQLite store: order, at-least-once delivery, resume,
 * acknowledgement, limits, durability across a reopen, slow readers, keep-alives,
 * SendAndWait, retention, and what happens when an agent goes.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { MessageInput } from "../../src/core/a2a/message.js";
import { type AgentorchError, isAgentorchError } from "../../src/core/errors.js";
import { kindOf, kindOfAsync } from "../support/errors.js";
import { cleanupWorlds, nextWithin, openWorld, register, take, update } from "./a2a-fixture.js";

afterEach(cleanupWorlds);

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("send and stream", () => {
  it("stores messages with gap-free sequences and UUIDs and streams them in order, then live ones", async () => {
    const w = await openWorld();
    await register(w, "a", "b");
    const sent = [10, 20, 30].map((p) => w.mailboxes.send(update("a", "b", p)));
    expect(sent.map((s) => s.sequence)).toEqual([1, 2, 3]);
    for (const s of sent) expect(s.messageId).toMatch(UUID_RE);
    expect(new Set(sent.map((s) => s.messageId)).size).toBe(3);

    const ac = new AbortController();
    const it = w.mailboxes.stream("b", 0, ac.signal);
    const first = await it.next();
    expect(first.value).toMatchObject({
      type: "message",
      message: {
        messageId: sent[0]!.messageId,
        fromAgentId: "a",
        toAgentId: "b",
        taskId: "t-1", // taken from the status_update's task_id
        sequence: 1,
        sentAt: w.clock.now(),
        body: { kind: "status_update", taskId: "t-1", progress: 10, message: "at 10" },
      },
    });
    expect(await take(it, 2)).toEqual([2, 3]);
    // Now live.
    const pending = it.next();
    expect(await nextWithin(pending, 50)).toBe("pending");
    w.mailboxes.send(update("a", "b", 40));
    const live = await pending;
    expect(live.value).toMatchObject({ type: "message", message: { sequence: 4, body: { progress: 40 } } });
    ac.abort();
    expect((await it.next()).done).toBe(true);
    expect(w.mailboxes.hub.count("b")).toBe(0);
  });

  it("keeps each mailbox's own sequence, and lets an agent write to itself", async () => {
    const w = await openWorld();
    await register(w, "a", "b");
    expect(w.mailboxes.send(update("a", "b", 1)).sequence).toBe(1);
    expect(w.mailboxes.send(update("b", "a", 1)).sequence).toBe(1);
    expect(w.mailboxes.send(update("a", "a", 1)).sequence).toBe(2);
    expect(w.mailboxes.send(update("a", "b", 2)).sequence).toBe(2);
  });

  it("delivers what was sent while the receiver was stopped when it next streams", async () => {
    const w = await openWorld();
    await register(w, "a", "b");
    expect(w.agents.get("b").status).toBe("idle");
    for (const p of [1, 2, 3]) w.mailboxes.send(update("a", "b", p));
    await w.agents.start("b");
    const ac = new AbortController();
    expect(await take(w.mailboxes.stream("b", 0, ac.signal), 3)).toEqual([1, 2, 3]);
    ac.abort();
  });

  it("gives every message to each of several readers of one mailbox", async () => {
    const w = await openWorld();
    await register(w, "a", "b");
    w.mailboxes.send(update("a", "b", 1));
    const ac = new AbortController();
    const r1 = w.mailboxes.stream("b", 0, ac.signal);
    const r2 = w.mailboxes.stream("b", 0, ac.signal);
    expect(await take(r1, 1)).toEqual([1]);
    expect(await take(r2, 1)).toEqual([1]);
    const n1 = r1.next();
    const n2 = r2.next();
    w.mailboxes.send(update("a", "b", 2));
    expect((await n1).value).toMatchObject({ message: { sequence: 2 } });
    expect((await n2).value).toMatchObject({ message: { sequence: 2 } });
    ac.abort();
  });

  it("sends a keep-alive on an idle stream", async () => {
    const w = await openWorld({ mailbox: { keepAliveMs: 30 } });
    await register(w, "b");
    const ac = new AbortController();
    const it = w.mailboxes.stream("b", 0, ac.signal);
    expect((await it.next()).value).toEqual({ type: "keepalive" });
    ac.abort();
  });
});

describe("acknowledgement and at-least-once delivery", () => {
  it("delivers unacknowledged messages again on the next stream, and acknowledged ones never", async () => {
    const w = await openWorld();
    await register(w, "a", "b");
    for (const p of [1, 2, 3]) w.mailboxes.send(update("a", "b", p));
    const ac1 = new AbortController();
    expect(await take(w.mailboxes.stream("b", 0, ac1.signal), 3)).toEqual([1, 2, 3]);
    ac1.abort(); // gone without acknowledging

    const ac2 = new AbortController();
    const again = w.mailboxes.stream("b", 0, ac2.signal);
    expect(await take(again, 3)).toEqual([1, 2, 3]);
    expect(w.mailboxes.ack("b", 2)).toBe(2);
    ac2.abort();

    const ac3 = new AbortController();
    const third = w.mailboxes.stream("b", 0, ac3.signal);
    expect(await take(third, 1)).toEqual([3]);
    expect(await nextWithin(third.next(), 50)).toBe("pending");
    ac3.abort();
  });

  it("resumes after a sequence, never before the acknowledged one", async () => {
    const w = await openWorld();
    await register(w, "a", "b");
    for (const p of [1, 2, 3, 4]) w.mailboxes.send(update("a", "b", p));
    const ac = new AbortController();
    expect(await take(w.mailboxes.stream("b", 2, ac.signal), 2)).toEqual([3, 4]);
    w.mailboxes.ack("b", 3);
    expect(await take(w.mailboxes.stream("b", 1, ac.signal), 1)).toEqual([4]);
    expect(kindOf(() => w.mailboxes.stream("b", 5, ac.signal))).toBe("invalid_argument");
    expect(kindOf(() => w.mailboxes.stream("b", -1, ac.signal))).toBe("invalid_argument");
    expect(kindOf(() => w.mailboxes.stream("nobody", 0, ac.signal))).toBe("not_found");
    ac.abort();
  });

  it("acks monotonically: again or lower is a no-op, beyond the newest message is INVALID_ARGUMENT", async () => {
    const w = await openWorld();
    await register(w, "a", "b");
    for (const p of [1, 2, 3]) w.mailboxes.send(update("a", "b", p));
    expect(w.mailboxes.ack("b", 2)).toBe(2);
    expect(w.mailboxes.ack("b", 2)).toBe(0);
    expect(w.mailboxes.ack("b", 1)).toBe(0);
    expect(kindOf(() => w.mailboxes.ack("b", 4))).toBe("invalid_argument");
    expect(kindOf(() => w.mailboxes.ack("b", 0))).toBe("invalid_argument");
    expect(kindOf(() => w.mailboxes.ack("nobody", 1))).toBe("not_found");
    expect(w.mailboxes.ack("b", 3)).toBe(1);
  });
});

describe("validation and limits", () => {
  it("refuses unknown agents with NOT_FOUND and malformed ids with INVALID_ARGUMENT", async () => {
    const w = await openWorld();
    await register(w, "a");
    expect(kindOf(() => w.mailboxes.send(update("a", "nobody", 1)))).toBe("not_found");
    expect(kindOf(() => w.mailboxes.send(update("nobody", "a", 1)))).toBe("not_found");
    expect(kindOf(() => w.mailboxes.send(update("a", "bad id!", 1)))).toBe("invalid_argument");
    expect(w.mailboxes.hub.count("a")).toBe(0);
  });

  it("needs exactly one valid kind", async () => {
    const w = await openWorld();
    await register(w, "a", "b");
    const env = { fromAgentId: "a", toAgentId: "b", taskId: "" };
    const bad: MessageInput[] = [
      { ...env, body: undefined },
      { ...env, body: { kind: "status_update", taskId: "t", progress: 101, message: "" } },
      { ...env, body: { kind: "status_update", taskId: "t", progress: -1, message: "" } },
      { ...env, body: { kind: "status_update", taskId: "", progress: 1, message: "" } },
      { ...env, body: { kind: "task_delegation", taskId: "t", description: "", priority: "normal" } },
      { ...env, body: { kind: "task_delegation", taskId: "t", description: "x".repeat(8193), priority: "normal" } },
      { ...env, body: { kind: "task_delegation", taskId: "t", description: "do", priority: "unknown" } },
      { ...env, taskId: "other", body: { kind: "result_sharing", taskId: "t", summary: "" } },
      { ...env, body: { kind: "handshake", agentId: "b", name: "", capabilities: [] } },
      { ...env, body: { kind: "capability_query", query: "", requiredCapabilities: ["has space"] } },
      { ...env, body: { kind: "capability_query", query: "", requiredCapabilities: Array.from({ length: 65 }, (_, i) => `c${i}`) } },
    ];
    for (const m of bad) expect(kindOf(() => w.mailboxes.send(m)), JSON.stringify(m).slice(0, 120)).toBe("invalid_argument");
    expect(w.mailboxes.send({ ...env, body: { kind: "handshake", agentId: "a", name: "A", capabilities: ["x", "x"] } }).sequence).toBe(1);
  });

  it("limits a message's size and its Struct nesting", async () => {
    const w = await openWorld({ mailbox: { maxMessageBytes: 2048 } });
    await register(w, "a", "b");
    const deleg = (payload: Record<string, never> | object): MessageInput => ({
      fromAgentId: "a",
      toAgentId: "b",
      taskId: "",
      body: { kind: "task_delegation", taskId: "t", description: "do", priority: "normal", payload: payload as never },
    });
    expect(w.mailboxes.send(deleg({ text: "x".repeat(1500) })).sequence).toBe(1);
    expect(kindOf(() => w.mailboxes.send(deleg({ text: "x".repeat(2100) })))).toBe("invalid_argument");
    const nest = (depth: number): object => (depth === 1 ? { leaf: 1 } : { n: nest(depth - 1) });
    expect(w.mailboxes.send(deleg(nest(32))).sequence).toBe(2);
    expect(kindOf(() => w.mailboxes.send(deleg(nest(33))))).toBe("invalid_argument");
    expect(kindOf(() => w.mailboxes.send(deleg({ n: Number.NaN })))).toBe("invalid_argument");
  });

  it("refuses sends to a mailbox with too many unacknowledged messages until some are acknowledged", async () => {
    const w = await openWorld({ mailbox: { maxUnackedMessages: 3 } });
    await register(w, "a", "b");
    for (const p of [1, 2, 3]) w.mailboxes.send(update("a", "b", p));
    expect(kindOf(() => w.mailboxes.send(update("a", "b", 4)))).toBe("resource_exhausted");
    expect(w.mailboxes.send(update("b", "a", 4)).sequence).toBe(1); // other mailboxes are not affected
    w.mailboxes.ack("b", 1);
    expect(w.mailboxes.send(update("a", "b", 4)).sequence).toBe(4);
  });

  it("holds each sender to its quota of a mailbox (count and bytes), naming the setting, and leaves room for the others", async () => {
    const w = await openWorld({ mailbox: { maxUnackedPerSender: 2, maxUnackedBytesPerSender: 700 } });
    await register(w, "a", "b", "c");
    const big = (from: string, n: number): MessageInput => ({ ...update(from, "b", 1), body: { kind: "status_update", taskId: "t", progress: 1, message: "y".repeat(n) } });
    w.mailboxes.send(update("a", "b", 1));
    w.mailboxes.send(update("a", "b", 2));
    const refusal = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err as AgentorchError;
      }
      throw new Error("not refused");
    };
    const count = refusal(() => w.mailboxes.send(update("a", "b", 3)));
    expect([count.kind, count.details]).toEqual([
      "resource_exhausted",
      { agentId: "b", reason: "MAILBOX_SENDER_QUOTA", limit: { setting: "AGENTORCH_MAILBOX_MAX_PER_SENDER", value: 2 } },
    ]);
    expect(count.message).toContain('sender "a"');
    // Another sender still gets in, up to its own quota in bytes.
    w.mailboxes.send(big("c", 300));
    const bytes = refusal(() => w.mailboxes.send(big("c", 500)));
    expect(bytes.details.limit).toEqual({ setting: "AGENTORCH_MAILBOX_MAX_BYTES_PER_SENDER", value: 700 });
    expect(w.mailboxes.send(update("c", "b", 1)).sequence).toBe(4);
    // Acknowledging gives the quota back.
    w.mailboxes.ack("b", 2);
    expect(w.mailboxes.send(update("a", "b", 3)).sequence).toBe(5);
  });

  it("refuses sends to a mailbox whose unacknowledged messages take too many bytes", async () => {
    const w = await openWorld({ mailbox: { maxUnackedBytes: 1000 } });
    await register(w, "a", "b");
    const big = (n: number): MessageInput => ({ ...update("a", "b", 1), body: { kind: "status_update", taskId: "t", progress: 1, message: "y".repeat(n) } });
    w.mailboxes.send(big(300));
    w.mailboxes.send(big(300));
    expect(kindOf(() => w.mailboxes.send(big(300)))).toBe("resource_exhausted");
    w.mailboxes.ack("b", 2);
    expect(w.mailboxes.send(big(300)).sequence).toBe(3);
  });
});

describe("durability", () => {
  it("keeps the mailbox across a close and reopen: the stream starts at the first unacknowledged message", async () => {
    const w1 = await openWorld();
    await register(w1, "a", "b");
    const ids = [1, 2, 3].map((p) => w1.mailboxes.send(update("a", "b", p)).messageId);
    w1.mailboxes.ack("b", 1);
    await w1.close();

    const w2 = await openWorld({ dir: w1.dir });
    const ac = new AbortController();
    const it = w2.mailboxes.stream("b", 0, ac.signal);
    const got = [(await it.next()).value, (await it.next()).value];
    expect(got).toMatchObject([
      { message: { sequence: 2, messageId: ids[1], body: { progress: 2 } } },
      { message: { sequence: 3, messageId: ids[2], body: { progress: 3 } } },
    ]);
    expect(w2.mailboxes.send(update("a", "b", 4)).sequence).toBe(4);
    expect(await take(it, 1)).toEqual([4]);
    ac.abort();
  });
});

describe("slow readers", () => {
  it("cuts off a live reader that falls too far behind with RESOURCE_EXHAUSTED; nothing is lost", async () => {
    const w = await openWorld({ mailbox: { streamBufferMessages: 5 } });
    await register(w, "a", "b");
    const ac = new AbortController();
    const slow = w.mailboxes.stream("b", 0, ac.signal);
    const first = slow.next(); // caught up: live
    w.mailboxes.send(update("a", "b", 1));
    expect((await first).value).toMatchObject({ message: { sequence: 1 } });
    for (let p = 2; p <= 10; p++) w.mailboxes.send(update("a", "b", p)); // the reader does not pull
    await expect(slow.next()).rejects.toSatisfy((e) => isAgentorchError(e, "resource_exhausted"));
    expect(w.mailboxes.hub.count("b")).toBe(0);
    // Streaming again delivers everything not acknowledged, in order.
    expect(await take(w.mailboxes.stream("b", 0, ac.signal), 10)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    ac.abort();
  });

  it("does not cut off a reader replaying a backlog larger than its buffer", async () => {
    const w = await openWorld({ mailbox: { streamBufferMessages: 5 } });
    await register(w, "a", "b");
    for (let p = 1; p <= 250; p++) w.mailboxes.send(update("a", "b", p % 100));
    const ac = new AbortController();
    const it = w.mailboxes.stream("b", 0, ac.signal);
    const seqs = await take(it, 120);
    for (let p = 1; p <= 20; p++) w.mailboxes.send(update("a", "b", p)); // arrive mid-replay, more than the buffer holds
    seqs.push(...(await take(it, 150)));
    expect(seqs).toEqual(Array.from({ length: 270 }, (_, i) => i + 1));
    ac.abort();
  });
});

describe("SendAndWait", () => {
  const delegation = (taskId: string): MessageInput => ({
    fromAgentId: "a",
    toAgentId: "b",
    taskId: "",
    body: { kind: "task_delegation", taskId, description: "sum these", payload: { xs: [1, 2] }, priority: "high" },
  });
  const result = (taskId: string, from = "b"): MessageInput => ({
    fromAgentId: from,
    toAgentId: "a",
    taskId: "",
    body: { kind: "result_sharing", taskId, result: { sum: 3 }, summary: "done" },
  });

  it("returns the receiver's result_sharing reply with the same task_id; the reply stays in the sender's mailbox", async () => {
    const w = await openWorld();
    await register(w, "a", "b", "c");
    const ac = new AbortController();
    // The receiver: reads its mailbox and answers the delegation (after an unrelated reply first).
    const worker = (async () => {
      const it = w.mailboxes.stream("b", 0, ac.signal);
      const item = await it.next();
      if (item.value?.type !== "message" || item.value.message.body.kind !== "task_delegation") throw new Error("no delegation");
      w.mailboxes.send(result("other-task"));
      w.mailboxes.send(result("job-1", "c")); // right task, wrong sender
      w.mailboxes.send(result(item.value.message.body.taskId));
    })();
    const r = await w.mailboxes.sendAndWait(delegation("job-1"), 5000);
    await worker;
    expect(r.sequence).toBe(1);
    expect(r.reply).toMatchObject({ fromAgentId: "b", toAgentId: "a", taskId: "job-1", sequence: 3, body: { kind: "result_sharing", result: { sum: 3 } } });
    expect(await take(w.mailboxes.stream("a", 0, ac.signal), 3)).toEqual([1, 2, 3]);
    ac.abort();
  });

  it("is DEADLINE_EXCEEDED when no reply comes in time; the delegation stays sent", async () => {
    const w = await openWorld();
    await register(w, "a", "b");
    const err = await w.mailboxes.sendAndWait(delegation("job-2"), 100).catch((e: unknown) => e);
    expect(isAgentorchError(err, "deadline_exceeded")).toBe(true);
    const ac = new AbortController();
    const it = w.mailboxes.stream("b", 0, ac.signal);
    expect((await it.next()).value).toMatchObject({ message: { body: { kind: "task_delegation", taskId: "job-2" } } });
    ac.abort();
    expect(w.mailboxes.hub.count("a")).toBe(0);
  });

  it("sends only task_delegations, checks its timeout, and ends when the caller gives up", async () => {
    const w = await openWorld();
    await register(w, "a", "b");
    expect(await kindOfAsync(w.mailboxes.sendAndWait(update("a", "b", 1), 100))).toBe("invalid_argument");
    expect(await kindOfAsync(w.mailboxes.sendAndWait(delegation("j"), 11 * 60_000))).toBe("invalid_argument");
    expect(await kindOfAsync(w.mailboxes.sendAndWait({ ...delegation("j"), toAgentId: "zz" }, 100))).toBe("not_found");
    const ac = new AbortController();
    const p = w.mailboxes.sendAndWait(delegation("job-3"), 60_000, ac.signal);
    ac.abort(new Error("client went away"));
    await expect(p).rejects.toThrow("client went away");
  });
});

describe("retention and removal", () => {
  const count = (w: { store: { db: { prepare(sql: string): { pluck(): { get(...a: unknown[]): unknown } } } } }, agentId: string) =>
    Number(w.store.db.prepare("SELECT COUNT(*) FROM messages WHERE agent_id = ?").pluck().get(agentId));

  it("prunes acknowledged messages after the retention time, never unacknowledged ones, and never reuses sequences", async () => {
    const w = await openWorld({ mailbox: { ackedRetentionMs: 3600_000 } });
    await register(w, "a", "b");
    for (const p of [1, 2, 3, 4]) w.mailboxes.send(update("a", "b", p));
    w.mailboxes.ack("b", 2);
    expect(w.mailboxes.prune()).toBe(0);
    w.clock.advance(3600_001);
    expect(w.mailboxes.prune()).toBe(2);
    expect(count(w, "b")).toBe(2);
    w.clock.advance(10 * 3600_000);
    expect(w.mailboxes.prune()).toBe(0); // 3 and 4 are not acknowledged
    expect(w.mailboxes.send(update("a", "b", 5)).sequence).toBe(5);
    const ac = new AbortController();
    expect(await take(w.mailboxes.stream("b", 0, ac.signal), 3)).toEqual([3, 4, 5]);
    ac.abort();
  });

  it("keeps at most the newest N acknowledged messages per mailbox", async () => {
    const w = await openWorld({ mailbox: { ackedRetentionCount: 2 } });
    await register(w, "a", "b");
    for (let p = 1; p <= 6; p++) w.mailboxes.send(update("a", "b", p));
    w.mailboxes.ack("b", 5);
    expect(w.mailboxes.prune()).toBe(3);
    expect(w.store.db.prepare("SELECT seq FROM messages WHERE agent_id = 'b' ORDER BY seq").pluck().all()).toEqual([4, 5, 6]);
  });

  it("deletes an agent's mailbox with the agent and ends its open streams with NOT_FOUND", async () => {
    const w = await openWorld();
    await register(w, "a", "b");
    for (const p of [1, 2]) w.mailboxes.send(update("a", "b", p));
    const ac = new AbortController();
    const it = w.mailboxes.stream("b", 0, ac.signal);
    expect(await take(it, 2)).toEqual([1, 2]);
    const pending = it.next();
    await w.agents.remove("b", { deleteWorkspace: true });
    await expect(pending).rejects.toSatisfy((e) => isAgentorchError(e, "not_found"));
    expect(count(w, "b")).toBe(0);
    expect(kindOf(() => w.mailboxes.send(update("a", "b", 3)))).toBe("not_found");
    await register(w, "b");
    expect(w.mailboxes.send(update("a", "b", 3)).sequence).toBe(1); // a new mailbox
  });

  it("deletes at start-up the mailbox of an agent removed while nobody followed", async () => {
    const w1 = await openWorld();
    await register(w1, "a", "b");
    w1.mailboxes.send(update("a", "b", 1));
    w1.mailboxes.close(); // no longer following agent removals
    await w1.agents.remove("b", { deleteWorkspace: true });
    expect(count(w1, "b")).toBe(1);
    await w1.close();
    const w2 = await openWorld({ dir: w1.dir });
    expect(count(w2, "b")).toBe(0);
  });

  it("ends streams and refuses sends once closed", async () => {
    const w = await openWorld();
    await register(w, "a", "b");
    const ac = new AbortController();
    const it = w.mailboxes.stream("b", 0, ac.signal);
    const pending = it.next();
    w.mailboxes.close();
    await expect(pending).rejects.toSatisfy((e) => isAgentorchError(e, "unavailable"));
    expect(kindOf(() => w.mailboxes.send(update("a", "b", 1)))).toBe("unavailable");
  });
});

describe("throughput (printed, never asserted)", () => {
  it("prints SendMessage -> live stream delivery rates on the SQLite file store", async () => {
    const w = await openWorld({ mailbox: { streamBufferMessages: 10_000, maxUnackedPerSender: 10_000 } });
    await register(w, "a", "b");
    const ac = new AbortController();
    const it = w.mailboxes.stream("b", 0, ac.signal);
    const received: number[] = [];
    const sentAt = new Map<number, number>();
    let want = 0;
    let done: (() => void) | undefined;
    const consumer = (async () => {
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        if (r.value.type !== "message") continue;
        const s = r.value.message.sequence;
        received[s] = performance.now() - sentAt.get(s)!;
        if (s === want) done?.();
      }
    })();

    // Burst: 5,000 sends as fast as the loop goes, yielding to the consumer every 50 (as separate RPCs would).
    const n = 5000;
    want = n;
    const finished = new Promise<void>((r) => (done = r));
    const t0 = performance.now();
    let sendMs = 0;
    for (let i = 1; i <= n; i++) {
      const s0 = performance.now();
      const { sequence } = w.mailboxes.send(update("a", "b", i % 100));
      sendMs += performance.now() - s0;
      sentAt.set(sequence, s0);
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await finished;
    const burstMs = performance.now() - t0;

    // Paced: 2,000 messages at about 1,000/s; latency from send to delivery.
    const paced = 2000;
    want = n + paced;
    const pacedDone = new Promise<void>((r) => (done = r));
    const start = performance.now();
    for (let i = 1; i <= paced; i++) {
      const due = start + i;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const s0 = performance.now();
      const { sequence } = w.mailboxes.send(update("a", "b", i % 100));
      sentAt.set(sequence, s0);
    }
    await pacedDone;
    ac.abort();
    await consumer;
    const lat = received.slice(n + 1, n + paced + 1).sort((x, y) => x - y);
    const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]!.toFixed(2);
    console.log(
      `[a2a throughput] burst: ${n} messages sent and delivered in ${burstMs.toFixed(0)} ms = ${Math.round((n / burstMs) * 1000)} msg/s ` +
        `(send call mean ${((sendMs / n) * 1000).toFixed(0)} µs); paced ~1000/s: latency p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${pct(1)} ms`,
    );
    expect(received.filter((x) => x !== undefined)).toHaveLength(n + paced);
  });
});
