/**
 * The live half of every resumable stream (agent watches, task watches, mailbox
 * streams): a bounded queue that a subscriber pushes into, drained by one consumer in
 * order, with a heartbeat on idle and a cut-off for a consumer that falls behind.
 *
 * Each stream subscribes and creates its queue before it replays what is stored, then
 * drains the queue; what it replayed it skips with accept(). Memory is bounded: once
 * more than maxItems (or maxBytes) would be held, the consumer is cut off: what is
 * queued is freed at once, nothing more is queued, onOverflow runs (e.g. to
 * unsubscribe), and the next pull throws overflowError(). The stream resumes from
 * its last position. An aborted signal ends the drain quietly; fail() ends it with
 * an error.
 */

export interface LiveQueueOptions<T> {
  /** Items held for a consumer that does not keep up; one more cuts it off. */
  maxItems: number;
  /** Bytes held (by sizeOf), when bounded too. */
  maxBytes?: number;
  sizeOf?: (item: T) => number;
  /** A heartbeat is yielded after this long without an item; 0 disables. */
  heartbeatMs: number;
  signal: AbortSignal;
  /** The error the consumer gets once cut off; built when thrown, so it can name the position reached. */
  overflowError: () => Error;
  /** Runs once, at the cut-off. */
  onOverflow?: () => void;
}

export type LiveItem<T> = { type: "item"; item: T } | { type: "heartbeat" };

export class LiveQueue<T> {
  private readonly items = new Fifo<T>();
  private bytes = 0;
  private overflowed = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private readonly onAbort = () => this.wake?.();

  constructor(private readonly opts: LiveQueueOptions<T>) {
    opts.signal.addEventListener("abort", this.onAbort);
  }

  /** The error fail() was given, if any: a replay checks it between items. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /** Queues an item for the consumer, or cuts the consumer off when it is too far behind. */
  push(item: T): void {
    if (this.overflowed) return;
    const size = this.opts.sizeOf?.(item) ?? 0;
    if (this.items.length >= this.opts.maxItems || (this.opts.maxBytes !== undefined && this.bytes + size > this.opts.maxBytes)) {
      // What is queued will never be sent: freed now, even while a stalled consumer keeps the stream open.
      this.overflowed = true;
      this.items.clear();
      this.bytes = 0;
      this.opts.onOverflow?.();
    } else {
      this.items.push(item);
      this.bytes += size;
    }
    this.wake?.();
  }

  /** Ends the stream with err at the consumer's next pull. */
  fail(err: Error): void {
    this.failure = err;
    this.wake?.();
  }

  /** Stops listening to the signal. Call once the stream ends (in a finally). */
  close(): void {
    this.opts.signal.removeEventListener("abort", this.onAbort);
  }

  /**
   * The queued items in order (those accept() refuses are dropped), then live ones as they
   * come, and a heartbeat after heartbeatMs without an item. Returns when the signal aborts;
   * throws after fail() or a cut-off.
   */
  async *drain(accept: (item: T) => boolean = () => true): AsyncGenerator<LiveItem<T>> {
    let lastSent = Date.now();
    for (;;) {
      if (this.opts.signal.aborted) return;
      if (this.failure) throw this.failure;
      if (this.overflowed) throw this.opts.overflowError();
      if (this.items.length > 0) {
        const item = this.items.shift()!;
        this.bytes -= this.opts.sizeOf?.(item) ?? 0;
        if (!accept(item)) continue;
        lastSent = Date.now();
        yield { type: "item", item };
        continue;
      }
      const waitMs = this.opts.heartbeatMs > 0 ? Math.max(0, lastSent + this.opts.heartbeatMs - Date.now()) : undefined;
      const timedOut = await sleepUntilWoken(waitMs, (w) => {
        this.wake = w;
      });
      this.wake = undefined;
      if (timedOut && this.items.length === 0 && !this.overflowed && !this.failure && !this.opts.signal.aborted) {
        lastSent = Date.now();
        yield { type: "heartbeat" };
      }
    }
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

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}
