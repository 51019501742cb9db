import { describe, expect, it } from "vitest";
import {
  applyLifecycleConfigUpdate,
  DEFAULT_LIFECYCLE_CONFIG,
  type LifecycleConfig,
  validateLifecycleConfig,
} from "../../src/core/tasks/lifecycle-config.js";
import { failure } from "../support/errors.js";

const patch: LifecycleConfig = { ...DEFAULT_LIFECYCLE_CONFIG, maxExecutionTimeMs: 60_000, maxConcurrentTasks: 3, zombieTimeoutMs: 120_000, maxQueuedTasks: 50 };

describe("lifecycle config", () => {
  it("defaults to 300 s, 5 concurrent, 900 s zombie limit, 10,000 queued", () => {
    expect(DEFAULT_LIFECYCLE_CONFIG).toMatchObject({ maxExecutionTimeMs: 300_000, maxConcurrentTasks: 5, zombieTimeoutMs: 900_000, maxQueuedTasks: 10_000 });
    expect(validateLifecycleConfig({ ...DEFAULT_LIFECYCLE_CONFIG })).toEqual(DEFAULT_LIFECYCLE_CONFIG);
  });

  it("has agent ceilings: 8 GiB, the host's cores, 4096 pids, 64 MiB output, 10 GiB disk, 1 core by default", () => {
    expect(DEFAULT_LIFECYCLE_CONFIG).toMatchObject({
      maxAgentMemoryBytes: 8 * 1024 ** 3,
      maxAgentPids: 4096,
      maxAgentOutputBytes: 64 * 1024 ** 2,
      maxAgentDiskBytes: 10 * 1024 ** 3,
      defaultAgentCpus: 1,
    });
    expect(DEFAULT_LIFECYCLE_CONFIG.maxAgentCpus).toBeGreaterThanOrEqual(1);
  });

  it("takes fractional CPUs, refuses below 0.01 and a default above the ceiling, naming the field", () => {
    const base = { ...DEFAULT_LIFECYCLE_CONFIG, maxAgentCpus: 2 };
    expect(applyLifecycleConfigUpdate(base, { ...base, maxAgentCpus: 0.5, defaultAgentCpus: 0.25 }, ["max_agent_cpus", "default_agent_cpus"])).toMatchObject({
      maxAgentCpus: 0.5,
      defaultAgentCpus: 0.25,
    });
    expect(failure(() => applyLifecycleConfigUpdate(base, { ...base, maxAgentCpus: 1e-12 }, ["max_agent_cpus"])).field).toBe("max_agent_cpus");
    expect(failure(() => applyLifecycleConfigUpdate(base, { ...base, defaultAgentCpus: 3 }, ["default_agent_cpus"])).field).toBe("default_agent_cpus");
    expect(failure(() => applyLifecycleConfigUpdate(base, { ...base, maxAgentPids: 1.5 }, ["max_agent_pids"])).field).toBe("max_agent_pids");
  });

  it("changes only the fields the mask names", () => {
    expect(applyLifecycleConfigUpdate(DEFAULT_LIFECYCLE_CONFIG, patch, ["max_concurrent_tasks"])).toEqual({ ...DEFAULT_LIFECYCLE_CONFIG, maxConcurrentTasks: 3 });
    expect(applyLifecycleConfigUpdate(DEFAULT_LIFECYCLE_CONFIG, patch, ["max_execution_time", "zombie_timeout", "max_queued_tasks"])).toEqual({
      ...DEFAULT_LIFECYCLE_CONFIG,
      maxExecutionTimeMs: 60_000,
      maxConcurrentTasks: 5,
      zombieTimeoutMs: 120_000,
      maxQueuedTasks: 50,
    });
  });

  it("refuses an empty, unknown or repeated mask path", () => {
    expect(failure(() => applyLifecycleConfigUpdate(DEFAULT_LIFECYCLE_CONFIG, patch, []))).toMatchObject({ kind: "invalid_argument", field: "update_mask" });
    expect(failure(() => applyLifecycleConfigUpdate(DEFAULT_LIFECYCLE_CONFIG, patch, ["maxConcurrentTasks"]))).toMatchObject({
      field: "update_mask",
      message: expect.stringContaining('unknown field "maxConcurrentTasks"'),
    });
    expect(failure(() => applyLifecycleConfigUpdate(DEFAULT_LIFECYCLE_CONFIG, patch, ["toString"]))).toMatchObject({ field: "update_mask" });
    expect(failure(() => applyLifecycleConfigUpdate(DEFAULT_LIFECYCLE_CONFIG, patch, ["max_queued_tasks", "max_queued_tasks"]))).toMatchObject({ field: "update_mask" });
  });

  it.each([
    ["max_concurrent_tasks", { maxConcurrentTasks: 0 }],
    ["max_concurrent_tasks", { maxConcurrentTasks: 1001 }],
    ["max_concurrent_tasks", { maxConcurrentTasks: 1.5 }],
    ["max_execution_time", { maxExecutionTimeMs: 999 }],
    ["max_execution_time", { maxExecutionTimeMs: 8 * 24 * 3600 * 1000 }],
    ["max_queued_tasks", { maxQueuedTasks: 0 }],
    ["zombie_timeout", { zombieTimeoutMs: 31 * 24 * 3600 * 1000 }],
  ])("refuses %s out of range", (field, over) => {
    expect(failure(() => applyLifecycleConfigUpdate(DEFAULT_LIFECYCLE_CONFIG, { ...DEFAULT_LIFECYCLE_CONFIG, ...over }, [field]))).toMatchObject({
      kind: "invalid_argument",
      field,
    });
  });

  it("keeps the zombie limit at least the execution limit, checked on the result", () => {
    expect(failure(() => applyLifecycleConfigUpdate(DEFAULT_LIFECYCLE_CONFIG, { ...patch, maxExecutionTimeMs: 1_000_000 }, ["max_execution_time"]))).toMatchObject({
      field: "zombie_timeout",
    });
    // Both raised in one update is fine.
    expect(
      applyLifecycleConfigUpdate(DEFAULT_LIFECYCLE_CONFIG, { ...patch, maxExecutionTimeMs: 1_000_000, zombieTimeoutMs: 2_000_000 }, ["max_execution_time", "zombie_timeout"]),
    ).toMatchObject({ maxExecutionTimeMs: 1_000_000, zombieTimeoutMs: 2_000_000 });
  });
});
