/**
 * Task proto <-> domain mapping: every field survives the wire (binary and JSON), enums
 * and durations are converted exactly, and what cannot be represented is INVALID_ARGUMENT
 * naming the field, never silently changed.
 */
import { create, fromBinary, fromJsonString, type MessageInitShape, toBinary, toJsonString } from "@bufbuild/protobuf";
import { DurationSchema, durationFromMs, durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SandboxPolicy as SandboxPolicyProto } from "../../gen/agentorch/v1/agent_pb.js";
import { type SubmitTaskRequest, SubmitTaskRequestSchema } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import {
  LifecycleConfigSchema,
  type Task as TaskProto,
  TaskPriority as TaskPriorityProto,
  TaskSchema,
  TaskState as TaskStateProto,
} from "../../gen/agentorch/v1/task_pb.js";
import {
  lifecycleConfigPatchFromProto,
  lifecycleConfigToProto,
  submitTaskInputFromProto,
  taskTemplateFromProto,
  taskTemplateToProto,
  taskToProto,
} from "../../src/api/task-mapping.js";
import { taskPriorityFromProto, taskPriorityToProto, taskStateFromProto, taskStateToProto } from "../../src/api/enums.js";
import { type AgentorchError, isAgentorchError } from "../../src/core/errors.js";
import { validateTemplate } from "../../src/core/tasks/directive.js";
import { DEFAULT_LIFECYCLE_CONFIG, type LifecycleConfig } from "../../src/core/tasks/lifecycle-config.js";
import { type Task, TASK_PRIORITIES, TASK_STATES, type TaskTemplate } from "../../src/core/tasks/task.js";

/** A finished retry with no field at its default, so a dropped field shows. */
function fullTask(): Task {
  const template: TaskTemplate = {
    image: "agentorch/busybox:test",
    command: ["sh", "-c", "echo hi"],
    envNames: ["EMPTY", "FOO"],
    policy: "container_direct",
    resources: { memoryBytes: 64 * 1024 * 1024, cpus: 0.5, pidsLimit: 32, maxOutputBytes: 4096 },
  };
  return {
    taskId: "task-1",
    agentId: "eph-1",
    directive: { goal: "do it", constraints: ["be brief", "line\nbreak"], acceptanceCriteria: ["prints ok"], originalRequest: "please" },
    priority: "critical",
    state: "failed",
    stateReason: "TIMEOUT",
    stateMessage: "timed out after 2000 ms",
    attempt: 2,
    parentTaskId: "task-0",
    createdAt: 1_700_000_000_123,
    startedAt: 1_700_000_001_456,
    finishedAt: 1_700_000_003_789,
    result: {
      success: false,
      exitCode: 0,
      output: "partial ✓\n",
      outputTruncated: true,
      durationMs: 2_333,
      data: { steps: 2, nested: { list: [1, "two", true, null], empty: {} }, neg: -1.5 },
      dataError: "",
    },
    timeoutMs: 2_000,
    requestedTimeoutMs: 5_000,
    template,
    ephemeral: true,
    containerId: "c0ffee",
    seq: 42,
  };
}

function expectInvalid(fn: () => unknown, field: string): AgentorchError {
  try {
    fn();
  } catch (err) {
    expect(isAgentorchError(err, "invalid_argument"), String(err)).toBe(true);
    expect((err as AgentorchError).details.field).toBe(field);
    return err as AgentorchError;
  }
  throw new Error(`expected INVALID_ARGUMENT naming ${field}`);
}

/** What a client decodes, over binary and over JSON. */
function overTheWire(t: TaskProto): TaskProto[] {
  return [fromBinary(TaskSchema, toBinary(TaskSchema, t)), fromJsonString(TaskSchema, toJsonString(TaskSchema, t))];
}

