/**
 * Proto <-> domain mapping for tasks (LifecycleService). Only shape conversions happen
 * here (scalars in ./proto-scalars.ts, enums in ./enums.ts); every rule about what a valid
 * directive, template or limit is stays in the core (src/core/tasks/), so a value the
 * core refuses is passed through for it to refuse.
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import { type Duration, durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Resources as ResourcesProto, ResourcesSchema } from "../../gen/agentorch/v1/agent_pb.js";
import type { SubmitTaskRequest } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import {
  type Directive as DirectiveProto,
  DirectiveSchema,
  type LifecycleConfig as LifecycleConfigProto,
  LifecycleConfigSchema,
  type Task as TaskProto,
  type TaskResult as TaskResultProto,
  TaskResultSchema,
  TaskSchema,
  type TaskTemplate as TaskTemplateProto,
  TaskTemplateSchema,
} from "../../gen/agentorch/v1/task_pb.js";
import type { Resources } from "../core/agent.js";
import type { DirectiveInput, TaskTemplateInput } from "../core/tasks/directive.js";
import { LIFECYCLE_CONFIG_PATHS, type LifecycleConfig } from "../core/tasks/lifecycle-config.js";
import type { Directive, Task, TaskResult, TaskTemplate } from "../core/tasks/task.js";
import type { SubmitTaskInput } from "../core/tasks/task-service.js";
import { policyFromProto, policyToProto, taskPriorityFromProto, taskPriorityToProto, taskStateToProto } from "./enums.js";
import { durationToMs, int64ToNumber } from "./proto-scalars.js";

/** Resource limits as the core takes them; int64s that do not fit a JS number are INVALID_ARGUMENT naming the field. */
export function resourcesFromProto(r: ResourcesProto, prefix = "resources"): NonNullable<TaskTemplateInput["resources"]> {
  return {
    memoryBytes: int64ToNumber(r.memoryBytes, `${prefix}.memory_bytes`),
    cpus: r.cpus,
    pidsLimit: int64ToNumber(r.pidsLimit, `${prefix}.pids_limit`),
    maxOutputBytes: int64ToNumber(r.maxOutputBytes, `${prefix}.max_output_bytes`),
    diskBytes: int64ToNumber(r.diskBytes, `${prefix}.disk_bytes`),
  };
}

/** Validated resource limits as the client sees them. */
export function resourcesToProto(r: Resources): ResourcesProto {
  return create(ResourcesSchema, {
    memoryBytes: BigInt(r.memoryBytes),
    cpus: r.cpus,
    pidsLimit: BigInt(r.pidsLimit),
    maxOutputBytes: BigInt(r.maxOutputBytes),
    diskBytes: BigInt(r.diskBytes ?? 0),
  });
}

/** A directive as the core takes it; a missing one stays undefined for the core to refuse. */
export function directiveFromProto(d: DirectiveProto | undefined): DirectiveInput | undefined {
  if (d === undefined) return undefined;
  return {
    goal: d.goal,
    constraints: [...d.constraints],
    acceptanceCriteria: [...d.acceptanceCriteria],
    originalRequest: d.originalRequest,
  };
}

/** A stored directive as the client sees it. */
export function directiveToProto(d: Directive): DirectiveProto {
  return create(DirectiveSchema, {
    goal: d.goal,
    constraints: [...d.constraints],
    acceptanceCriteria: [...d.acceptanceCriteria],
    originalRequest: d.originalRequest,
  });
}

/** A template as the core takes it (fields named "template.…" in errors). */
export function taskTemplateFromProto(t: TaskTemplateProto): TaskTemplateInput {
  return {
    image: t.image,
    command: [...t.command],
    env: { ...t.env },
    policy: policyFromProto(t.policy),
    resources: t.resources === undefined ? undefined : resourcesFromProto(t.resources, "template.resources"),
  };
}

/** A validated template (defaults filled in) as the client sees it. */
export function taskTemplateToProto(t: TaskTemplate): TaskTemplateProto {
  return create(TaskTemplateSchema, {
    image: t.image,
    command: [...t.command],
    // Write-only, as an agent's env: names only.
    envNames: [...t.envNames],
    policy: policyToProto(t.policy),
    resources: resourcesToProto(t.resources),
  });
}

/** A task's result; data (parsed JSON of the result file) becomes a google.protobuf.Struct. */
export function taskResultToProto(r: TaskResult): TaskResultProto {
  return create(TaskResultSchema, {
    success: r.success,
    exitCode: r.exitCode,
    output: r.output,
    outputTruncated: r.outputTruncated,
    duration: durationFromMs(r.durationMs),
    // The core parsed it with JSON.parse and checked it is an object: it is JSON by construction.
    data: r.data === undefined ? undefined : (r.data as JsonObject),
    dataError: r.dataError,
  });
}

