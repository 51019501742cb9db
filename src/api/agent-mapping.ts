/**
 * Proto <-> domain mapping for agents. Only shape conversions happen here (scalars in
 * ./proto-scalars.ts, enums in ./enums.ts); every rule about what a valid configuration is stays in the
 * core (src/core/agent-config.ts), so a value the core refuses is passed through for it to refuse.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type Agent as AgentProto,
  AgentConfigSchema,
  type AgentConfig as AgentConfigProto,
  AgentSchema,
} from "../../gen/agentorch/v1/agent_pb.js";
import type { Agent, AgentConfig } from "../core/agent.js";
import type { AgentConfigInput } from "../core/agent-config.js";
import { invalidArgument } from "../core/errors.js";
import { agentStatusToProto, idleActionFromProto, idleActionToProto, policyFromProto, policyToProto } from "./enums.js";
import { durationToMs, int64ToNumber } from "./proto-scalars.js";

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
      diskBytes: int64ToNumber(r.diskBytes, "resources.disk_bytes"),
    };
  }
  const l = config.lifecycle;
  if (l !== undefined) {
    input.lifecycle = {
      maxIdleMs: l.maxIdle === undefined ? undefined : durationToMs(l.maxIdle, "lifecycle.max_idle"),
      maxLifetimeMs: l.maxLifetime === undefined ? undefined : durationToMs(l.maxLifetime, "lifecycle.max_lifetime"),
      restartOnCrash: l.restartOnCrash,
      maxRestarts: l.maxRestarts,
      idleAction: idleActionFromProto(l.idleAction),
    };
  }
  const w = config.workspace;
  if (w !== undefined) input.workspace = { mountPoint: w.mountPoint, readOnly: w.readOnly, noexec: w.noexec };
  return input;
}

/** A registered (validated, defaults filled in) configuration as the client sees it. */
export function agentConfigToProto(c: AgentConfig): AgentConfigProto {
  return create(AgentConfigSchema, {
    agentId: c.agentId,
    name: c.name,
    image: c.image,
    command: [...c.command],
    // env is write-only: readers get the names, never a value (not even a hash: a short secret's hash can be guessed offline).
    envNames: [...c.envNames],
    policy: policyToProto(c.policy),
    resources: {
      memoryBytes: BigInt(c.resources.memoryBytes),
      cpus: c.resources.cpus,
      pidsLimit: BigInt(c.resources.pidsLimit),
      maxOutputBytes: BigInt(c.resources.maxOutputBytes),
      diskBytes: BigInt(c.resources.diskBytes ?? 0),
    },
    // Both durations are always set: an unset max_idle would read as "the default", not "no limit".
    lifecycle: {
      maxIdle: durationFromMs(c.lifecycle.maxIdleMs),
      maxLifetime: durationFromMs(c.lifecycle.maxLifetimeMs),
      restartOnCrash: c.lifecycle.restartOnCrash,
      maxRestarts: c.lifecycle.maxRestarts,
      idleAction: idleActionToProto(c.lifecycle.idleAction),
    },
    workspace: { mountPoint: c.workspace.mountPoint, readOnly: c.workspace.readOnly, noexec: c.workspace.noexec ?? false },
  });
}

/** An agent as the client sees it. The token hash and internal bookkeeping never leave the service. */
export function agentToProto(a: Agent): AgentProto {
  return create(AgentSchema, {
    agentId: a.config.agentId,
    name: a.config.name,
    status: agentStatusToProto(a.status),
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