describe("taskToProto", () => {
  it("carries every field across binary and JSON", () => {
    const task = fullTask();
    for (const p of overTheWire(taskToProto(task))) {
      expect(p.taskId).toBe("task-1");
      expect(p.agentId).toBe("eph-1");
      expect(p.directive).toMatchObject({ goal: "do it", constraints: ["be brief", "line\nbreak"], acceptanceCriteria: ["prints ok"], originalRequest: "please" });
      expect(p.priority).toBe(TaskPriorityProto.CRITICAL);
      expect(p.state).toBe(TaskStateProto.FAILED);
      expect(p.stateReason).toBe("TIMEOUT");
      expect(p.stateMessage).toBe("timed out after 2000 ms");
      expect(p.attempt).toBe(2);
      expect(p.parentTaskId).toBe("task-0");
      expect(timestampMs(p.createdAt!)).toBe(task.createdAt);
      expect(timestampMs(p.startedAt!)).toBe(task.startedAt);
      expect(timestampMs(p.finishedAt!)).toBe(task.finishedAt);
      expect(durationMs(p.timeout!)).toBe(2_000);
      expect(p.ephemeral).toBe(true);
      expect(p.containerId).toBe("c0ffee");
      const r = p.result!;
      // exit_code is optional: 0 is present, not "unset".
      expect(r.exitCode).toBe(0);
      expect(r).toMatchObject({ success: false, output: "partial ✓\n", outputTruncated: true, dataError: "" });
      expect(durationMs(r.duration!)).toBe(2_333);
      expect(r.data).toEqual(task.result!.data);
      expect(p.template).toMatchObject({ image: "agentorch/busybox:test", command: ["sh", "-c", "echo hi"], env: {}, envNames: ["EMPTY", "FOO"] });
      expect(p.template!.policy).toBe(SandboxPolicyProto.CONTAINER_DIRECT);
      expect(p.template!.resources).toMatchObject({ memoryBytes: 64n * 1024n * 1024n, cpus: 0.5, pidsLimit: 32n, maxOutputBytes: 4096n });
    }
  });

  it("leaves unset what a waiting task does not have yet", () => {
    const { result: _r, startedAt: _s, finishedAt: _f, stateReason: _sr, parentTaskId: _p, template: _t, ...rest } = fullTask();
    const waiting: Task = { ...rest, state: "submitted", stateMessage: "", attempt: 1, timeoutMs: 0, ephemeral: false, containerId: "" };
    for (const p of overTheWire(taskToProto(waiting))) {
      expect(p.startedAt).toBeUndefined();
      expect(p.finishedAt).toBeUndefined();
      expect(p.result).toBeUndefined();
      expect(p.timeout).toBeUndefined(); // none was asked for
      expect(p.template).toBeUndefined();
      expect(p.stateReason).toBe("");
      expect(p.parentTaskId).toBe("");
      expect(p.state).toBe(TaskStateProto.SUBMITTED);
    }
  });

  it("leaves exit_code and data unset when the container never exited by itself or wrote no result", () => {
    const task = fullTask();
    task.result = { success: false, output: "", outputTruncated: false, durationMs: 0, dataError: "result file is not valid JSON" };
    for (const p of overTheWire(taskToProto(task))) {
      expect(p.result!.exitCode).toBeUndefined();
      expect(p.result!.data).toBeUndefined();
      expect(p.result!.dataError).toBe("result file is not valid JSON");
    }
  });
});

