/**
 * What an operator may ask of one container: admin-set ceilings on memory, CPUs, processes,
 * kept output and workspace disk, the CPU limit an agent gets when it asks for none, and who
 * may give an agent a network. The ceilings are part of the lifecycle config (changed live
 * with UpdateLifecycleConfig, started from AGENTORCH_MAX_AGENT_* variables); they apply when
 * an agent or a task template is registered and again at every start, so lowering one stops
 * agents registered above it from starting (FAILED_PRECONDITION naming the ceiling).
 */
import type { Resources, SandboxPolicy } from "./agent.js";
import type { Role } from "./auth.js";
import { AgentorchError, failedPrecondition, invalidArgument } from "./errors.js";

export interface AgentCeilings {
  maxAgentMemoryBytes: number;
  /** CPU cores (fractions allowed). */
  maxAgentCpus: number;
  maxAgentPids: number;
  maxAgentOutputBytes: number;
  /** Workspace size, for the workspace quota (resources.disk_bytes of an agent may not ask for more). */
  maxAgentDiskBytes: number;
  /** The CPU limit of an agent that asks for none (resources.cpus 0). */
  defaultAgentCpus: number;
}

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** The smallest values that mean something: below them a request is INVALID_ARGUMENT, never rounded. */
export const RESOURCE_MINIMUMS = {
  /** Docker refuses less than 6 MB. */
  memoryBytes: 6 * MIB,
  /** 10 millicores: Docker's NanoCpus would round smaller values, down to "no limit". */
  cpus: 0.01,
  pids: 1,
  outputBytes: 1024,
  diskBytes: MIB,
} as const;

export const DEFAULT_AGENT_CEILINGS: Readonly<AgentCeilings> = {
  maxAgentMemoryBytes: 8 * GIB,
  maxAgentCpus: 1,
  maxAgentPids: 4096,
  maxAgentOutputBytes: 64 * MIB,
  maxAgentDiskBytes: 10 * GIB,
  defaultAgentCpus: 1,
};

/** Each ceiling's proto field name and the range an admin may set it to. */
export const CEILING_RANGES: Readonly<Record<keyof AgentCeilings, readonly [field: string, min: number, max: number]>> = {
  maxAgentMemoryBytes: ["max_agent_memory_bytes", RESOURCE_MINIMUMS.memoryBytes, 1024 * GIB],
  maxAgentCpus: ["max_agent_cpus", RESOURCE_MINIMUMS.cpus, 1024],
  maxAgentPids: ["max_agent_pids", RESOURCE_MINIMUMS.pids, 1_000_000],
  maxAgentOutputBytes: ["max_agent_output_bytes", RESOURCE_MINIMUMS.outputBytes, 64 * MIB],
  maxAgentDiskBytes: ["max_agent_disk_bytes", RESOURCE_MINIMUMS.diskBytes, 1024 * 1024 * GIB],
  defaultAgentCpus: ["default_agent_cpus", RESOURCE_MINIMUMS.cpus, 1024],
};

/** The environment variable that sets each ceiling at start-up. */
export const CEILING_VARIABLES: Readonly<Record<keyof AgentCeilings, string>> = {
  maxAgentMemoryBytes: "AGENTORCH_MAX_AGENT_MEMORY",
  maxAgentCpus: "AGENTORCH_MAX_AGENT_CPUS",
  maxAgentPids: "AGENTORCH_MAX_AGENT_PIDS",
  maxAgentOutputBytes: "AGENTORCH_MAX_AGENT_OUTPUT_BYTES",
  maxAgentDiskBytes: "AGENTORCH_MAX_AGENT_DISK",
  defaultAgentCpus: "AGENTORCH_DEFAULT_AGENT_CPUS",
};

/** The ceilings out of a wider object (the lifecycle config). */
export function ceilingsOf(c: AgentCeilings): AgentCeilings {
  const { maxAgentMemoryBytes, maxAgentCpus, maxAgentPids, maxAgentOutputBytes, maxAgentDiskBytes, defaultAgentCpus } = c;
  return { maxAgentMemoryBytes, maxAgentCpus, maxAgentPids, maxAgentOutputBytes, maxAgentDiskBytes, defaultAgentCpus };
}

/** Which resource each ceiling bounds, and how. */
const BOUNDS: readonly { field: string; value: (r: Resources) => number; ceiling: keyof AgentCeilings }[] = [
  { field: "resources.memory_bytes", value: (r) => r.memoryBytes, ceiling: "maxAgentMemoryBytes" },
  { field: "resources.cpus", value: (r) => r.cpus, ceiling: "maxAgentCpus" },
  { field: "resources.pids_limit", value: (r) => r.pidsLimit, ceiling: "maxAgentPids" },
  { field: "resources.max_output_bytes", value: (r) => r.maxOutputBytes, ceiling: "maxAgentOutputBytes" },
  { field: "resources.disk_bytes", value: (r) => r.diskBytes ?? 0, ceiling: "maxAgentDiskBytes" },
];

/**
 * Throws when a resource is above its ceiling: INVALID_ARGUMENT at registration ("register"),
 * FAILED_PRECONDITION at a start ("start": the ceiling was lowered after the agent registered).
 * The message names the ceiling, its value and where the admin sets it.
 */
export function checkCeilings(r: Resources, ceilings: AgentCeilings, when: "register" | "start", agentId?: string): void {
  for (const b of BOUNDS) {
    const v = b.value(r);
    const max = ceilings[b.ceiling];
    if (v <= max) continue;
    const [setting] = CEILING_RANGES[b.ceiling];
    const why = `${b.field} ${v} is above the ceiling ${setting} (${max}; set by the admin: ${CEILING_VARIABLES[b.ceiling]} or UpdateLifecycleConfig)`;
    if (when === "register") throw invalidArgument(why, { field: b.field, reason: "ABOVE_CEILING" });
    throw failedPrecondition(`cannot start agent "${agentId}": ${why}; register it again with less`, { agentId, reason: "ABOVE_CEILING" });
  }
}

/** True when an id or image matches an allowlist entry on a boundary ("team-" or "team" allows "team-1"; images as the image allowlist). */
export function networkAllowlisted(agentId: string, image: string, allowlist: readonly string[], imageMatches: (image: string, list: readonly string[]) => boolean): boolean {
  return allowlist.some((entry) => {
    if (agentId === entry) return true;
    if (agentId.startsWith(entry) && (entry.endsWith("-") || agentId.charAt(entry.length) === "-")) return true;
    return imageMatches(image, [entry]);
  });
}

/**
 * A network (SANDBOX_POLICY_CONTAINER_DIRECT) needs the admin role, or an agent id or image
 * on the admin's allowlist (AGENTORCH_NETWORK_ALLOWLIST); otherwise PERMISSION_DENIED saying so.
 */
export function checkNetworkPolicy(
  policy: SandboxPolicy,
  who: { agentId: string; image: string; role?: Role; field: string },
  allowlist: readonly string[],
  imageMatches: (image: string, list: readonly string[]) => boolean,
): void {
  if (policy !== "container_direct" || who.role === "admin") return;
  if (networkAllowlisted(who.agentId, who.image, allowlist, imageMatches)) return;
  throw new AgentorchError(
    "permission_denied",
    `${who.field} SANDBOX_POLICY_CONTAINER_DIRECT gives the container a network: only the admin role may ask for it, or an agent id or image on AGENTORCH_NETWORK_ALLOWLIST (role ${who.role ?? "none"}, agent "${who.agentId}", image "${who.image}")`,
    { agentId: who.agentId, field: who.field, reason: "NETWORK_NOT_ALLOWED" },
  );
}
