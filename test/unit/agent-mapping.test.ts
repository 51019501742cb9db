import { type MessageInitShape, create, fromBinary, toBinary, toJsonString } from "@bufbuild/protobuf";
import { DurationSchema, durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type AgentConfig as AgentConfigProto,
  AgentConfigSchema,
  AgentSchema,
  AgentStatus as AgentStatusProto,
  AgentStatusSchema,
  SandboxPolicy as SandboxPolicyProto,
} from "../../gen/agentorch/v1/agent_pb.js";
import { agentConfigFromProto, agentConfigToProto, agentToProto } from "../../src/api/agent-mapping.js";
import { agentStatusFromProto } from "../../src/api/enums.js";
import { durationToMs, int64ToNumber } from "../../src/api/proto-scalars.js";
import type { Agent, AgentConfig } from "../../src/core/agent.js";
import { DEFAULT_AGENT_CEILINGS } from "../../src/core/agent-ceilings.js";
import { DEFAULT_AGENT_RULES, LIMITS, validateAgentConfig } from "../../src/core/agent-config.js";
import { thrown } from "../support/errors.js";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A configuration with no field at its default, so a dropped field shows. */
function fullConfig(): AgentConfig {
  return {
    agentId: "agent-1",
    name: "Agent One",
    image: "agentorch/busybox:test",
    command: ["sh", "-c", "echo hi"],
    envNames: ["EMPTY", "FOO"],
    policy: "container_direct",
    resources: { memoryBytes: 64 * 1024 * 1024, cpus: 0.5, pidsLimit: 32, maxOutputBytes: 4096 },
    lifecycle: { maxIdleMs: 90_500, maxLifetimeMs: 7_200_000, restartOnCrash: true, maxRestarts: 5, idleAction: "pause" },
    workspace: { mountPoint: "/data/work", readOnly: true, noexec: true },
  };
}

function fullAgent(): Agent {
  return {
    config: fullConfig(),
    status: "failed",
    statusReason: "exited with code 3",
    exitCode: 3,
    containerId: "c0ffee",
    workspacePath: "/data/workspaces/agent-1",
    createdAt: 1_700_000_000_123,
    startedAt: 1_700_000_100_456,
    lastActivity: 1_700_000_200_789,
    restartCount: 2,
    executionCount: 3,
    crashRestarts: 1,
    tokenHash: "deadbeef".repeat(8),
    currentTaskId: "task-9",
    ephemeral: false,
  };
}

function configProto(init: Omit<MessageInitShape<typeof AgentConfigSchema>, "$typeName"> = {}): AgentConfigProto {
  return create(AgentConfigSchema, { agentId: "a-1", image: "agentorch/busybox:test", ...init });
}

describe("agentToProto", () => {
  it("maps every field of an agent", () => {
    const p = agentToProto(fullAgent());
    expect(p.agentId).toBe("agent-1");
    expect(p.name).toBe("Agent One");
    expect(p.status).toBe(AgentStatusProto.FAILED);
    expect(p.statusReason).toBe("exited with code 3");
    expect(p.exitCode).toBe(3);
    expect(p.containerId).toBe("c0ffee");
    expect(p.workspacePath).toBe("/data/workspaces/agent-1");
    expect(timestampMs(p.createdAt!)).toBe(1_700_000_000_123);
    expect(timestampMs(p.startedAt!)).toBe(1_700_000_100_456);
    expect(timestampMs(p.lastActivity!)).toBe(1_700_000_200_789);
    expect(p.restartCount).toBe(2);
    expect(p.executionCount).toBe(3);
    expect(p.crashRestarts).toBe(1);
    expect(p.config?.agentId).toBe("agent-1");
    expect(p.config?.policy).toBe(SandboxPolicyProto.CONTAINER_DIRECT);
  });

  it("survives the wire and never carries the token hash", () => {
    const a = fullAgent();
    const p = agentToProto(a);
    const back = fromBinary(AgentSchema, toBinary(AgentSchema, p));
    expect(back).toEqual(p);
    expect(toJsonString(AgentSchema, p)).not.toContain(a.tokenHash);
    expect(Buffer.from(toBinary(AgentSchema, p)).toString("latin1")).not.toContain(a.tokenHash);
  });

  it("leaves optional fields absent when the agent has none", () => {
    const a: Agent = { ...fullAgent(), status: "idle", exitCode: undefined, startedAt: undefined, lastActivity: undefined };
    const p = fromBinary(AgentSchema, toBinary(AgentSchema, agentToProto(a)));
    expect(p.exitCode).toBeUndefined();
    expect(p.startedAt).toBeUndefined();
    expect(p.lastActivity).toBeUndefined();
    expect(p.createdAt).toBeDefined();
  });

  it("keeps exit code 0, which is not the same as no exit code", () => {
    const p = fromBinary(AgentSchema, toBinary(AgentSchema, agentToProto({ ...fullAgent(), exitCode: 0 })));
    expect(p.exitCode).toBe(0);
  });

  it("carries every status the proto defines", () => {
    // From the generated descriptor: a status added to agent.proto fails here until it is mapped.
    for (const { name, number } of AgentStatusSchema.values) {
      if (number === AgentStatusProto.UNSPECIFIED) continue;
      const status = agentStatusFromProto(number);
      expect(status, name).toBeDefined();
      expect(agentToProto({ ...fullAgent(), status: status! }).status, name).toBe(number);
    }
  });
});

