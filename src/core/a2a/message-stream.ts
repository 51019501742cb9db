/**
 * One StreamMessages reader: the mailbox's unacknowledged messages after a sequence, read
 * from the store in batches, then live ones as they are stored, in sequence order, with
 * no gap and no duplicate within the stream.
 *
 * It subscribes to the hub before its first read. While it replays the backlog it keeps
 * no live messages (the next read from the store finds them); once a read shows it has
 * caught up it switches to live delivery, synchronously after that read, so nothing
 * stored in between can be missed. Memory is bounded per reader: one batch while
 * replaying, at most maxBuffer messages (and maxBufferBytes) held for a live reader that
 * does not keep up; beyond that the stream ends with RESOURCE_EXHAUSTED, and the reader
 * streams again (nothing is lost: unacknowledged messages stay in the store).
 * An idle stream gets a keep-alive item every keepAliveMs.
 */
import { type AgentorchError, resourceExhausted } from "../errors.js";
import type { MailboxHub } from "./mailbox-hub.js";
import type { StoredMessage } from "./message.js";
import type { MailboxStore } from "./ports.js";

export type MailboxItem = { type: "message"; message: StoredMessage } | { type: "keepalive" };

export interface MessageStreamOptions {
  agentId: string;
  /** Deliver only messages after this sequence (and never acknowledged ones). */
  resumeAfter: number;
  /** 0 disables keep-alives. */
  keepAliveMs: number;
  /** Live messages held for a slow reader before it is cut off. */
  maxBuffer: number;
  maxBufferBytes: number;
  /** Rows per store read while replaying, and their byte budget. */
  batchSize: number;
  batchBytes: number;
  signal: AbortSignal;
}

export async function* streamMailbox(store: MailboxStore, hub: MailboxHub, opts: MessageStreamOptions): AsyncGenerator<MailboxItem> {
  const queue = new Fifo<StoredMessage>();
  let queuedBytes = 0;
  let live = false;
  let overflowed = false;
  let closed: AgentorchError | undefined;
  let wake: (() => void) | undefined;
  const unsubscribe = hub.subscribe(opts.agentId, {
    onMessage(message) {
      if (!live) return; // the replay reads it from the store
      if (queue.length >= opts.maxBuffer || queuedBytes + message.size > opts.maxBufferBytes) overflowed = true;
      else {
        queue.push(message);
        queuedBytes += message.size;
      }
      wake?.();
    },
    onClosed(err) {
      closed = err;
      wake?.();
    },
  });
  const onAbort = () => wake?.();
  opts.signal.addEventListener("abort", onAbort);
  try {
    let last = opts.resumeAfter;
    while (!live) {
      const batch = store.readUnacked(opts.agentId, last, opts.batchSize, opts.batchBytes);
      // Caught up. Synchronous with the read: everything stored after it reaches the queue.
      if (batch.length === 0) live = true;
      for (const message of batch) {
        if (opts.signal.aborted) return;
        if (closed) throw closed;
        last = message.sequence;
        yield { type: "message", message };
      }
    }

    let lastSent = Date.now();
    for (;;) {
      if (opts.signal.aborted) return;
      if (closed) throw closed;
      if (overflowed) {
        throw resourceExhausted(
          `mailbox reader fell more than ${opts.maxBuffer} messages (or ${opts.maxBufferBytes} bytes) behind; stream again (resume after sequence ${last})`,
          { agentId: opts.agentId },
        );
      }
      const message = queue.shift();
      if (message) {
        queuedBytes -= message.size;
        if (message.sequence <= last) continue; // already delivered by the replay
        last = message.sequence;
        lastSent = Date.now();
        yield { type: "message", message };
        continue;
      }
      const waitMs = opts.keepAliveMs > 0 ? Math.max(0, lastSent + opts.keepAliveMs - Date.now()) : undefined;
      const timedOut = await sleepUntilWoken(waitMs, (w) => {
        wake = w;
      });
      wake = undefined;
      if (timedOut && queue.length === 0 && !opts.signal.aborted && !closed) {
        lastSent = Date.now();
        yield { type: "keepalive" };
      }
    }
  } finally {
    unsubscribe();
    opts.signal.removeEventListener("abort", onAbort);
  }
}

/** Resolves true after ms (if given), false when woken first. */
function sleepUntilWoken(ms: number | undefined, setWake: (w: () => void) => void): Promise<boolean> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    if (ms !== undefined) timer = setTimeout(() => resolve(true), ms);
    setWake(() => {
      if (timer) clearTimeout(timer);
      resolve(false);
    });
  });
}

/** A queue with O(1) push and shift (Array#shift is O(n)). */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
