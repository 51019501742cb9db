/**
 * Validation of an agent configuration as a client sends it. Everything that is wrong
 * is INVALID_ARGUMENT naming the field; nothing is silently dropped or truncated.
 */
import { posix } from "node:path";
import { type AgentConfig, DEFAULTS, type IdleAction, type Resources, type SandboxPolicy } from "./agent.js";
import { type AgentCeilings, checkCeilings, DEFAULT_AGENT_CEILINGS, RESOURCE_MINIMUMS } from "./agent-ceilings.js";
import { invalidArgument } from "./errors.js";
import { checkImageReference } from "./image-reference.js";

/** An agent configuration before validation: optional parts may be missing. */
export interface AgentConfigInput {
  agentId: string;
  name?: string;
  image: string;
  command?: string[];
  env?: Record<string, string>;
  /** undefined means the default (container). Anything not a known policy is refused. */
  policy?: SandboxPolicy | "unknown";
  resources?: {
    memoryBytes?: number;
    cpus?: number;
    pidsLimit?: number;
    maxOutputBytes?: number;
    diskBytes?: number;
  };
  lifecycle?: {
    /** undefined: the default (1 h); 0: no idle limit. */
    maxIdleMs?: number;
    /** undefined or 0: no limit. */
    maxLifetimeMs?: number;
    restartOnCrash?: boolean;
    /** undefined: the default (3). */
    maxRestarts?: number;
    idleAction?: IdleAction;
  };
  workspace?: { mountPoint?: string; readOnly?: boolean; noexec?: boolean };
}

export const LIMITS = {
  idLength: 64,
  nameLength: 256,
  imageLength: 512,
  commandEntries: 256,
  commandEntryLength: 4096,
  envEntries: 256,
  envNameLength: 256,
  envValueLength: 32 * 1024,
  mountPointLength: 256,
  minMemoryBytes: 6 * 1024 * 1024, // Docker refuses less than 6 MB
  maxMemoryBytes: 1024 * 1024 * 1024 * 1024,
  maxCpus: 1024,
  maxPids: 1_000_000,
  minOutputBytes: 1024,
  maxOutputBytes: 64 * 1024 * 1024,
  maxDurationMs: 10 * 365 * 24 * 3600 * 1000,
  maxRestarts: 1000,
} as const;

/** What the admin allows beyond the fixed limits (see AgentServiceConfig). */
export interface AgentRules {
  /** Normalised workspace mount points must equal one of these or lie under one (AGENTORCH_WORKSPACE_MOUNT_PREFIXES). */
  mountPrefixes: readonly string[];
  /** What an operator may ask of a container; unset resources get the defaults, capped at these. */
  ceilings: AgentCeilings;
}

/** Where a workspace may be mounted unless the admin says otherwise: directories no image relies on for itself. */
export const DEFAULT_MOUNT_PREFIXES: readonly string[] = ["/workspace", "/home", "/data", "/mnt", "/srv", "/opt"];

export const DEFAULT_AGENT_RULES: AgentRules = { mountPrefixes: DEFAULT_MOUNT_PREFIXES, ceilings: DEFAULT_AGENT_CEILINGS };

/** Directories a workspace may never cover, whatever the admin allows. */
export const SYSTEM_DIRECTORIES: readonly string[] = ["/run/agentorch", "/tmp", "/proc", "/sys", "/dev", "/etc", "/bin", "/sbin", "/usr", "/lib", "/lib64", "/var", "/boot", "/root", "/run"];

const ID_RE = /^[A-Za-z0-9-]{1,64}$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED_ENV = new Set(["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "BASH_ENV", "ENV", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"]);
// Control characters other than tab can smuggle terminal escapes or NULs into Docker's API.
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** Throws INVALID_ARGUMENT unless id is 1-64 ASCII letters, digits and '-'. */
export function validateAgentId(id: string, field = "agent_id"): string {
  if (typeof id !== "string" || !ID_RE.test(id)) {
    throw invalidArgument(`${field} must be 1-64 ASCII letters, digits or '-' (got ${JSON.stringify(truncate(String(id), 80))})`, { field });
  }
  return id;
}

/** True for environment names an agent may not set. */
export function isReservedEnvName(name: string): boolean {
  return RESERVED_ENV.has(name) || name.toUpperCase().startsWith("AGENTORCH_");
}

