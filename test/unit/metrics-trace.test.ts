/**
 * W3C trace context: which traceparent headers are accepted (and how they are passed on),
 * and that a task's container environment carries it only when the task has one.
 */
import { describe, expect, it } from "vitest";
import { parseTraceparent, traceLogBindings } from "../../src/api/trace.js";
import { taskEnvironment } from "../../src/core/tasks/directive.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN = "00f067aa0ba902b7";

describe("parseTraceparent", () => {
  it("accepts a version 00 header and splits it", () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`)).toEqual({
      traceId: TRACE,
      parentId: SPAN,
      flags: "01",
      traceparent: `00-${TRACE}-${SPAN}-01`,
    });
    expect(traceLogBindings(parseTraceparent(`00-${TRACE}-${SPAN}-00`)!)).toEqual({ trace_id: TRACE, span_id: SPAN });
  });

  it("reads a later version by its first four fields and passes it on as version 00", () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01-what-comes-next`)?.traceparent).toBe(`00-${TRACE}-${SPAN}-01`);
    expect(parseTraceparent(`cc-${TRACE}-${SPAN}-03`)?.traceparent).toBe(`00-${TRACE}-${SPAN}-03`);
  });

  it.each([
    ["absent", undefined],
    ["null", null],
    ["empty", ""],
    ["version ff", `ff-${TRACE}-${SPAN}-01`],
    ["version 00 with extra fields", `00-${TRACE}-${SPAN}-01-extra`],
    ["all-zero trace id", `00-${"0".repeat(32)}-${SPAN}-01`],
    ["all-zero parent id", `00-${TRACE}-${"0".repeat(16)}-01`],
    ["uppercase hex", `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ["short trace id", `00-${TRACE.slice(1)}-${SPAN}-01`],
    ["long parent id", `00-${TRACE}-${SPAN}0-01`],
    ["two headers joined", `00-${TRACE}-${SPAN}-01, 00-${TRACE}-${SPAN}-01`],
    ["a newline inside", `00-${TRACE}-${SPAN}-01\nx: y`],
    ["non-hex flags", `00-${TRACE}-${SPAN}-0g`],
    ["far too long", `01-${TRACE}-${SPAN}-01-${"a".repeat(600)}`],
  ])("refuses %s", (_why, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });
});

describe("taskEnvironment", () => {
  const task = { taskId: "task-1", directive: { goal: "g", constraints: [], acceptanceCriteria: [], originalRequest: "" }, attempt: 1 };

  it("passes the task's traceparent as AGENTORCH_TRACEPARENT", () => {
    const env = taskEnvironment({ ...task, traceparent: `00-${TRACE}-${SPAN}-01` }, "/workspace/r.json");
    expect(env.AGENTORCH_TRACEPARENT).toBe(`00-${TRACE}-${SPAN}-01`);
    expect(env.AGENTORCH_TASK_ID).toBe("task-1");
  });

  it("sets no AGENTORCH_TRACEPARENT for a task submitted without one", () => {
    expect(Object.keys(taskEnvironment(task, "/workspace/r.json"))).not.toContain("AGENTORCH_TRACEPARENT");
  });
});
