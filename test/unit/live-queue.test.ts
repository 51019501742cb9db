/**
 * The live-stream engine under agent watches, task watches and mailbox streams:
 * order, wake-up of a waiting consumer, heartbeats on idle, the cut-off of a consumer
 * too far behind (by count and by bytes), fail, and abort.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { LiveQueue, type LiveQueueOptions } from "../../src/core/live-queue.js";
import { take } from "../support/streams.js";

afterEach(() => {
  vi.useRealTimers();
});

function queue(opts: Partial<LiveQueueOptions<number>> = {}) {
  const abort = new AbortController();
  const q = new LiveQueue<number>({
    maxItems: 100,
    heartbeatMs: 0,
    signal: abort.signal,
    overflowError: () => new Error("cut off"),
    ...opts,
  });
  return { q, abort };
}


const items = (...n: number[]) => n.map((item) => ({ type: "item", item }));

describe("LiveQueue", () => {
  it("delivers queued items in order, then live ones, skipping those accept() refuses", async () => {
    const { q, abort } = queue();
    for (let i = 1; i <= 5; i++) q.push(i);
    const drain = q.drain((n) => n !== 3);
    expect(await take(drain, 4)).toEqual(items(1, 2, 4, 5));
    q.push(6);
    q.push(7);
    expect(await take(drain, 2)).toEqual(items(6, 7));
    abort.abort();
    expect((await drain.next()).done).toBe(true);
    q.close();
  });

  it("wakes a consumer waiting on an empty queue as soon as an item comes", async () => {
    const { q, abort } = queue();
    const drain = q.drain();
    const next = drain.next();
    await new Promise((r) => setTimeout(r, 10));
    q.push(42);
    expect((await next).value).toEqual({ type: "item", item: 42 });
    abort.abort();
    q.close();
  });

  it("sends a heartbeat after heartbeatMs without an item, and none while items flow", async () => {
    vi.useFakeTimers();
    const { q, abort } = queue({ heartbeatMs: 1000 });
    const drain = q.drain();
    const first = drain.next();
    await vi.advanceTimersByTimeAsync(999);
    q.push(1);
    expect((await first).value, "an item, not a heartbeat").toEqual({ type: "item", item: 1 });
    const second = drain.next();
    await vi.advanceTimersByTimeAsync(1000);
    expect((await second).value).toEqual({ type: "heartbeat" });
    const third = drain.next();
    await vi.advanceTimersByTimeAsync(1000);
    expect((await third).value).toEqual({ type: "heartbeat" });
    abort.abort();
    q.close();
  });

  it("sends no heartbeat when they are disabled", async () => {
    vi.useFakeTimers();
    const { q, abort } = queue({ heartbeatMs: 0 });
    const drain = q.drain();
    let settled = false;
    const next = drain.next().then((r) => {
      settled = true;
      return r;
    });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(settled).toBe(false);
    abort.abort();
    expect((await next).done).toBe(true);
    q.close();
  });

  it("cuts off a consumer more than maxItems behind: frees the queue, calls onOverflow once, throws at the next pull", async () => {
    const onOverflow = vi.fn();
    let reached = 0;
    const { q } = queue({ maxItems: 3, onOverflow, overflowError: () => new Error(`behind; resume after ${reached}`) });
    const drain = q.drain();
    q.push(1);
    reached = (await take(drain, 1)).length;
    for (let i = 2; i <= 4; i++) q.push(i); // exactly maxItems held: still fine
    expect(onOverflow).not.toHaveBeenCalled();
    q.push(5);
    q.push(6);
    expect(onOverflow).toHaveBeenCalledTimes(1);
    // Nothing queued before the cut-off is delivered after it.
    await expect(drain.next()).rejects.toThrow("behind; resume after 1");
    q.close();
  });

  it("cuts off by bytes too, counting only what is still queued", async () => {
    const { q } = queue({ maxItems: 100, maxBytes: 10, sizeOf: (n) => n });
    const drain = q.drain();
    q.push(6);
    expect(await take(drain, 1)).toEqual(items(6)); // delivered: its bytes are freed
    q.push(6);
    q.push(4); // 10 bytes held: at the bound
    expect(await take(drain, 2)).toEqual(items(6, 4));
    q.push(7);
    q.push(4); // 11 bytes: one too many
    await expect(drain.next()).rejects.toThrow("cut off");
    q.close();
  });

  it("wakes a waiting consumer with the cut-off", async () => {
    const { q } = queue({ maxItems: 0 });
    const drain = q.drain();
    const next = drain.next();
    q.push(1);
    await expect(next).rejects.toThrow("cut off");
    q.close();
  });

  it("ends with fail()'s error, which wins over a cut-off", async () => {
    const { q } = queue({ maxItems: 1 });
    const drain = q.drain();
    q.push(1);
    q.push(2);
    q.fail(new Error("closed"));
    expect(q.failed?.message).toBe("closed");
    await expect(drain.next()).rejects.toThrow("closed");
    q.close();
  });

  it("returns quietly when the signal aborts, also while waiting, and stops listening once closed", async () => {
    const { q, abort } = queue({ heartbeatMs: 60_000 });
    const drain = q.drain();
    const next = drain.next();
    abort.abort();
    expect(await next).toEqual({ done: true, value: undefined });

    const again = queue();
    again.q.push(1);
    again.abort.abort();
    expect((await again.q.drain().next()).done, "an aborted stream sends nothing more").toBe(true);

    const signal = new AbortController().signal;
    const remove = vi.spyOn(signal, "removeEventListener");
    new LiveQueue<number>({ maxItems: 1, heartbeatMs: 0, signal, overflowError: () => new Error("x") }).close();
    expect(remove).toHaveBeenCalledWith("abort", expect.any(Function));
  });
});