export function validateEnv(env: Record<string, string> | undefined, field = "env"): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = Object.entries(env ?? {});
  if (entries.length > LIMITS.envEntries) throw invalidArgument(`${field} has ${entries.length} entries; at most ${LIMITS.envEntries}`, { field });
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > LIMITS.envNameLength || !ENV_NAME_RE.test(k)) {
      throw invalidArgument(`${field}: invalid variable name ${JSON.stringify(truncate(k, 80))}`, { field });
    }
    if (isReservedEnvName(k)) throw invalidArgument(`${field}: ${k} is reserved and may not be set`, { field });
    checkString(v, `${field}.${k}`, LIMITS.envValueLength, { allowEmpty: true, allowNewlines: true });
    out[k] = v;
  }
  return out;
}

export function validateCommand(command: string[] | undefined, field = "command"): string[] {
  const cmd = command ?? [];
  if (cmd.length > LIMITS.commandEntries) throw invalidArgument(`${field} has ${cmd.length} entries; at most ${LIMITS.commandEntries}`, { field });
  cmd.forEach((c, i) => checkString(c, `${field}[${i}]`, LIMITS.commandEntryLength, { allowEmpty: true, allowNewlines: true }));
  return [...cmd];
}

export function validateImage(image: string, field = "image"): string {
  checkString(image, field, LIMITS.imageLength);
  if (/\s/.test(image)) throw invalidArgument(`${field} may not contain whitespace`, { field });
  checkImageReference(image, field);
  return image;
}

/** True when path is prefix or lies under it (compared on a path boundary). */
export function isUnderPath(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(prefix.endsWith("/") ? prefix : `${prefix}/`);
}

/**
 * The workspace mount point, normalised (posix: "//etc" and "/workspace/../etc" are "/etc"),
 * then checked against the allowed prefixes. Everything else is INVALID_ARGUMENT naming them:
 * Docker would otherwise mount over system directories or fail on files (/.dockerenv).
 */
export function validateMountPoint(value: string, prefixes: readonly string[], field = "workspace.mount_point"): string {
  checkString(value, field, LIMITS.mountPointLength);
  const allowed = `allowed: ${prefixes.join(", ")} and paths under them (AGENTORCH_WORKSPACE_MOUNT_PREFIXES)`;
  if (!value.startsWith("/") || /[:,\s]/.test(value)) {
    throw invalidArgument(`${field} must be an absolute path without ':', ',' or spaces (got ${JSON.stringify(value)}); ${allowed}`, { field });
  }
  let normal = posix.normalize(value);
  if (normal.length > 1 && normal.endsWith("/")) normal = normal.slice(0, -1);
  const system = SYSTEM_DIRECTORIES.some((p) => isUnderPath(normal, p));
  if (normal === "/" || system || !prefixes.some((p) => isUnderPath(normal, p))) {
    throw invalidArgument(`${field} ${JSON.stringify(value)} (normalised ${normal}) is not an allowed place for the workspace; ${allowed}`, { field });
  }
  return normal;
}

/** Validates input and fills in defaults. */
export function validateAgentConfig(input: AgentConfigInput, rules: AgentRules = DEFAULT_AGENT_RULES): AgentConfig {
  const agentId = validateAgentId(input.agentId);
  const name = input.name === undefined || input.name === "" ? agentId : input.name;
  checkString(name, "name", LIMITS.nameLength);
  const image = validateImage(input.image);
  const command = validateCommand(input.command);
  const envNames = Object.keys(validateEnv(input.env)).sort();
  if (input.policy === "unknown") throw invalidArgument("policy is not a known SandboxPolicy", { field: "policy" });
  const policy: SandboxPolicy = input.policy ?? "container";

  const resources = validateResources(input.resources ?? {}, rules.ceilings);

  const l = input.lifecycle ?? {};
  const maxIdleMs = l.maxIdleMs ?? DEFAULTS.maxIdleMs;
  checkRange(maxIdleMs, "lifecycle.max_idle", 0, LIMITS.maxDurationMs);
  const maxLifetimeMs = l.maxLifetimeMs ?? 0;
  checkRange(maxLifetimeMs, "lifecycle.max_lifetime", 0, LIMITS.maxDurationMs);
  const maxRestarts = l.maxRestarts ?? DEFAULTS.maxRestarts;
  checkRange(maxRestarts, "lifecycle.max_restarts", 0, LIMITS.maxRestarts);

  const w = input.workspace ?? {};
  const mountPoint = validateMountPoint(w.mountPoint === undefined || w.mountPoint === "" ? DEFAULTS.mountPoint : w.mountPoint, rules.mountPrefixes);

  return {
    agentId,
    name,
    image,
    command,
    envNames,
    policy,
    resources,
    lifecycle: { maxIdleMs, maxLifetimeMs, restartOnCrash: l.restartOnCrash ?? false, maxRestarts, idleAction: l.idleAction ?? "stop" },
    workspace: { mountPoint, readOnly: w.readOnly ?? false, noexec: w.noexec ?? false },
  };
}