describe("enums", () => {
  it("maps every priority and state both ways, each to a distinct value", () => {
    expect(new Set(TASK_PRIORITIES.map(taskPriorityToProto)).size).toBe(TASK_PRIORITIES.length);
    for (const p of TASK_PRIORITIES) expect(taskPriorityFromProto(taskPriorityToProto(p))).toBe(p);
    expect(new Set(TASK_STATES.map(taskStateToProto)).size).toBe(TASK_STATES.length);
    for (const s of TASK_STATES) expect(taskStateFromProto(taskStateToProto(s))).toBe(s);
    expect(taskStateToProto("canceled")).toBe(TaskStateProto.CANCELED);
    expect(taskPriorityToProto("low")).toBe(TaskPriorityProto.LOW);
  });

  it("reads UNSPECIFIED as NORMAL priority and as no state filter", () => {
    expect(taskPriorityFromProto(TaskPriorityProto.UNSPECIFIED)).toBe("normal");
    expect(taskStateFromProto(TaskStateProto.UNSPECIFIED)).toBeUndefined();
  });

  it("refuses numbers this build does not know", () => {
    for (const n of [5, 99, -1]) {
      expect(expectInvalid(() => taskPriorityFromProto(n as TaskPriorityProto), "priority").message).toContain(String(n));
      expectInvalid(() => taskStateFromProto(n === 5 ? (7 as TaskStateProto) : (n as TaskStateProto)), "state");
    }
  });
});

describe("submitTaskInputFromProto", () => {
  const directive = { goal: "g", constraints: ["c"], acceptanceCriteria: ["a"], originalRequest: "r" };

  it("takes an agent target, the directive, priority and timeout", () => {
    const req = create(SubmitTaskRequestSchema, {
      directive,
      target: { case: "agentId", value: "worker" },
      priority: TaskPriorityProto.HIGH,
      timeout: { seconds: 1n, nanos: 500_000_000 },
    });
    expect(submitTaskInputFromProto(req)).toEqual({
      directive: { goal: "g", constraints: ["c"], acceptanceCriteria: ["a"], originalRequest: "r" },
      agentId: "worker",
      priority: "high",
      timeoutMs: 1_500,
    });
  });

  it("takes a template target; no timeout is 0 (max_execution_time); no directive is left for the core to refuse", () => {
    const req = create(SubmitTaskRequestSchema, {
      target: {
        case: "template",
        value: { image: "img", command: ["sh"], env: { A: "1" }, policy: SandboxPolicyProto.CONTAINER, resources: { memoryBytes: 1n << 30n, cpus: 1, pidsLimit: 10n, maxOutputBytes: 0n } },
      },
    });
    const input = submitTaskInputFromProto(req);
    expect(input).toMatchObject({ directive: undefined, priority: "normal", timeoutMs: 0 });
    expect(input.agentId).toBeUndefined();
    expect(input.template).toEqual({
      image: "img",
      command: ["sh"],
      env: { A: "1" },
      policy: "container",
      resources: { memoryBytes: 1 << 30, cpus: 1, pidsLimit: 10, maxOutputBytes: 0, diskBytes: 0 },
    });
  });

  it("names neither target when none is given", () => {
    const input = submitTaskInputFromProto(create(SubmitTaskRequestSchema, { directive }));
    expect(input.agentId).toBeUndefined();
    expect(input.template).toBeUndefined();
  });

  it("keeps a timeout exact to the millisecond and rounds a sub-millisecond one up, never to 0", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 * 24 * 3600 * 1000 }), (ms) => {
        const req = create(SubmitTaskRequestSchema, { directive, timeout: durationFromMs(ms) });
        return submitTaskInputFromProto(req).timeoutMs === ms;
      }),
    );
    const tiny = create(SubmitTaskRequestSchema, { directive, timeout: { seconds: 0n, nanos: 1 } });
    expect(submitTaskInputFromProto(tiny).timeoutMs).toBe(1);
  });

  it("refuses a negative or malformed timeout and an unknown priority, naming the field", () => {
    const bad = (init: Omit<Exclude<MessageInitShape<typeof SubmitTaskRequestSchema>, SubmitTaskRequest>, "directive">) => () =>
      submitTaskInputFromProto(create(SubmitTaskRequestSchema, { directive, ...init }));
    expectInvalid(bad({ timeout: { seconds: -1n, nanos: 0 } }), "timeout");
    expectInvalid(bad({ timeout: { seconds: 0n, nanos: -5 } }), "timeout");
    expectInvalid(bad({ timeout: { seconds: 1n, nanos: 1_000_000_000 } }), "timeout");
    expectInvalid(bad({ timeout: create(DurationSchema, { seconds: 1n << 62n }) }), "timeout");
    expectInvalid(bad({ priority: 9 as TaskPriorityProto }), "priority");
  });

  it("refuses template int64s that a JS number cannot hold exactly, naming the template field", () => {
    const req = create(SubmitTaskRequestSchema, {
      directive,
      target: { case: "template", value: { image: "img", resources: { memoryBytes: 1n << 60n } } },
    });
    expectInvalid(() => submitTaskInputFromProto(req), "template.resources.memory_bytes");
    const neg = create(SubmitTaskRequestSchema, {
      directive,
      target: { case: "template", value: { image: "img", resources: { pidsLimit: -1n } } },
    });
    expectInvalid(() => submitTaskInputFromProto(neg), "template.resources.pids_limit");
  });

  it("marks a policy number it does not know for the core to refuse", () => {
    const t = taskTemplateFromProto(create(SubmitTaskRequestSchema, { target: { case: "template", value: { image: "i", policy: 7 as SandboxPolicyProto } } }).target.value as never);
    expect(t.policy).toBe("unknown");
    expectInvalid(() => validateTemplate(t), "template.policy");
  });
});

