import { describe, expect, it } from "vitest";
import { DEFAULTS } from "../../src/core/agent.js";
import {
  buildRetryConstraints,
  DIRECTIVE_LIMITS,
  resultFilePaths,
  taskEnvironment,
  validateDirective,
  validateGaps,
  validateTemplate,
} from "../../src/core/tasks/directive.js";
import type { Task } from "../../src/core/tasks/task.js";
import { failure } from "../support/errors.js";

function makeTask(over: Partial<Task> = {}): Task {
  return {
    taskId: "task-1",
    agentId: "agent-1",
    directive: { goal: "make the tests pass", constraints: ["Use Go"], acceptanceCriteria: ["tests pass", "lint clean"], originalRequest: "" },
    priority: "normal",
    state: "failed",
    stateReason: "EXIT_NONZERO",
    stateMessage: "exited with code 3",
    attempt: 1,
    createdAt: 1,
    startedAt: 2,
    finishedAt: 3,
    result: { success: false, exitCode: 3, output: "step 1\nstep 2\n", outputTruncated: false, durationMs: 1, dataError: "" },
    timeoutMs: 0,
    ephemeral: false,
    containerId: "c1",
    seq: 1,
    ...over,
  };
}

describe("validateDirective", () => {
  it("fills in empty lists and original request, and copies its input", () => {
    const input = { goal: "say hi\n\tthen stop", constraints: ["a"] };
    const d = validateDirective(input);
    expect(d).toEqual({ goal: "say hi\n\tthen stop", constraints: ["a"], acceptanceCriteria: [], originalRequest: "" });
    input.constraints.push("b");
    expect(d.constraints).toEqual(["a"]);
  });

  it("requires a directive and a goal", () => {
    expect(failure(() => validateDirective(undefined))).toMatchObject({ kind: "invalid_argument", field: "directive" });
    expect(failure(() => validateDirective({ goal: "" }))).toMatchObject({ kind: "invalid_argument", field: "directive.goal", message: "directive.goal is required" });
  });

  it("bounds the goal at 8192 characters", () => {
    expect(validateDirective({ goal: "g".repeat(DIRECTIVE_LIMITS.goalLength) }).goal).toHaveLength(8192);
    expect(failure(() => validateDirective({ goal: "g".repeat(8193) }))).toMatchObject({ field: "directive.goal", message: "directive.goal is 8193 characters; at most 8192" });
  });

  it.each([
    ["ESC", "\u001b[31mred"],
    ["NUL", "a\u0000b"],
    ["bell", "a\u0007"],
    ["DEL", "a\u007f"],
    ["C1 CSI", "a\u009b2J"],
    ["lone surrogate", "a\ud800b"],
  ])("refuses %s in the goal", (_name, goal) => {
    expect(failure(() => validateDirective({ goal }))).toMatchObject({ kind: "invalid_argument", field: "directive.goal", message: "directive.goal contains control characters" });
  });

  it("accepts CRLF, tabs and non-ASCII text", () => {
    expect(validateDirective({ goal: "línea 1\r\nline 2\t✓ 🚀" }).goal).toBe("línea 1\r\nline 2\t✓ 🚀");
  });

  it("bounds constraint and criterion counts and sizes, naming the entry", () => {
    const many = Array.from({ length: 65 }, (_, i) => `c${i}`);
    expect(validateDirective({ goal: "g", constraints: many.slice(0, 64) }).constraints).toHaveLength(64);
    expect(failure(() => validateDirective({ goal: "g", constraints: many }))).toMatchObject({ field: "directive.constraints", message: "directive.constraints has 65 entries; at most 64" });
    expect(failure(() => validateDirective({ goal: "g", acceptanceCriteria: many }))).toMatchObject({ field: "directive.acceptance_criteria" });
    expect(failure(() => validateDirective({ goal: "g", constraints: ["ok", ""] }))).toMatchObject({ field: "directive.constraints[1]", message: "directive.constraints[1] is required" });
    expect(failure(() => validateDirective({ goal: "g", acceptanceCriteria: ["x".repeat(4097)] }))).toMatchObject({ field: "directive.acceptance_criteria[0]" });
    expect(failure(() => validateDirective({ goal: "g", constraints: ["a\u001bb"] }))).toMatchObject({ field: "directive.constraints[0]" });
  });

  it("bounds the original request", () => {
    expect(validateDirective({ goal: "g", originalRequest: "r".repeat(32768) }).originalRequest).toHaveLength(32768);
    expect(failure(() => validateDirective({ goal: "g", originalRequest: "r".repeat(32769) }))).toMatchObject({ field: "directive.original_request" });
    // 32768 three-byte characters fit the character limit but not an environment variable.
    expect(failure(() => validateDirective({ goal: "g", originalRequest: "€".repeat(32768) }))).toMatchObject({
      field: "directive.original_request",
      message: "directive.original_request takes 98304 bytes as UTF-8; at most 65536",
    });
  });

  it("keeps each list small enough for one environment variable", () => {
    const fits = Array.from({ length: 15 }, () => "x".repeat(4096)); // 61,486 bytes of JSON
    expect(validateDirective({ goal: "g", constraints: fits }).constraints).toHaveLength(15);
    const tooBig = Array.from({ length: 17 }, () => "x".repeat(4096)); // 69,684 bytes of JSON
    expect(failure(() => validateDirective({ goal: "g", constraints: tooBig }))).toMatchObject({
      field: "directive.constraints",
      message: "directive.constraints takes 69684 bytes as UTF-8 JSON; at most 65536",
    });
    expect(failure(() => validateDirective({ goal: "g", acceptanceCriteria: tooBig }))).toMatchObject({ field: "directive.acceptance_criteria" });
  });
});