describe("config round trip", () => {
  it("gives back every field: domain -> proto -> wire -> input -> validated domain", () => {
    const c = fullConfig();
    const wire = fromBinary(AgentConfigSchema, toBinary(AgentConfigSchema, agentConfigToProto(c)));
    // env is write-only: the names come back in env_names, the map stays empty, so nothing is set again.
    expect(wire.env).toEqual({});
    expect(wire.envNames).toEqual(["EMPTY", "FOO"]);
    expect(validateAgentConfig(agentConfigFromProto(wire))).toEqual({ ...c, envNames: [] });
  });

  it("keeps 'no idle limit' (0) distinct from the default after a round trip", () => {
    const c = { ...fullConfig(), lifecycle: { ...fullConfig().lifecycle, maxIdleMs: 0, maxLifetimeMs: 0 } };
    const p = agentConfigToProto(c);
    expect(p.lifecycle?.maxIdle).toBeDefined();
    expect(validateAgentConfig(agentConfigFromProto(p)).lifecycle.maxIdleMs).toBe(0);
  });

  it("shows the defaults the core filled in", () => {
    const p = agentConfigToProto(validateAgentConfig(agentConfigFromProto(configProto())));
    expect(p.name).toBe("a-1");
    expect(p.policy).toBe(SandboxPolicyProto.CONTAINER);
    expect(p.resources?.memoryBytes).toBe(512n * 1024n * 1024n);
    expect(p.resources?.pidsLimit).toBe(256n);
    expect(p.resources?.maxOutputBytes).toBe(256n * 1024n);
    expect(p.lifecycle?.maxIdle?.seconds).toBe(3600n);
    expect(p.lifecycle?.maxLifetime?.seconds).toBe(0n);
    expect(p.lifecycle?.restartOnCrash).toBe(false);
    expect(p.lifecycle?.maxRestarts).toBe(3);
    expect(p.workspace?.mountPoint).toBe("/workspace");
  });

  it("round-trips arbitrary valid limits", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: LIMITS.minMemoryBytes, max: LIMITS.maxMemoryBytes }),
        fc.integer({ min: 1, max: LIMITS.maxPids }),
        fc.integer({ min: 0, max: LIMITS.maxDurationMs }),
        fc.integer({ min: 0, max: LIMITS.maxDurationMs }),
        fc.integer({ min: 0, max: LIMITS.maxRestarts }),
        (memoryBytes, pidsLimit, maxIdleMs, maxLifetimeMs, maxRestarts) => {
          const base = fullConfig();
          const c: AgentConfig = {
            ...base,
            resources: { ...base.resources, memoryBytes, pidsLimit },
            lifecycle: { ...base.lifecycle, maxIdleMs, maxLifetimeMs, maxRestarts },
          };
          const wire = fromBinary(AgentConfigSchema, toBinary(AgentConfigSchema, agentConfigToProto(c)));
          // Ceilings as high as the fixed limits: this is about the mapping, not the admin's ceilings.
          const rules = { ...DEFAULT_AGENT_RULES, ceilings: { ...DEFAULT_AGENT_CEILINGS, maxAgentMemoryBytes: LIMITS.maxMemoryBytes, maxAgentPids: LIMITS.maxPids } };
          expect(validateAgentConfig(agentConfigFromProto(wire), rules)).toEqual({ ...c, envNames: [] });
        },
      ),
    );
  });
});

