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
 * An idle stream gets a keep-alive item every keepAliveMs. The live part (queue,
 * keep-alives, cut-off, abort) is the LiveQueue shared with agent and task watches.
 */
import { resourceExhausted } from "../errors.js";
import { LiveQueue } from "../live-queue.js";
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
  let live = false;
  let last = opts.resumeAfter;
  const queue = new LiveQueue<StoredMessage>({
    maxItems: opts.maxBuffer,
    maxBytes: opts.maxBufferBytes,
    sizeOf: (message) => message.size,
    heartbeatMs: opts.keepAliveMs,
    signal: opts.signal,
    overflowError: () =>
      resourceExhausted(
        `mailbox reader fell more than ${opts.maxBuffer} messages (or ${opts.maxBufferBytes} bytes) behind; stream again (resume after sequence ${last})`,
        { agentId: opts.agentId },
      ),
  });
  const unsubscribe = hub.subscribe(opts.agentId, {
    onMessage(message) {
      if (live) queue.push(message); // else the replay reads it from the store
    },
    onClosed(err) {
      queue.fail(err);
    },
  });
  try {
    while (!live) {
      const batch = store.readUnacked(opts.agentId, last, opts.batchSize, opts.batchBytes);
      // Caught up. Synchronous with the read: everything stored after it reaches the queue.
      if (batch.length === 0) live = true;
      for (const message of batch) {
        if (opts.signal.aborted) return;
        if (queue.failed) throw queue.failed;
        last = message.sequence;
        yield { type: "message", message };
      }
    }

    // Live messages already delivered by the replay are skipped.
    for await (const item of queue.drain((message) => message.sequence > last)) {
      if (item.type === "item") {
        last = item.item.sequence;
        yield { type: "message", message: item.item };
      } else {
        yield { type: "keepalive" };
      }
    }
  } finally {
    unsubscribe();
    queue.close();
  }
}