describe("validateTemplate", () => {
  it("fills in the agent defaults", () => {
    expect(validateTemplate({ image: "agentorch/busybox:test" })).toEqual({
      image: "agentorch/busybox:test",
      command: [],
      envNames: [],
      policy: "container",
      resources: { memoryBytes: DEFAULTS.memoryBytes, cpus: 1, pidsLimit: DEFAULTS.pidsLimit, maxOutputBytes: DEFAULTS.maxOutputBytes },
    });
  });

  it("keeps what is given", () => {
    const t = validateTemplate({
      image: "img:1",
      command: ["sh", "-c", "echo hi\nexit 0"],
      env: { FOO: "bar" },
      policy: "container_direct",
      resources: { memoryBytes: 64 * 1024 * 1024, cpus: 0.5, pidsLimit: 32, maxOutputBytes: 4096 },
    });
    expect(t).toEqual({
      image: "img:1",
      command: ["sh", "-c", "echo hi\nexit 0"],
      // The values are write-only: a template keeps the names (TaskStore.taskEnv has the values).
      envNames: ["FOO"],
      policy: "container_direct",
      resources: { memoryBytes: 64 * 1024 * 1024, cpus: 0.5, pidsLimit: 32, maxOutputBytes: 4096 },
    });
  });

  it.each([
    ["missing template", undefined, "template"],
    ["empty image", { image: "" }, "template.image"],
    ["image with spaces", { image: "a b" }, "template.image"],
    ["NUL in command", { image: "i", command: ["a\u0000"] }, "template.command[0]"],
    ["LD_PRELOAD", { image: "i", env: { LD_PRELOAD: "/x.so" } }, "template.env"],
    ["AGENTORCH_TASK_ID", { image: "i", env: { AGENTORCH_TASK_ID: "x" } }, "template.env"],
    ["lower-case agentorch_ name", { image: "i", env: { agentorch_goal: "x" } }, "template.env"],
    ["https_proxy", { image: "i", env: { https_proxy: "http://x" } }, "template.env"],
    ["bad env name", { image: "i", env: { "A-B": "x" } }, "template.env"],
    ["unknown policy", { image: "i", policy: "unknown" as const }, "template.policy"],
    ["tiny memory", { image: "i", resources: { memoryBytes: 1 } }, "template.resources.memory_bytes"],
    ["negative cpus", { image: "i", resources: { cpus: -1 } }, "template.resources.cpus"],
    ["fractional pids", { image: "i", resources: { pidsLimit: 1.5 } }, "template.resources.pids_limit"],
  ])("refuses %s", (_name, input, field) => {
    const f = failure(() => validateTemplate(input));
    expect(f).toMatchObject({ kind: "invalid_argument", field });
    expect(f.message.startsWith(field)).toBe(true);
  });
});