/**
 * Resource limits: unset (0) ones get the default capped at the admin's ceiling (cpus: the
 * admin's default_agent_cpus); set ones must be at least the smallest meaningful value
 * (RESOURCE_MINIMUMS: never rounded to "no limit") and at most the ceiling.
 */
export function validateResources(r: NonNullable<AgentConfigInput["resources"]>, ceilings: AgentCeilings): Resources {
  const memoryBytes = orDefault(r.memoryBytes, Math.min(DEFAULTS.memoryBytes, ceilings.maxAgentMemoryBytes));
  checkRange(memoryBytes, "resources.memory_bytes", RESOURCE_MINIMUMS.memoryBytes, LIMITS.maxMemoryBytes);
  const cpus = r.cpus === undefined || r.cpus === 0 ? Math.min(ceilings.defaultAgentCpus, ceilings.maxAgentCpus) : r.cpus;
  if (!Number.isFinite(cpus) || cpus < RESOURCE_MINIMUMS.cpus || cpus > LIMITS.maxCpus) {
    throw invalidArgument(`resources.cpus must be 0 (the default, ${ceilings.defaultAgentCpus}) or between ${RESOURCE_MINIMUMS.cpus} and ${LIMITS.maxCpus} cores (got ${cpus})`, {
      field: "resources.cpus",
    });
  }
  const pidsLimit = orDefault(r.pidsLimit, Math.min(DEFAULTS.pidsLimit, ceilings.maxAgentPids));
  checkRange(pidsLimit, "resources.pids_limit", RESOURCE_MINIMUMS.pids, LIMITS.maxPids);
  const maxOutputBytes = orDefault(r.maxOutputBytes, Math.min(DEFAULTS.maxOutputBytes, ceilings.maxAgentOutputBytes));
  checkRange(maxOutputBytes, "resources.max_output_bytes", RESOURCE_MINIMUMS.outputBytes, LIMITS.maxOutputBytes);
  const out: Resources = { memoryBytes, cpus, pidsLimit, maxOutputBytes };
  if (r.diskBytes !== undefined && r.diskBytes !== 0) {
    checkRange(r.diskBytes, "resources.disk_bytes", RESOURCE_MINIMUMS.diskBytes, Number.MAX_SAFE_INTEGER);
    out.diskBytes = r.diskBytes;
  }
  checkCeilings(out, ceilings, "register");
  return out;
}

/** True when image is allowed by the allowlist of prefixes, matched on path boundaries. Empty list: all allowed. */
export function imageAllowed(image: string, allowlist: readonly string[]): boolean {
  if (allowlist.length === 0) return true;
  return allowlist.some((prefix) => {
    if (image === prefix) return true;
    if (!image.startsWith(prefix)) return false;
    // "docker.io/library" allows "docker.io/library/x:1" but not "docker.io/library-evil/x".
    if (/[/:@]$/.test(prefix)) return true;
    return ["/", ":", "@"].includes(image.charAt(prefix.length));
  });
}

export function checkString(value: string, field: string, max: number, opts: { allowEmpty?: boolean; allowNewlines?: boolean } = {}): void {
  if (typeof value !== "string") throw invalidArgument(`${field} must be a string`, { field });
  if (!opts.allowEmpty && value.length === 0) throw invalidArgument(`${field} is required`, { field });
  if (value.length > max) throw invalidArgument(`${field} is ${value.length} characters; at most ${max}`, { field });
  const bad = opts.allowNewlines ? value.includes("\u0000") : CONTROL_RE.test(value);
  if (bad) throw invalidArgument(`${field} contains control characters`, { field });
}

function checkRange(v: number, field: string, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw invalidArgument(`${field} must be an integer between ${min} and ${max} (got ${v})`, { field });
}

function orDefault(v: number | undefined, d: number): number {
  return v === undefined || v === 0 ? d : v;
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
