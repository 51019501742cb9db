/**
 * The task limits an operator changes while the service runs (UpdateLifecycleConfig):
 * defaults, ranges, and applying a field-mask update. One place, so the API handler, the
 * stored copy and the scheduler agree on what is valid.
 */
import { availableParallelism } from "node:os";
import { type AgentCeilings, CEILING_RANGES, DEFAULT_AGENT_CEILINGS } from "../agent-ceilings.js";
import { invalidArgument } from "../errors.js";

/** Durations in milliseconds. The agent ceilings (what an operator may ask of a container) are changed here too. */
export interface LifecycleConfig extends AgentCeilings {
  maxExecutionTimeMs: number;
  maxConcurrentTasks: number;
  zombieTimeoutMs: number;
  maxQueuedTasks: number;
}

export const DEFAULT_LIFECYCLE_CONFIG: Readonly<LifecycleConfig> = {
  maxExecutionTimeMs: 300_000,
  maxConcurrentTasks: 5,
  zombieTimeoutMs: 900_000,
  maxQueuedTasks: 10_000,
  ...DEFAULT_AGENT_CEILINGS,
  // The host's cores: no agent may ask for more than the machine has.
  maxAgentCpus: availableParallelism(),
};

const SECOND = 1000;
const DAY = 24 * 3600 * SECOND;

/** Field-mask paths (proto field names) and the domain field each one sets. */
export const LIFECYCLE_CONFIG_PATHS = {
  max_execution_time: "maxExecutionTimeMs",
  max_concurrent_tasks: "maxConcurrentTasks",
  zombie_timeout: "zombieTimeoutMs",
  max_queued_tasks: "maxQueuedTasks",
  max_agent_memory_bytes: "maxAgentMemoryBytes",
  max_agent_cpus: "maxAgentCpus",
  max_agent_pids: "maxAgentPids",
  max_agent_output_bytes: "maxAgentOutputBytes",
  max_agent_disk_bytes: "maxAgentDiskBytes",
  default_agent_cpus: "defaultAgentCpus",
} as const satisfies Record<string, keyof LifecycleConfig>;

const RANGES: Readonly<Record<keyof LifecycleConfig, readonly [field: string, min: number, max: number]>> = {
  maxExecutionTimeMs: ["max_execution_time", SECOND, 7 * DAY],
  maxConcurrentTasks: ["max_concurrent_tasks", 1, 1000],
  zombieTimeoutMs: ["zombie_timeout", SECOND, 30 * DAY],
  maxQueuedTasks: ["max_queued_tasks", 1, 1_000_000],
  ...CEILING_RANGES,
};

/** Fields that take fractions (CPU cores); every other one is a whole number. */
const FRACTIONAL: ReadonlySet<keyof LifecycleConfig> = new Set(["maxAgentCpus", "defaultAgentCpus"]);

/** Throws INVALID_ARGUMENT naming the field unless every value is in range and zombie_timeout >= max_execution_time. */
export function validateLifecycleConfig(c: LifecycleConfig): LifecycleConfig {
  for (const key of Object.keys(RANGES) as (keyof LifecycleConfig)[]) {
    const [field, min, max] = RANGES[key];
    const v = c[key];
    const wellFormed = FRACTIONAL.has(key) ? Number.isFinite(v) : Number.isSafeInteger(v);
    if (!wellFormed || v < min || v > max) {
      throw invalidArgument(`${field} must be between ${min} and ${max}${key.endsWith("Ms") ? " ms" : ""} (got ${v})`, { field });
    }
  }
  // A zombie is a task that outran every timeout; a shorter zombie limit would reap healthy tasks.
  if (c.zombieTimeoutMs < c.maxExecutionTimeMs) {
    throw invalidArgument(`zombie_timeout (${c.zombieTimeoutMs} ms) must be at least max_execution_time (${c.maxExecutionTimeMs} ms)`, {
      field: "zombie_timeout",
    });
  }
  if (c.defaultAgentCpus > c.maxAgentCpus) {
    throw invalidArgument(`default_agent_cpus (${c.defaultAgentCpus}) may not be above max_agent_cpus (${c.maxAgentCpus})`, { field: "default_agent_cpus" });
  }
  return { ...c };
}

/**
 * current with the fields named by paths taken from patch, validated as a whole.
 * An empty mask, an unknown or repeated path is INVALID_ARGUMENT (nothing changes).
 */
export function applyLifecycleConfigUpdate(current: LifecycleConfig, patch: LifecycleConfig, paths: readonly string[]): LifecycleConfig {
  if (paths.length === 0) {
    throw invalidArgument(`update_mask is required: name the fields to change (${Object.keys(LIFECYCLE_CONFIG_PATHS).join(", ")})`, {
      field: "update_mask",
    });
  }
  const next = { ...current };
  const seen = new Set<string>();
  for (const path of paths) {
    if (!Object.hasOwn(LIFECYCLE_CONFIG_PATHS, path)) {
      throw invalidArgument(`update_mask: unknown field ${JSON.stringify(path)}; known: ${Object.keys(LIFECYCLE_CONFIG_PATHS).join(", ")}`, {
        field: "update_mask",
      });
    }
    if (seen.has(path)) throw invalidArgument(`update_mask names ${path} twice`, { field: "update_mask" });
    seen.add(path);
    const key = LIFECYCLE_CONFIG_PATHS[path as keyof typeof LIFECYCLE_CONFIG_PATHS];
    next[key] = patch[key];
  }
  return validateLifecycleConfig(next);
}