describe("agentConfigFromProto", () => {
  it("refuses a missing config", () => {
    const err = thrown(() => agentConfigFromProto(undefined));
    expect(err.kind).toBe("invalid_argument");
    expect(err.message).toBe("agent is required");
  });

  it("leaves unset parts unset so the core applies its defaults", () => {
    const input = agentConfigFromProto(configProto());
    expect(input.resources).toBeUndefined();
    expect(input.lifecycle).toBeUndefined();
    expect(input.workspace).toBeUndefined();
    expect(input.policy).toBeUndefined();
  });

  it("maps unset max_idle to the default and a zero max_idle to 'no limit'", () => {
    expect(agentConfigFromProto(configProto({ lifecycle: {} })).lifecycle?.maxIdleMs).toBeUndefined();
    expect(agentConfigFromProto(configProto({ lifecycle: { maxIdle: {} } })).lifecycle?.maxIdleMs).toBe(0);
  });

  it("maps unset max_restarts to undefined and a set zero to 0", () => {
    expect(agentConfigFromProto(configProto({ lifecycle: {} })).lifecycle?.maxRestarts).toBeUndefined();
    expect(agentConfigFromProto(configProto({ lifecycle: { maxRestarts: 0 } })).lifecycle?.maxRestarts).toBe(0);
  });

  it.each(["memoryBytes", "pidsLimit", "maxOutputBytes"] as const)("bounds int64 %s", (key) => {
    const field = { memoryBytes: "resources.memory_bytes", pidsLimit: "resources.pids_limit", maxOutputBytes: "resources.max_output_bytes" }[key];
    expect(agentConfigFromProto(configProto({ resources: { [key]: MAX_SAFE } })).resources?.[key]).toBe(Number.MAX_SAFE_INTEGER);
    for (const bad of [MAX_SAFE + 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n)]) {
      const err = thrown(() => agentConfigFromProto(configProto({ resources: { [key]: bad } })));
      expect(err.kind).toBe("invalid_argument");
      expect(err.message).toContain(field);
      expect(err.details.field).toBe(field);
    }
  });

  it.each(["maxIdle", "maxLifetime"] as const)("bounds Duration %s", (key) => {
    const field = key === "maxIdle" ? "lifecycle.max_idle" : "lifecycle.max_lifetime";
    const ms = (d: { seconds?: bigint; nanos?: number }) =>
      agentConfigFromProto(configProto({ lifecycle: { [key]: create(DurationSchema, d) } })).lifecycle?.[`${key}Ms`];
    expect(ms({ seconds: 90n, nanos: 500_000_000 })).toBe(90_500);
    // Rounded up: a positive duration never becomes 0 ("no limit").
    expect(ms({ nanos: 1 })).toBe(1);
    expect(ms({ seconds: 1n, nanos: 1_000_001 })).toBe(1002);
    expect(ms({ seconds: BigInt(LIMITS.maxDurationMs / 1000) })).toBe(LIMITS.maxDurationMs);
    const bad = [
      { seconds: -1n },
      { nanos: -1 },
      { seconds: 1n, nanos: 1_000_000_000 },
      { seconds: BigInt(LIMITS.maxDurationMs / 1000), nanos: 1_000_000 },
      { seconds: 2n ** 62n },
    ];
    for (const d of bad) {
      const err = thrown(() => ms(d));
      expect(err.kind).toBe("invalid_argument");
      expect(err.message).toContain(field);
    }
  });

  it("maps the sandbox policy, passing unknown numbers on for the core to refuse", () => {
    const policy = (p: SandboxPolicyProto) => agentConfigFromProto(configProto({ policy: p })).policy;
    expect(policy(SandboxPolicyProto.UNSPECIFIED)).toBeUndefined();
    expect(policy(SandboxPolicyProto.CONTAINER)).toBe("container");
    expect(policy(SandboxPolicyProto.CONTAINER_DIRECT)).toBe("container_direct");
    expect(policy(99 as SandboxPolicyProto)).toBe("unknown");
    const err = thrown(() => validateAgentConfig(agentConfigFromProto(configProto({ policy: 99 as SandboxPolicyProto }))));
    expect(err.kind).toBe("invalid_argument");
    expect(err.message).toContain("policy");
  });

  it("passes reserved env names through; the core refuses them", () => {
    for (const name of ["LD_PRELOAD", "AGENTORCH_TOKEN", "https_proxy"]) {
      const input = agentConfigFromProto(configProto({ env: { [name]: "x" } }));
      expect(input.env).toEqual({ [name]: "x" });
      const err = thrown(() => validateAgentConfig(input));
      expect(err.kind).toBe("invalid_argument");
      expect(err.message).toContain(name);
    }
  });

  it("passes invalid ids through; the core refuses them", () => {
    for (const id of ["", "a".repeat(65), "..", "a/b", "a_b"]) {
      const input = agentConfigFromProto(configProto({ agentId: id }));
      expect(input.agentId).toBe(id);
      expect(thrown(() => validateAgentConfig(input)).kind).toBe("invalid_argument");
    }
  });

  it("copies lists and maps rather than sharing them with the request", () => {
    const p = configProto({ command: ["a"], env: { A: "1" } });
    const input = agentConfigFromProto(p);
    p.command.push("b");
    p.env.B = "2";
    expect(input.command).toEqual(["a"]);
    expect(input.env).toEqual({ A: "1" });
  });
});

describe("agentStatusFromProto", () => {
  it("treats UNSPECIFIED as no filter and refuses unknown numbers", () => {
    expect(agentStatusFromProto(AgentStatusProto.UNSPECIFIED)).toBeUndefined();
    const err = thrown(() => agentStatusFromProto(42 as AgentStatusProto));
    expect(err.kind).toBe("invalid_argument");
    expect(err.message).toContain("status");
  });
});

describe("number helpers", () => {
  it("int64ToNumber accepts 0..MAX_SAFE_INTEGER exactly", () => {
    expect(int64ToNumber(0n, "f")).toBe(0);
    expect(int64ToNumber(MAX_SAFE, "f")).toBe(Number.MAX_SAFE_INTEGER);
    expect(thrown(() => int64ToNumber(MAX_SAFE + 1n, "f")).message).toContain("f must be between 0 and");
  });

  it("durationToMs inverts durationFromMs for every whole-millisecond duration in range", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: LIMITS.maxDurationMs }), (ms) => durationToMs(durationFromMs(ms), "d") === ms));
  });
});