describe("templates", () => {
  it("a validated template survives proto and back unchanged", () => {
    const t = fullTask().template!;
    // env is write-only: names come back, values never do.
    expect(validateTemplate(taskTemplateFromProto(taskTemplateToProto(t)))).toEqual({ ...t, envNames: [] });
  });
});

describe("lifecycle config", () => {
  const current: LifecycleConfig = { ...DEFAULT_LIFECYCLE_CONFIG };
  const all = ["max_execution_time", "max_concurrent_tasks", "zombie_timeout", "max_queued_tasks", "max_agent_memory_bytes", "max_agent_cpus", "max_agent_pids", "max_agent_output_bytes", "max_agent_disk_bytes", "default_agent_cpus"];

  it("round-trips through the proto with every path masked", () => {
    const c: LifecycleConfig = {
      maxExecutionTimeMs: 1_500,
      maxConcurrentTasks: 3,
      zombieTimeoutMs: 86_400_000,
      maxQueuedTasks: 7,
      maxAgentMemoryBytes: 3 * 1024 ** 3,
      maxAgentCpus: 2.5,
      maxAgentPids: 99,
      maxAgentOutputBytes: 4096,
      maxAgentDiskBytes: 5 * 1024 ** 2,
      defaultAgentCpus: 0.5,
    };
    const wire = fromBinary(LifecycleConfigSchema, toBinary(LifecycleConfigSchema, lifecycleConfigToProto(c)));
    expect(durationMs(wire.maxExecutionTime!)).toBe(1_500);
    expect(lifecycleConfigPatchFromProto(wire, all, current)).toEqual(c);
  });

  it("takes only the masked fields, and ignores (does not even convert) the others", () => {
    const config = create(LifecycleConfigSchema, {
      maxExecutionTime: { seconds: -5n },
      maxConcurrentTasks: 1,
      zombieTimeout: { seconds: 0n, nanos: -1 },
      maxQueuedTasks: 2,
    });
    expect(lifecycleConfigPatchFromProto(config, ["max_concurrent_tasks"], current)).toEqual({ ...current, maxConcurrentTasks: 1 });
    expectInvalid(() => lifecycleConfigPatchFromProto(config, ["max_execution_time"], current), "config.max_execution_time");
    expectInvalid(() => lifecycleConfigPatchFromProto(config, ["zombie_timeout"], current), "config.zombie_timeout");
  });

  it("reads a masked but unset duration as 0 and leaves unknown paths to the core", () => {
    const config = create(LifecycleConfigSchema, {});
    expect(lifecycleConfigPatchFromProto(config, ["zombie_timeout", "bogus"], current)).toEqual({ ...current, zombieTimeoutMs: 0 });
  });
});
