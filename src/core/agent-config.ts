/**
 * Validation of an agent configuration as a client sends it. Everything that is wrong
 * is INVALID_ARGUMENT naming the field; nothing is silently dropped or truncated.
 */
import { type AgentConfig, DEFAULTS, type SandboxPolicy } from "./agent.js";
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
  };
  lifecycle?: {
    /** undefined: the default (1 h); 0: no idle limit. */
    maxIdleMs?: number;
    /** undefined or 0: no limit. */
    maxLifetimeMs?: number;
    restartOnCrash?: boolean;
    /** undefined: the default (3). */
    maxRestarts?: number;
  };
  workspace?: { mountPoint?: string; readOnly?: boolean };
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

/** Validates input and fills in defaults. */
export function validateAgentConfig(input: AgentConfigInput): AgentConfig {
  const agentId = validateAgentId(input.agentId);
  const name = input.name === undefined || input.name === "" ? agentId : input.name;
  checkString(name, "name", LIMITS.nameLength);
  const image = validateImage(input.image);
  const command = validateCommand(input.command);
  const env = validateEnv(input.env);
  if (input.policy === "unknown") throw invalidArgument("policy is not a known SandboxPolicy", { field: "policy" });
  const policy: SandboxPolicy = input.policy ?? "container";

  const r = input.resources ?? {};
  const memoryBytes = orDefault(r.memoryBytes, DEFAULTS.memoryBytes);
  checkRange(memoryBytes, "resources.memory_bytes", LIMITS.minMemoryBytes, LIMITS.maxMemoryBytes);
  const cpus = r.cpus ?? 0;
  if (!Number.isFinite(cpus) || cpus < 0 || cpus > LIMITS.maxCpus) {
    throw invalidArgument(`resources.cpus must be between 0 and ${LIMITS.maxCpus}`, { field: "resources.cpus" });
  }
  const pidsLimit = orDefault(r.pidsLimit, DEFAULTS.pidsLimit);
  checkRange(pidsLimit, "resources.pids_limit", 1, LIMITS.maxPids);
  const maxOutputBytes = orDefault(r.maxOutputBytes, DEFAULTS.maxOutputBytes);
  checkRange(maxOutputBytes, "resources.max_output_bytes", LIMITS.minOutputBytes, LIMITS.maxOutputBytes);

  const l = input.lifecycle ?? {};
  const maxIdleMs = l.maxIdleMs ?? DEFAULTS.maxIdleMs;
  checkRange(maxIdleMs, "lifecycle.max_idle", 0, LIMITS.maxDurationMs);
  const maxLifetimeMs = l.maxLifetimeMs ?? 0;
  checkRange(maxLifetimeMs, "lifecycle.max_lifetime", 0, LIMITS.maxDurationMs);
  const maxRestarts = l.maxRestarts ?? DEFAULTS.maxRestarts;
  checkRange(maxRestarts, "lifecycle.max_restarts", 0, LIMITS.maxRestarts);

  const w = input.workspace ?? {};
  const mountPoint = w.mountPoint === undefined || w.mountPoint === "" ? DEFAULTS.mountPoint : w.mountPoint;
  checkString(mountPoint, "workspace.mount_point", LIMITS.mountPointLength);
  if (!mountPoint.startsWith("/") || mountPoint.split("/").some((s) => s === ".." || s === ".") || mountPoint === "/" || /[:,\s]/.test(mountPoint)) {
    throw invalidArgument("workspace.mount_point must be an absolute path without '..', ':', ',' or spaces, and not /", { field: "workspace.mount_point" });
  }
  if (["/run/agentorch", "/tmp", "/proc", "/sys", "/dev", "/etc", "/bin", "/usr", "/lib"].some((p) => mountPoint === p || mountPoint.startsWith(`${p}/`))) {
    throw invalidArgument(`workspace.mount_point may not be under a system directory (got ${mountPoint})`, { field: "workspace.mount_point" });
  }

  return {
    agentId,
    name,
    image,
    command,
    env,
    policy,
    resources: { memoryBytes, cpus, pidsLimit, maxOutputBytes },
    lifecycle: { maxIdleMs, maxLifetimeMs, restartOnCrash: l.restartOnCrash ?? false, maxRestarts },
    workspace: { mountPoint, readOnly: w.readOnly ?? false },
  };
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
