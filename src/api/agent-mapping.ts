/**
 * Proto <-> domain mapping for agents. Only shape and number conversions happen here
 * (int64, Duration, enums); every rule about what a valid configuration is stays in the
 * core (src/core/agent-config.ts), so a value the core refuses is passed through for it to refuse.
 */
import { create } from "@bufbuild/protobuf";
import { type Duration, durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type Agent as AgentProto,
  AgentConfigSchema,
  type AgentConfig as AgentConfigProto,
  AgentSchema,
  AgentStatus as AgentStatusProto,
  SandboxPolicy as SandboxPolicyProto,
} from "../../gen/agentorch/v1/agent_pb.js";
import type { Agent, AgentConfig, AgentStatus, SandboxPolicy } from "../core/agent.js";
import { type AgentConfigInput, LIMITS } from "../core/agent-config.js";
import { invalidArgument } from "../core/errors.js";
import type { WatchItemType } from "../core/watch.js";
import { EventType } from "../../gen/agentorch/v1/events_pb.js";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const NANOS_PER_MS = 1_000_000n;

const STATUS_TO_PROTO: Readonly<Record<AgentStatus, AgentStatusProto>> = {
  idle: AgentStatusProto.IDLE,
  starting: AgentStatusProto.STARTING,
  running: AgentStatusProto.RUNNING,
  stopping: AgentStatusProto.STOPPING,
  failed: AgentStatusProto.FAILED,
  terminated: AgentStatusProto.TERMINATED,
};

const STATUS_FROM_PROTO: ReadonlyMap<number, AgentStatus> = new Map(
  Object.entries(STATUS_TO_PROTO).map(([domain, proto]) => [proto, domain as AgentStatus]),
);

const POLICY_TO_PROTO: Readonly<Record<SandboxPolicy, SandboxPolicyProto>> = {
  container: SandboxPolicyProto.CONTAINER,
  container_direct: SandboxPolicyProto.CONTAINER_DIRECT,
};

/**
 * A non-negative int64 as a JS number; INVALID_ARGUMENT naming the field when it is
 * negative or too large to be exact, rather than silently losing precision.
 */
export function int64ToNumber(value: bigint, field: string): number {
  if (value < 0n || value > MAX_SAFE) {
    throw invalidArgument(`${field} must be between 0 and ${Number.MAX_SAFE_INTEGER} (got ${value})`, { field });
  }
  return Number(value);
}

/**
 * A Duration as whole milliseconds, rounded up so that a tiny non-zero duration never
 * becomes 0 (which means "no limit"). Negative, malformed, or longer than the core's
 * LIMITS.maxDurationMs: INVALID_ARGUMENT naming the field.
 */
export function durationToMs(d: Duration, field: string): number {
  if (!Number.isInteger(d.nanos) || Math.abs(d.nanos) > 999_999_999) {
    throw invalidArgument(`${field}: nanos must be between -999999999 and 999999999 (got ${d.nanos})`, { field });
  }
  if (d.seconds < 0n || d.nanos < 0) throw invalidArgument(`${field} may not be negative`, { field });
  const nanos = d.seconds * 1_000_000_000n + BigInt(d.nanos);
  const ms = (nanos + NANOS_PER_MS - 1n) / NANOS_PER_MS;
  if (ms > BigInt(LIMITS.maxDurationMs)) {
    throw invalidArgument(`${field} may be at most ${LIMITS.maxDurationMs / 1000} seconds`, { field });
  }
  return Number(ms);
}

/** The core's input from a RegisterAgent request's config. Missing config: INVALID_ARGUMENT. */
export function agentConfigFromProto(config: AgentConfigProto | undefined): AgentConfigInput {
  if (config === undefined) throw invalidArgument("agent is required", { field: "agent" });
  const input: AgentConfigInput = {
    agentId: config.agentId,
    name: config.name,
    image: config.image,
    command: [...config.command],
    env: { ...config.env },
    policy: policyFromProto(config.policy),
  };
  const r = config.resources;
  if (r !== undefined) {
    input.resources = {
      memoryBytes: int64ToNumber(r.memoryBytes, "resources.memory_bytes"),
      cpus: r.cpus,
      pidsLimit: int64ToNumber(r.pidsLimit, "resources.pids_limit"),
      maxOutputBytes: int64ToNumber(r.maxOutputBytes, "resources.max_output_bytes"),
    };
  }
  const l = config.lifecycle;
  if (l !== undefined) {
    input.lifecycle = {
      maxIdleMs: l.maxIdle === undefined ? undefined : durationToMs(l.maxIdle, "lifecycle.max_idle"),
      maxLifetimeMs: l.maxLifetime === undefined ? undefined : durationToMs(l.maxLifetime, "lifecycle.max_lifetime"),
      restartOnCrash: l.restartOnCrash,
      maxRestarts: l.maxRestarts,
    };
  }
  const w = config.workspace;
  if (w !== undefined) input.workspace = { mountPoint: w.mountPoint, readOnly: w.readOnly };
  return input;
}

