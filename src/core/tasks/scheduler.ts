/**
 * The priority scheduler: at most maxConcurrent tasks run; the rest wait, higher priority
 * first and first come first served within a priority (by a sequence number the caller
 * persists, so the order survives a restart). A waiting task starts as soon as a slot
 * frees. It only decides *when* a task starts: onStart does the work, and the caller
 * reports the end with release(). (The source system's scheduler was bookkeeping only:
 * priorities had no effect and ties ran newest first.)
 *
 * Waiting tasks sit in an indexed binary heap: enqueue, remove and start are O(log n).
 */
import { AgentorchError, resourceExhausted } from "../errors.js";
import type { Logger } from "../ports.js";
import { PRIORITY_RANK, type TaskPriority } from "./task.js";

export interface SchedulerOptions {
  /** Slots; 0 pauses starting. */
  maxConcurrent: number;
  /** Waiting tasks beyond this are refused with RESOURCE_EXHAUSTED. */
  maxQueued: number;
  /**
   * Called when a task gets a slot; it is counted as running from then on. Called
   * synchronously from enqueue/release/setMaxConcurrent, never nested: calls made from
   * inside it (release, enqueue, remove…) take effect at once, and any task they let
   * start is started after onStart returns. It should not throw; if it does, the error is
   * logged and the slot released so it is not lost.
   */
  onStart: (taskId: string) => void;
  logger: Logger;
}

export interface SchedulerStats {
  /** Tasks given a slot by the scheduler (adopted ones not counted). */
  started: number;
  /** Running tasks released. */
  completed: number;
  /** The most tasks ever waiting at once. */
  queuedHighWater: number;
  running: number;
  waiting: number;
  maxConcurrent: number;
  maxQueued: number;
}

/** A task scheduler; see createScheduler. */
export interface Scheduler {
  /** Queues a task (starting it at once when a slot is free). RESOURCE_EXHAUSTED when maxQueued wait already. */
  enqueue(taskId: string, priority: TaskPriority, seq: number): void;
  /** Takes a waiting task out of the queue (it never starts); true if it was waiting. */
  remove(taskId: string): boolean;
  /** A running task ended: frees its slot and starts the next waiting task(s). True if it was running. */
  release(taskId: string): boolean;
  /** Counts a task as running without calling onStart (adopting a task after a restart); may exceed the limit. */
  markRunning(taskId: string): void;
  /** Raising it starts waiting tasks at once; lowering it lets running ones finish. */
  setMaxConcurrent(n: number): void;
  setMaxQueued(n: number): void;
  isWaiting(taskId: string): boolean;
  isRunning(taskId: string): boolean;
  /** Running task ids, in the order they got their slot. */
  running(): string[];
  /** Waiting task ids in the order they would start. O(n log n): for inspection, not hot paths. */
  waiting(): string[];
  stats(): SchedulerStats;
}

interface Entry {
  taskId: string;
  rank: number;
  seq: number;
}

