import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isAgentorchError } from "../../src/core/errors.js";
import { createScheduler, type Scheduler } from "../../src/core/tasks/scheduler.js";
import { PRIORITY_RANK, TASK_PRIORITIES, type TaskPriority } from "../../src/core/tasks/task.js";
import { createTestLogger, type LogLine } from "../fakes/clock-and-logger.js";

/** A scheduler whose onStart records the order tasks got their slot (and may run a hook). */
function make(maxConcurrent: number, maxQueued = 10_000, hook?: (id: string, s: Scheduler) => void) {
  const started: string[] = [];
  const lines: LogLine[] = [];
  let seq = 0;
  const s: Scheduler = createScheduler({
    maxConcurrent,
    maxQueued,
    logger: createTestLogger(lines),
    onStart: (id) => {
      started.push(id);
      hook?.(id, s);
    },
  });
  const enqueue = (id: string, p: TaskPriority = "normal") => s.enqueue(id, p, ++seq);
  return { s, started, lines, enqueue };
}

function kindOf(fn: () => void): string | undefined {
  try {
    fn();
  } catch (err) {
    return isAgentorchError(err) ? err.kind : "not an AgentorchError";
  }
  return undefined;
}

describe("scheduler", () => {
  it("runs a waiting CRITICAL task before earlier LOW ones, then the LOW ones in order", () => {
    const { s, started, enqueue } = make(1);
    enqueue("running");
    enqueue("a", "low");
    enqueue("b", "low");
    enqueue("c", "critical");
    expect(started).toEqual(["running"]);
    expect(s.waiting()).toEqual(["c", "a", "b"]);
    for (const id of ["running", "c", "a", "b"]) expect(s.release(id)).toBe(true);
    expect(started).toEqual(["running", "c", "a", "b"]);
    expect(s.running()).toEqual([]);
  });

  it("is first come first served within a priority across 1,000 tasks, whatever order they are enqueued in", () => {
    const { s, started } = make(1);
    s.enqueue("blocker", "normal", 0);
    // Enqueue in a scrambled order (as after a restart); seq decides.
    const seqs = Array.from({ length: 1000 }, (_, i) => i + 1);
    for (let i = seqs.length - 1; i > 0; i--) {
      const j = (i * 7919) % (i + 1);
      [seqs[i], seqs[j]] = [seqs[j] as number, seqs[i] as number];
    }
    for (const seq of seqs) s.enqueue(`t${seq}`, "high", seq);
    expect(s.waiting()).toEqual(Array.from({ length: 1000 }, (_, i) => `t${i + 1}`));
    let last = "blocker";
    for (let i = 0; i < 1000; i++) {
      s.release(last);
      last = started.at(-1) as string;
    }
    expect(started).toEqual(["blocker", ...Array.from({ length: 1000 }, (_, i) => `t${i + 1}`)]);
  });

  it("raising the limit from 1 to 3 starts two waiting tasks at once", () => {
    const { s, started, enqueue } = make(1);
    enqueue("running");
    enqueue("a", "low");
    enqueue("b", "low");
    enqueue("c", "critical");
    s.setMaxConcurrent(3);
    expect(started).toEqual(["running", "c", "a"]);
    expect(s.running()).toEqual(["running", "c", "a"]);
    expect(s.waiting()).toEqual(["b"]);
  });

  it("lowering the limit lets running tasks finish and starts nothing until below it", () => {
    const { s, started, enqueue } = make(3);
    for (const id of ["r1", "r2", "r3", "w1", "w2"]) enqueue(id);
    expect(started).toEqual(["r1", "r2", "r3"]);
    s.setMaxConcurrent(1);
    expect(s.running()).toEqual(["r1", "r2", "r3"]);
    s.release("r1");
    s.release("r2");
    expect(started).toEqual(["r1", "r2", "r3"]);
    s.release("r3");
    expect(started).toEqual(["r1", "r2", "r3", "w1"]);
    expect(s.running()).toEqual(["w1"]);
  });

  it("a limit of 0 pauses starting", () => {
    const { s, started, enqueue } = make(0);
    enqueue("a");
    expect(started).toEqual([]);
    s.setMaxConcurrent(1);
    expect(started).toEqual(["a"]);
  });

  it("removing from the middle of the queue keeps the order of later enqueues (heap regression)", () => {
    const { s, started } = make(0);
    const plan: [string, number | "rem"][] = [
      ["t0", 0], ["t1", 9201], ["t0", "rem"], ["t2", 8402], ["t3", 4403], ["t3", "rem"], ["t4", 8004], ["t5", 5],
      ["t6", 6806], ["t7", 7], ["t1", "rem"], ["t8", 6008], ["t9", 3209], ["t2", "rem"], ["t10", 410],
    ];
    for (const [id, seq] of plan) {
      if (seq === "rem") s.remove(id);
      else s.enqueue(id, "normal", seq);
    }
    s.setMaxConcurrent(1);
    while (s.running().length > 0) s.release(s.running()[0] as string);
    expect(started).toEqual(["t5", "t7", "t10", "t9", "t8", "t6", "t4"]);
  });

  it("a removed waiting task never starts", () => {
    const { s, started, enqueue } = make(1);
    enqueue("running");
    enqueue("a", "critical");
    enqueue("b");
    expect(s.remove("a")).toBe(true);
    expect(s.isWaiting("a")).toBe(false);
    expect(s.remove("a")).toBe(false);
    expect(s.remove("running")).toBe(false); // running tasks are released, not removed
    s.release("running");
    s.release("b");
    s.setMaxConcurrent(5);
    expect(started).toEqual(["running", "b"]);
  });

  it("refuses more than maxQueued waiting tasks with RESOURCE_EXHAUSTED, and accepts again once one starts", () => {
    const { s, started, enqueue } = make(1, 2);
    enqueue("r");
    enqueue("a");
    enqueue("b");
    expect(kindOf(() => enqueue("c"))).toBe("resource_exhausted");
    expect(s.isWaiting("c")).toBe(false);
    s.release("r");
    enqueue("c");
    expect(s.waiting()).toEqual(["b", "c"]);
    expect(started).toEqual(["r", "a"]);
  });

  it("a task that starts at once does not count as waiting", () => {
    const { s, enqueue } = make(2, 1);
    enqueue("x");
    enqueue("y");
    enqueue("z");
    expect(kindOf(() => enqueue("w"))).toBe("resource_exhausted");
    s.setMaxQueued(2);
    enqueue("w");
    expect(s.waiting()).toEqual(["z", "w"]);
  });

  it("refuses a task it already has, and unknown priorities", () => {
    const { s, enqueue } = make(1);
    enqueue("a");
    enqueue("b");
    expect(kindOf(() => enqueue("a"))).toBe("already_exists");
    expect(kindOf(() => enqueue("b"))).toBe("already_exists");
    expect(kindOf(() => s.enqueue("c", "urgent" as TaskPriority, 9))).toBe("invalid_argument");
    expect(kindOf(() => s.setMaxConcurrent(-1))).toBe("invalid_argument");
    expect(s.release("nope")).toBe(false);
  });

  it("a release from inside onStart is safe: never nested, every task still starts once, in order", () => {
    let depth = 0;
    let maxDepth = 0;
    const { s, started, enqueue } = make(1, 10_000, (id, sch) => {
      depth++;
      maxDepth = Math.max(maxDepth, depth);
      sch.release(id); // finishes synchronously, e.g. a spawn that fails at once
      depth--;
    });
    s.setMaxConcurrent(0);
    enqueue("a", "low");
    enqueue("b", "high");
    enqueue("c", "normal");
    s.setMaxConcurrent(1);
    expect(started).toEqual(["b", "c", "a"]);
    expect(maxDepth).toBe(1);
    expect(s.running()).toEqual([]);
    expect(s.stats()).toMatchObject({ started: 3, completed: 3, running: 0, waiting: 0 });
  });

  it("10,000 tasks that finish inside onStart do not grow the stack", () => {
    const { s, started } = make(0, 10_000, (id, sch) => sch.release(id));
    for (let i = 0; i < 10_000; i++) s.enqueue(`t${i}`, TASK_PRIORITIES[i % 4] as TaskPriority, i);
    s.setMaxConcurrent(1);
    expect(started).toHaveLength(10_000);
    expect(started.slice(0, 2)).toEqual(["t3", "t7"]); // critical first, by seq
    expect(s.stats()).toMatchObject({ started: 10_000, completed: 10_000, queuedHighWater: 10_000 });
  });

  it("tasks enqueued from inside onStart wait their turn by priority", () => {
    const { s, started, enqueue } = make(1, 100, (id) => {
      if (id === "a") {
        enqueue("late-critical", "critical");
      }
    });
    enqueue("a");
    enqueue("b", "high");
    expect(started).toEqual(["a"]);
    s.release("a");
    expect(started).toEqual(["a", "late-critical"]);
  });

  it("an onStart that throws is logged and its slot released", () => {
    const { s, started, lines, enqueue } = make(1, 100, (id) => {
      if (id === "bad") throw new Error("boom");
    });
    s.setMaxConcurrent(0);
    enqueue("bad", "high");
    enqueue("good");
    s.setMaxConcurrent(1);
    expect(started).toEqual(["bad", "good"]);
    expect(s.running()).toEqual(["good"]);
    expect(lines.some((l) => l.level === "error" && (l.obj as { taskId?: string }).taskId === "bad")).toBe(true);
  });

  it("adopted tasks count against the limit", () => {
    const { s, started, enqueue } = make(1);
    s.markRunning("adopted");
    enqueue("a");
    expect(started).toEqual([]);
    expect(s.isRunning("adopted")).toBe(true);
    s.release("adopted");
    expect(started).toEqual(["a"]);
  });

  it("adopting a task that was waiting takes it out of the queue", () => {
    const { s, started, enqueue } = make(0);
    enqueue("a");
    enqueue("b");
    s.markRunning("a");
    expect(s.waiting()).toEqual(["b"]);
    s.setMaxConcurrent(2);
    expect(started).toEqual(["b"]);
    expect(s.running().sort()).toEqual(["a", "b"]);
  });

  it("keeps stats", () => {
    const { s, enqueue } = make(1);
    enqueue("a");
    enqueue("b");
    enqueue("c");
    s.release("a");
    expect(s.stats()).toEqual({ started: 2, completed: 1, queuedHighWater: 2, running: 1, waiting: 1, maxConcurrent: 1, maxQueued: 10_000 });
  });
});