describe("buildRetryConstraints", () => {
  it("adds one feedback entry: header, output, numbered gaps", () => {
    const prev = makeTask();
    const out = buildRetryConstraints(prev, ["tests pass", "no\nnew lines"]);
    expect(out).toEqual([
      "Use Go",
      "Previous attempt failed (attempt 1, FAILED: EXIT_NONZERO, exit code 3).\n" +
        "Output:\n" +
        "step 1\nstep 2\n" +
        "\n" +
        "Unmet criteria:\n" +
        "1. tests pass\n" +
        "2. no\n   new lines",
    ]);
    expect(prev.directive.constraints).toEqual(["Use Go"]);
  });

  it("uses the previous acceptance criteria when no gaps are given", () => {
    const entry = buildRetryConstraints(makeTask(), []).at(-1);
    expect(entry?.endsWith("Unmet criteria:\n1. tests pass\n2. lint clean")).toBe(true);
  });

  it("says so when there is no output and no criteria", () => {
    const prev = makeTask({
      state: "canceled",
      stateReason: "CANCELED_BY_USER",
      attempt: 2,
      result: undefined,
      directive: { goal: "g", constraints: [], acceptanceCriteria: [], originalRequest: "" },
    });
    expect(buildRetryConstraints(prev, [])).toEqual(["Previous attempt failed (attempt 2, CANCELED: CANCELED_BY_USER).\nOutput:\n(no output)\n\nUnmet criteria:\n(none given)"]);
  });

  it("omits the exit code when the container never exited by itself", () => {
    const prev = makeTask({ stateReason: "TIMEOUT", result: { success: false, output: "slow", outputTruncated: false, durationMs: 5, dataError: "" } });
    expect(buildRetryConstraints(prev, ["x"]).at(-1)).toBe("Previous attempt failed (attempt 1, FAILED: TIMEOUT).\nOutput:\nslow\n\nUnmet criteria:\n1. x");
  });

  it("quotes only the last 8192 characters of a long output", () => {
    const output = `${"a".repeat(20_000)}${"z".repeat(100)}`;
    const prev = makeTask({ result: { success: false, exitCode: 1, output, outputTruncated: false, durationMs: 1, dataError: "" } });
    const entry = buildRetryConstraints(prev, ["x"]).at(-1) ?? "";
    const [head, rest] = entry.split("\n", 2);
    expect(head).toBe("Previous attempt failed (attempt 1, FAILED: EXIT_NONZERO, exit code 1).");
    expect(rest).toBe("Output (last 8192 characters):");
    const quoted = entry.split("\n")[2];
    expect(quoted).toBe(output.slice(-8192));
  });

  it("marks output the engine already cut", () => {
    const prev = makeTask({ result: { success: false, exitCode: 1, output: "tail", outputTruncated: true, durationMs: 1, dataError: "" } });
    expect(buildRetryConstraints(prev, ["x"]).at(-1)).toContain("\nOutput (last 4 characters):\ntail\n");
  });

  it("drops terminal escapes and carriage returns from the output", () => {
    const prev = makeTask({ result: { success: false, exitCode: 1, output: "\u001b[31mred\u001b[0m\r\nbell\u0007\rdone", outputTruncated: false, durationMs: 1, dataError: "" } });
    expect(buildRetryConstraints(prev, ["x"]).at(-1)).toContain("\nOutput:\nred\nbell\ndone\n\nUnmet criteria:");
    // The result passes the same text rules as a client's directive.
    expect(() => validateDirective({ goal: "g", constraints: buildRetryConstraints(prev, ["x"]) })).not.toThrow();
  });

  it("stacks feedback across retries", () => {
    const first = makeTask();
    const second = makeTask({ taskId: "task-2", attempt: 2, directive: { ...first.directive, constraints: buildRetryConstraints(first, ["a"]) } });
    const third = buildRetryConstraints(second, ["b"]);
    expect(third).toHaveLength(3);
    expect(third[1]).toMatch(/^Previous attempt failed \(attempt 1,/);
    expect(third[2]).toMatch(/^Previous attempt failed \(attempt 2,/);
  });

  it("shrinks the quoted output to keep the constraints within one environment variable", () => {
    const big = Array.from({ length: 14 }, () => "c".repeat(4096)); // ~57 KiB of JSON
    const output = "o".repeat(20_000);
    const prev = makeTask({ directive: { goal: "g", constraints: big, acceptanceCriteria: ["x"], originalRequest: "" }, result: { success: false, exitCode: 1, output, outputTruncated: false, durationMs: 1, dataError: "" } });
    const out = buildRetryConstraints(prev, []);
    const bytes = Buffer.byteLength(JSON.stringify(out));
    expect(bytes).toBeLessThanOrEqual(DIRECTIVE_LIMITS.envValueBytes);
    expect(bytes).toBeGreaterThan(DIRECTIVE_LIMITS.envValueBytes - 16);
    const m = /Output \(last (\d+) characters\):/.exec(out.at(-1) ?? "");
    expect(Number(m?.[1])).toBeGreaterThan(0);
    expect(Number(m?.[1])).toBeLessThan(8192);
  });

  it("refuses when even no output would not fit", () => {
    const full = Array.from({ length: 16 }, () => "c".repeat(4090));
    const prev = makeTask({ directive: { goal: "g", constraints: full, acceptanceCriteria: ["x"], originalRequest: "" } });
    expect(failure(() => buildRetryConstraints(prev, []))).toMatchObject({ kind: "failed_precondition", message: expect.stringContaining('cannot retry task "task-1"') });
  });

  it("validates the gaps", () => {
    expect(failure(() => buildRetryConstraints(makeTask(), [""]))).toMatchObject({ kind: "invalid_argument", field: "gaps[0]" });
    expect(failure(() => validateGaps(Array.from({ length: 65 }, () => "g")))).toMatchObject({ field: "gaps" });
    expect(failure(() => validateGaps(Array.from({ length: 9 }, () => "g".repeat(4000))))).toMatchObject({ field: "gaps", message: expect.stringContaining("at most 32768") });
  });
});

describe("taskEnvironment", () => {
  it("carries the directive as AGENTORCH_* variables, lists as JSON arrays", () => {
    const task = makeTask({ attempt: 2, directive: { goal: "echo \"hi\"\nbye", constraints: ["a", "b\nc"], acceptanceCriteria: [], originalRequest: "please" } });
    const env = taskEnvironment(task, "/workspace/.agentorch-result-task-1.json");
    expect(env).toEqual({
      AGENTORCH_TASK_ID: "task-1",
      AGENTORCH_GOAL: "echo \"hi\"\nbye",
      AGENTORCH_CONSTRAINTS: '["a","b\\nc"]',
      AGENTORCH_ACCEPTANCE_CRITERIA: "[]",
      AGENTORCH_ATTEMPT: "2",
      AGENTORCH_RESULT_FILE: "/workspace/.agentorch-result-task-1.json",
      AGENTORCH_ORIGINAL_REQUEST: "please",
    });
    expect(JSON.parse(env.AGENTORCH_CONSTRAINTS ?? "")).toEqual(["a", "b\nc"]);
  });

  it("places the result file in the workspace root", () => {
    expect(resultFilePaths("task-1", "/workspace")).toEqual({ relative: ".agentorch-result-task-1.json", inContainer: "/workspace/.agentorch-result-task-1.json" });
    expect(resultFilePaths("task-1", "/data/ws/").inContainer).toBe("/data/ws/.agentorch-result-task-1.json");
  });
});