/** UNSPECIFIED: the default; a number this build does not know: "unknown", which the core refuses. */
export function policyFromProto(policy: SandboxPolicyProto): SandboxPolicy | "unknown" | undefined {
  switch (policy) {
    case SandboxPolicyProto.UNSPECIFIED:
      return undefined;
    case SandboxPolicyProto.CONTAINER:
      return "container";
    case SandboxPolicyProto.CONTAINER_DIRECT:
      return "container_direct";
    default:
      return "unknown";
  }
}

/** A status filter: UNSPECIFIED means none; a number this build does not know is INVALID_ARGUMENT. */
export function agentStatusFromProto(status: AgentStatusProto, field = "status"): AgentStatus | undefined {
  if (status === AgentStatusProto.UNSPECIFIED) return undefined;
  const domain = STATUS_FROM_PROTO.get(status);
  if (domain === undefined) throw invalidArgument(`${field} is not a known AgentStatus (got ${status})`, { field });
  return domain;
}

/** The proto enum value of a domain status. */
export function agentStatusToProto(status: AgentStatus): AgentStatusProto {
  return STATUS_TO_PROTO[status];
}

/** A registered (validated, defaults filled in) configuration as the client sees it. */
export function agentConfigToProto(c: AgentConfig): AgentConfigProto {
  return create(AgentConfigSchema, {
    agentId: c.agentId,
    name: c.name,
    image: c.image,
    command: [...c.command],
    env: { ...c.env },
    policy: POLICY_TO_PROTO[c.policy],
    resources: {
      memoryBytes: BigInt(c.resources.memoryBytes),
      cpus: c.resources.cpus,
      pidsLimit: BigInt(c.resources.pidsLimit),
      maxOutputBytes: BigInt(c.resources.maxOutputBytes),
    },
    // Both durations are always set: an unset max_idle would read as "the default", not "no limit".
    lifecycle: {
      maxIdle: durationFromMs(c.lifecycle.maxIdleMs),
      maxLifetime: durationFromMs(c.lifecycle.maxLifetimeMs),
      restartOnCrash: c.lifecycle.restartOnCrash,
      maxRestarts: c.lifecycle.maxRestarts,
    },
    workspace: { mountPoint: c.workspace.mountPoint, readOnly: c.workspace.readOnly },
  });
}

/** An agent as the client sees it. The token hash and internal bookkeeping never leave the service. */
export function agentToProto(a: Agent): AgentProto {
  return create(AgentSchema, {
    agentId: a.config.agentId,
    name: a.config.name,
    status: STATUS_TO_PROTO[a.status],
    statusReason: a.statusReason,
    exitCode: a.exitCode,
    containerId: a.containerId,
    workspacePath: a.workspacePath,
    createdAt: timestampFromMs(a.createdAt),
    startedAt: a.startedAt === undefined ? undefined : timestampFromMs(a.startedAt),
    lastActivity: a.lastActivity === undefined ? undefined : timestampFromMs(a.lastActivity),
    restartCount: a.restartCount,
    executionCount: a.executionCount,
    crashRestarts: a.crashRestarts,
    config: agentConfigToProto(a.config),
  });
}

const EVENT_TYPES: Record<WatchItemType, EventType> = {
  added: EventType.ADDED,
  changed: EventType.CHANGED,
  removed: EventType.REMOVED,
  bookmark: EventType.BOOKMARK,
};

/** A watch item's type as the proto EventType (shared by agent and task watches). */
export function eventTypeToProto(type: WatchItemType): EventType {
  return EVENT_TYPES[type];
}