describe("scheduler properties", () => {
  type Op =
    | { t: "enq"; p: TaskPriority }
    | { t: "rel"; i: number }
    | { t: "rem"; i: number }
    | { t: "max"; n: number }
    | { t: "adopt" };
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...TASK_PRIORITIES).map((p) => ({ t: "enq" as const, p })) },
    { weight: 4, arbitrary: fc.nat(50).map((i) => ({ t: "rel" as const, i })) },
    { weight: 1, arbitrary: fc.nat(50).map((i) => ({ t: "rem" as const, i })) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 4 }).map((n) => ({ t: "max" as const, n })) },
    { weight: 1, arbitrary: fc.constant({ t: "adopt" as const }) },
  );

  it("never exceeds the limit when starting, and always starts the best waiting task (priority desc, seq asc)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4 }), fc.array(op, { maxLength: 200 }), (initialMax, ops) => {
        let max = initialMax;
        const model = new Map<string, { rank: number; seq: number }>(); // waiting
        const running = new Set<string>();
        const violations: string[] = [];
        const best = () =>
          [...model.entries()].sort(([ia, a], [ib, b]) => b.rank - a.rank || a.seq - b.seq || (ia < ib ? -1 : 1))[0]?.[0];
        const s = createScheduler({
          maxConcurrent: max,
          maxQueued: 1000,
          logger: createTestLogger(),
          // Recorded, not thrown: the scheduler catches what onStart throws.
          onStart: (id) => {
            if (running.size + 1 > max) violations.push(`${id} started with ${running.size} running, limit ${max}`);
            const want = best();
            if (id !== want) violations.push(`${id} started before ${String(want)}`);
            model.delete(id);
            running.add(id);
          },
        });
        let seq = 0;
        for (const o of ops) {
          if (o.t === "enq") {
            const id = `t${++seq}`;
            model.set(id, { rank: PRIORITY_RANK[o.p], seq });
            s.enqueue(id, o.p, seq);
          } else if (o.t === "rel") {
            const ids = [...running];
            const id = ids[o.i % Math.max(ids.length, 1)];
            if (id !== undefined) {
              running.delete(id);
              expect(s.release(id)).toBe(true);
            }
          } else if (o.t === "rem") {
            const ids = [...model.keys()];
            const id = ids[o.i % Math.max(ids.length, 1)];
            if (id !== undefined) {
              model.delete(id);
              expect(s.remove(id)).toBe(true);
            }
          } else if (o.t === "max") {
            max = o.n;
            s.setMaxConcurrent(o.n);
          } else {
            const id = `adopted${++seq}`;
            running.add(id);
            s.markRunning(id);
          }
          expect(violations).toEqual([]);
          // Work-conserving: nothing waits while a slot is free.
          if (model.size > 0) expect(running.size).toBeGreaterThanOrEqual(max);
          expect(s.running().sort()).toEqual([...running].sort());
          expect(s.waiting()).toEqual(
            [...model.entries()].sort(([, a], [, b]) => b.rank - a.rank || a.seq - b.seq).map(([id]) => id),
          );
        }
      }),
      { seed: 20260101, numRuns: 300 },
    );
  });

  it("removing waiting tasks anywhere in the queue, between enqueues, keeps the start order", () => {
    const step = fc.oneof(
      { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...TASK_PRIORITIES), fc.nat(100)).map(([p, key]) => ({ t: "enq" as const, p, key })) },
      { weight: 1, arbitrary: fc.nat(1000).map((i) => ({ t: "rem" as const, i })) },
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 300 }), (steps) => {
        const started: string[] = [];
        const s = createScheduler({ maxConcurrent: 0, maxQueued: 1000, logger: createTestLogger(), onStart: (id) => started.push(id) });
        // Seqs arrive out of order (as when re-enqueued after a restart); key * 1000 + n keeps them unique.
        const live = new Map<string, { rank: number; seq: number }>();
        steps.forEach((st, n) => {
          if (st.t === "enq") {
            const seq = st.key * 1000 + n;
            s.enqueue(`t${n}`, st.p, seq);
            live.set(`t${n}`, { rank: PRIORITY_RANK[st.p], seq });
          } else {
            const ids = [...live.keys()];
            const id = ids[st.i % Math.max(ids.length, 1)];
            if (id !== undefined) {
              expect(s.remove(id)).toBe(true);
              live.delete(id);
            }
          }
        });
        s.setMaxConcurrent(1);
        while (s.running().length > 0) s.release(s.running()[0] as string);
        const expected = [...live.entries()].sort(([, a], [, b]) => b.rank - a.rank || a.seq - b.seq).map(([id]) => id);
        expect(started).toEqual(expected);
      }),
      { seed: 777, numRuns: 1000 },
    );
  });

  it("tasks queued together start in (priority desc, seq asc) order", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TASK_PRIORITIES), { minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: 5 }), (prios, slots) => {
        const started: string[] = [];
        const s = createScheduler({ maxConcurrent: 0, maxQueued: 1000, logger: createTestLogger(), onStart: (id) => started.push(id) });
        prios.forEach((p, i) => s.enqueue(`t${i}`, p, i));
        s.setMaxConcurrent(slots);
        while (s.running().length > 0) s.release(s.running()[0] as string);
        const expected = prios
          .map((p, i) => ({ id: `t${i}`, rank: PRIORITY_RANK[p], i }))
          .sort((a, b) => b.rank - a.rank || a.i - b.i)
          .map((e) => e.id);
        expect(started).toEqual(expected);
      }),
      { seed: 4242, numRuns: 200 },
    );
  });
});
