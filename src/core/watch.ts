/**
 * Resumable watches over the event log. A watch replays the logged events after a
 * revision, then follows live ones, with no gap and no duplicate: it subscribes to
 * the bus before reading the log, and drops live events it already replayed.
 * Memory is bounded per watcher: a consumer that falls more than maxBuffer events
 * behind is cut off with RESOURCE_EXHAUSTED and resumes from its last revision. The
 * live part (queue, bookmarks on idle, cut-off, abort) is the LiveQueue shared with
 * mailbox streams.
 */
import { AgentorchError, invalidArgument } from "./errors.js";
import type { EventBus } from "./event-bus.js";
import { LiveQueue } from "./live-queue.js";
import type { EntityKind, EventType, Store, StoredEvent } from "./ports.js";

/** Watch streams' bounds: heartbeat bookmark interval and live events held per slow consumer. */
export interface WatchLimits {
  bookmarkIntervalMs: number;
  maxBuffer: number;
}

export const DEFAULT_WATCH_LIMITS: WatchLimits = { bookmarkIntervalMs: 30_000, maxBuffer: 10_000 };

/** What a client asks of a watch stream. */
export interface WatchRequest {
  /** Only these ids; all when empty. */
  ids: readonly string[];
  /** Replay after this revision; 0 replays the whole kept history. Ignored with sendInitialState. */
  resumeAfter: number;
  sendInitialState: boolean;
  signal: AbortSignal;
  /** Told when the watcher falls too far behind and is cut off (see watchEvents). */
  onCutOff?: (message: string) => void;
}

export type WatchItemType = EventType | "bookmark";

export interface WatchItem<T> {
  type: WatchItemType;
  revision: number;
  /** Absent on bookmarks. */
  entity?: T;
}

export interface WatchOptions<T> {
  kind: EntityKind;
  /** Which entities the watcher wants (by id); all when absent. */
  match?: (id: string, entity: T) => boolean;
  /** Replay the events after this revision first. */
  resumeAfter?: number;
  /** Send every matching entity first (as "added"), then a bookmark. Takes one consistent snapshot. */
  snapshot?: () => T[];
  /** A bookmark is sent after this long without any event; 0 disables. */
  bookmarkIntervalMs: number;
  /** Live events held for a slow consumer before it is cut off. */
  maxBuffer: number;
  signal: AbortSignal;
  /**
   * Told when the consumer is cut off. A consumer that reads nothing leaves the generator
   * suspended at a yield, where the error it would throw never comes: the transport must
   * end the stream itself.
   */
  onCutOff?: (message: string) => void;
}

const REPLAY_BATCH = 1000;

export async function* watchEvents<T>(store: Store, bus: EventBus, opts: WatchOptions<T>): AsyncGenerator<WatchItem<T>> {
  // The last revision handed to the consumer (or passed over in a replay).
  let last = 0;
  const cutOffMessage = () => `watch consumer fell more than ${opts.maxBuffer} events behind; resume after revision ${last}`;
  const matches = (e: StoredEvent) => !opts.match || opts.match(e.id, e.entity as T);
  const queue: LiveQueue<StoredEvent> = new LiveQueue<StoredEvent>({
    maxItems: opts.maxBuffer,
    heartbeatMs: opts.bookmarkIntervalMs,
    signal: opts.signal,
    // Nothing more is queued once cut off, even while a stalled consumer keeps the stream open.
    onOverflow: () => {
      unsubscribe();
      opts.onCutOff?.(cutOffMessage());
    },
    overflowError: () => new AgentorchError("resource_exhausted", cutOffMessage()),
  });
  // Filtered here, so a watcher of a few ids is not cut off by traffic on others.
  const unsubscribe = bus.subscribe((event) => {
    if (event.kind === opts.kind && matches(event)) queue.push(event);
  });
  try {
    if (opts.snapshot) {
      // Synchronous: the snapshot and its revision are consistent (see Store).
      const items = opts.snapshot();
      last = store.currentRevision();
      for (const entity of items) yield { type: "added", revision: last, entity };
      yield { type: "bookmark", revision: last };
    } else if (opts.resumeAfter !== undefined) {
      // 0 asks for the whole kept history, however much of it has been pruned.
      last = opts.resumeAfter === 0 ? store.oldestRevision() - 1 : checkResumable(store, opts.resumeAfter);
      for (;;) {
        const batch = store.readEvents(last, REPLAY_BATCH);
        // Revisions have no gaps, so a jump means the log was pruned under a slow replay.
        if (batch.length > 0 && batch[0]!.revision !== last + 1) throw prunedUnder(last, batch[0]!.revision);
        for (const e of batch) {
          last = e.revision;
          if (e.kind === opts.kind && matches(e)) yield toItem<T>(e);
        }
        if (batch.length < REPLAY_BATCH) break;
      }
    } else {
      last = store.currentRevision();
    }

    // Live events already replayed are skipped.
    for await (const live of queue.drain((e) => e.revision > last)) {
      if (live.type === "item") {
        last = live.item.revision;
        yield toItem<T>(live.item);
      } else {
        yield { type: "bookmark", revision: Math.max(last, store.currentRevision()) };
        last = Math.max(last, store.currentRevision());
      }
    }
  } finally {
    unsubscribe();
    queue.close();
  }
}

export const MAX_WATCH_IDS = 1000;

/** The id filter of a watch (undefined: everything); each id validated, at most MAX_WATCH_IDS. */
export function validateWatchIds(ids: readonly string[], validate: (id: string, field: string) => string, field = "ids"): Set<string> | undefined {
  if (ids.length === 0) return undefined;
  if (ids.length > MAX_WATCH_IDS) throw invalidArgument(`at most ${MAX_WATCH_IDS} ids may be watched at once`);
  return new Set(ids.map((id) => validate(id, field)));
}

/** The revision to resume after; OUT_OF_RANGE when the log no longer holds what follows it. */
function checkResumable(store: Store, resumeAfter: number): number {
  if (!Number.isInteger(resumeAfter) || resumeAfter < 0) throw invalidArgument("resume_after_revision must not be negative");
  const current = store.currentRevision();
  if (resumeAfter > current) {
    throw new AgentorchError("out_of_range", `revision ${resumeAfter} is ahead of the log (current ${current}); list again and watch from its revision`);
  }
  if (resumeAfter < store.oldestRevision() - 1) {
    throw new AgentorchError(
      "out_of_range",
      `revision ${resumeAfter} is older than the kept history (oldest ${store.oldestRevision()}); list again and watch from its revision`,
    );
  }
  return resumeAfter;
}

function prunedUnder(last: number, oldest: number): AgentorchError {
  return new AgentorchError(
    "out_of_range",
    `the events after revision ${last} were pruned while they were being replayed (oldest ${oldest}); list again and watch from its revision`,
  );
}

function toItem<T>(e: StoredEvent): WatchItem<T> {
  return { type: e.type, revision: e.revision, entity: e.entity as T };
}
