import { describe, expect, it } from "vitest";
import { isAgentorchError } from "../../src/core/errors.js";
import {
  assertRetryable,
  assertTaskTransition,
  effectiveTimeoutMs,
  isTerminal,
  newTaskId,
  PRIORITY_RANK,
  TASK_STATES,
  type TaskState,
  validateTaskId,
  validateTaskTimeoutMs,
} from "../../src/core/tasks/task.js";

// Written out independently of TASK_TRANSITIONS so a change to the table shows up here.
const LEGAL = new Set([
  "submitted->working",
  "submitted->canceled",
  "submitted->rejected",
  "submitted->failed",
  "working->completed",
  "working->failed",
  "working->canceled",
]);

function thrown(fn: () => void): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("task transitions", () => {
  it("knows all six A2A states", () => {
    expect([...TASK_STATES].sort()).toEqual(["canceled", "completed", "failed", "rejected", "submitted", "working"]);
  });

  const pairs = TASK_STATES.flatMap((from) => TASK_STATES.map((to) => [from, to] as [TaskState, TaskState]));
  it.each(pairs)("%s -> %s is legal only when listed", (from, to) => {
    const err = thrown(() => assertTaskTransition("t-1", from, to, "move"));
    if (LEGAL.has(`${from}->${to}`)) {
      expect(err).toBeUndefined();
    } else {
      expect(isAgentorchError(err, "failed_precondition")).toBe(true);
      expect((err as Error).message).toBe(`cannot move task "t-1": invalid state ${from.toUpperCase()}`);
      expect((err as { details: { taskId?: string } }).details.taskId).toBe("t-1");
    }
  });

  it("cancelling a finished task names its state", () => {
    expect(() => assertTaskTransition("t-9", "completed", "canceled", "cancel")).toThrow(/cannot cancel task "t-9": invalid state COMPLETED/);
  });

  it("terminal states are exactly the four end states", () => {
    expect(TASK_STATES.filter(isTerminal).sort()).toEqual(["canceled", "completed", "failed", "rejected"]);
  });

  it("only failed or canceled tasks can be retried", () => {
    for (const state of TASK_STATES) {
      const err = thrown(() => assertRetryable({ taskId: "t-2", state }));
      if (state === "failed" || state === "canceled") expect(err).toBeUndefined();
      else {
        expect(isAgentorchError(err, "failed_precondition")).toBe(true);
        expect((err as Error).message).toContain(`invalid state ${state.toUpperCase()}`);
      }
    }
  });
});

describe("priorities, timeouts and ids", () => {
  it("ranks low < normal < high < critical", () => {
    expect(PRIORITY_RANK.low).toBeLessThan(PRIORITY_RANK.normal);
    expect(PRIORITY_RANK.normal).toBeLessThan(PRIORITY_RANK.high);
    expect(PRIORITY_RANK.high).toBeLessThan(PRIORITY_RANK.critical);
  });

  it("caps a task's timeout at the maximum execution time; none asked means the maximum", () => {
    expect(effectiveTimeoutMs(0, 300_000)).toBe(300_000);
    expect(effectiveTimeoutMs(5_000, 300_000)).toBe(5_000);
    expect(effectiveTimeoutMs(600_000, 300_000)).toBe(300_000);
  });

  it("accepts no timeout or a positive one, refuses negative and fractional ones", () => {
    expect(validateTaskTimeoutMs(0)).toBe(0);
    expect(validateTaskTimeoutMs(1500)).toBe(1500);
    for (const bad of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const err = thrown(() => validateTaskTimeoutMs(bad));
      expect(isAgentorchError(err, "invalid_argument")).toBe(true);
      expect((err as { details: { field?: string } }).details.field).toBe("timeout");
    }
  });

  it("makes distinct, valid task ids and refuses malformed ones", () => {
    const a = newTaskId();
    const b = newTaskId();
    expect(a).not.toBe(b);
    expect(validateTaskId(a)).toBe(a);
    for (const bad of ["", "a/b", "x".repeat(65), "t 1", "../x"]) {
      const err = thrown(() => validateTaskId(bad));
      expect(isAgentorchError(err, "invalid_argument")).toBe(true);
      expect((err as Error).message).toMatch(/^task_id /);
    }
  });
});