/** Creates a scheduler with nothing running or waiting. */
export function createScheduler(opts: SchedulerOptions): Scheduler {
  checkLimit(opts.maxConcurrent, "maxConcurrent", 0);
  checkLimit(opts.maxQueued, "maxQueued", 1);
  let maxConcurrent = opts.maxConcurrent;
  let maxQueued = opts.maxQueued;
  const heap: Entry[] = [];
  const index = new Map<string, number>(); // taskId -> position in heap
  const runningSet = new Set<string>();
  let started = 0;
  let completed = 0;
  let queuedHighWater = 0;
  let pumping = false;
  const log = opts.logger;

  // ---- heap: the root is the entry that starts next.
  const before = (a: Entry, b: Entry) => a.rank > b.rank || (a.rank === b.rank && (a.seq < b.seq || (a.seq === b.seq && a.taskId < b.taskId)));
  const place = (i: number, e: Entry) => {
    heap[i] = e;
    index.set(e.taskId, i);
  };
  const siftUp = (i: number) => {
    const e = heap[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(e, heap[p])) break;
      place(i, heap[p]);
      i = p;
    }
    place(i, e);
  };
  const siftDown = (i: number) => {
    const e = heap[i];
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(heap[r], heap[l]) ? r : l;
      if (!before(heap[c], e)) break;
      place(i, heap[c]);
      i = c;
    }
    place(i, e);
  };
  const removeAt = (i: number): Entry => {
    const e = heap[i];
    index.delete(e.taskId);
    const last = heap.pop()!;
    if (i < heap.length) {
      place(i, last);
      siftUp(i);
      siftDown(index.get(last.taskId)!);
    }
    return e;
  };

  /** Starts waiting tasks while slots are free. Never nested: a call from inside onStart returns at once and the outer loop picks up the change. */
  const pump = () => {
    if (pumping) return;
    pumping = true;
    try {
      while (runningSet.size < maxConcurrent && heap.length > 0) {
        const { taskId } = removeAt(0);
        runningSet.add(taskId);
        started++;
        log.debug({ taskId, running: runningSet.size, waiting: heap.length }, "task slot granted");
        try {
          opts.onStart(taskId);
        } catch (err) {
          log.error({ taskId, err }, "onStart threw; releasing the task's slot");
          runningSet.delete(taskId);
        }
      }
    } finally {
      pumping = false;
    }
  };

  return {
    enqueue(taskId, priority, seq) {
      const rank = PRIORITY_RANK[priority];
      if (rank === undefined) throw new AgentorchError("invalid_argument", `unknown priority ${String(priority)}`, { taskId });
      if (!Number.isSafeInteger(seq)) throw new AgentorchError("invalid_argument", `seq must be an integer (got ${seq})`, { taskId });
      if (index.has(taskId) || runningSet.has(taskId)) {
        throw new AgentorchError("already_exists", `task "${taskId}" is already ${runningSet.has(taskId) ? "running" : "waiting"}`, { taskId });
      }
      // Invariant after every pump: the queue is empty or no slot is free, so a full queue means no slot.
      if (heap.length >= maxQueued) {
        throw resourceExhausted(`${heap.length} tasks are waiting; at most ${maxQueued}`, { taskId });
      }
      heap.push({ taskId, rank, seq });
      index.set(taskId, heap.length - 1);
      siftUp(heap.length - 1);
      if (heap.length > queuedHighWater) queuedHighWater = heap.length;
      pump();
    },
    remove(taskId) {
      const i = index.get(taskId);
      if (i === undefined) return false;
      removeAt(i);
      return true;
    },
    release(taskId) {
      if (!runningSet.delete(taskId)) return false;
      completed++;
      pump();
      return true;
    },
    markRunning(taskId) {
      const i = index.get(taskId);
      if (i !== undefined) removeAt(i);
      runningSet.add(taskId);
    },
    setMaxConcurrent(n) {
      checkLimit(n, "maxConcurrent", 0);
      log.info({ from: maxConcurrent, to: n }, "max concurrent tasks changed");
      maxConcurrent = n;
      pump();
    },
    setMaxQueued(n) {
      checkLimit(n, "maxQueued", 1);
      maxQueued = n;
    },
    isWaiting: (taskId) => index.has(taskId),
    isRunning: (taskId) => runningSet.has(taskId),
    running: () => [...runningSet],
    waiting: () => [...heap].sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0)).map((e) => e.taskId),
    stats: () => ({
      started,
      completed,
      queuedHighWater,
      running: runningSet.size,
      waiting: heap.length,
      maxConcurrent,
      maxQueued,
    }),
  };
}

function checkLimit(n: number, name: string, min: number): void {
  if (!Number.isSafeInteger(n) || n < min) throw new AgentorchError("invalid_argument", `${name} must be an integer of at least ${min} (got ${n})`);
}