/** A task as the client sees it; the scheduling sequence and requested timeout stay internal. */
export function taskToProto(t: Task): TaskProto {
  return create(TaskSchema, {
    taskId: t.taskId,
    agentId: t.agentId,
    directive: directiveToProto(t.directive),
    priority: taskPriorityToProto(t.priority),
    state: taskStateToProto(t.state),
    stateReason: t.stateReason ?? "",
    stateMessage: t.stateMessage,
    attempt: t.attempt,
    parentTaskId: t.parentTaskId ?? "",
    createdAt: timestampFromMs(t.createdAt),
    startedAt: t.startedAt === undefined ? undefined : timestampFromMs(t.startedAt),
    finishedAt: t.finishedAt === undefined ? undefined : timestampFromMs(t.finishedAt),
    result: t.result === undefined ? undefined : taskResultToProto(t.result),
    // Before start: as submitted (0 = none asked for: unset); from start: the limit it runs under.
    timeout: t.timeoutMs > 0 ? durationFromMs(t.timeoutMs) : undefined,
    template: t.template === undefined ? undefined : taskTemplateToProto(t.template),
    ephemeral: t.ephemeral,
    containerId: t.containerId,
  });
}

/** The core's submit input from a SubmitTask request. */
export function submitTaskInputFromProto(req: SubmitTaskRequest): SubmitTaskInput {
  const input: SubmitTaskInput = {
    directive: directiveFromProto(req.directive),
    priority: taskPriorityFromProto(req.priority),
    timeoutMs: req.timeout === undefined ? 0 : durationToMs(req.timeout, "timeout"),
  };
  if (req.target.case === "agentId") input.agentId = req.target.value;
  else if (req.target.case === "template") input.template = taskTemplateFromProto(req.target.value);
  return input;
}

/** The limits in force as the client sees them. */
export function lifecycleConfigToProto(c: LifecycleConfig): LifecycleConfigProto {
  return create(LifecycleConfigSchema, {
    maxExecutionTime: durationFromMs(c.maxExecutionTimeMs),
    maxConcurrentTasks: c.maxConcurrentTasks,
    zombieTimeout: durationFromMs(c.zombieTimeoutMs),
    maxQueuedTasks: c.maxQueuedTasks,
    maxAgentMemoryBytes: BigInt(c.maxAgentMemoryBytes),
    maxAgentCpus: c.maxAgentCpus,
    maxAgentPids: BigInt(c.maxAgentPids),
    maxAgentOutputBytes: BigInt(c.maxAgentOutputBytes),
    maxAgentDiskBytes: BigInt(c.maxAgentDiskBytes),
    defaultAgentCpus: c.defaultAgentCpus,
  });
}

/**
 * The patch UpdateLifecycleConfig asks for: current values, with the fields named in
 * paths taken from config. Only masked fields are converted (the others are ignored, as
 * the proto says); an unset masked Duration is 0, which the core refuses as out of range.
 * Unknown or repeated paths are left for the core to refuse.
 */
export function lifecycleConfigPatchFromProto(
  config: LifecycleConfigProto,
  paths: readonly string[],
  current: LifecycleConfig,
): LifecycleConfig {
  const patch = { ...current };
  const ms = (d: Duration | undefined, field: string) => (d === undefined ? 0 : durationToMs(d, field));
  for (const path of paths) {
    if (path === "max_execution_time") patch[LIFECYCLE_CONFIG_PATHS[path]] = ms(config.maxExecutionTime, "config.max_execution_time");
    else if (path === "zombie_timeout") patch[LIFECYCLE_CONFIG_PATHS[path]] = ms(config.zombieTimeout, "config.zombie_timeout");
    else if (path === "max_concurrent_tasks") patch[LIFECYCLE_CONFIG_PATHS[path]] = config.maxConcurrentTasks;
    else if (path === "max_queued_tasks") patch[LIFECYCLE_CONFIG_PATHS[path]] = config.maxQueuedTasks;
    else if (path === "max_agent_memory_bytes") patch.maxAgentMemoryBytes = int64ToNumber(config.maxAgentMemoryBytes, "config.max_agent_memory_bytes");
    else if (path === "max_agent_cpus") patch.maxAgentCpus = config.maxAgentCpus;
    else if (path === "max_agent_pids") patch.maxAgentPids = int64ToNumber(config.maxAgentPids, "config.max_agent_pids");
    else if (path === "max_agent_output_bytes") patch.maxAgentOutputBytes = int64ToNumber(config.maxAgentOutputBytes, "config.max_agent_output_bytes");
    else if (path === "max_agent_disk_bytes") patch.maxAgentDiskBytes = int64ToNumber(config.maxAgentDiskBytes, "config.max_agent_disk_bytes");
    else if (path === "default_agent_cpus") patch.defaultAgentCpus = config.defaultAgentCpus;
  }
  return patch;
}
