/**
 * The service's configuration, read once at start-up from the environment (and a few
 * command-line flags). Every value is checked here so that a typo fails the start with
 * a message naming the variable, instead of surfacing later as odd behaviour.
 */
import path from "node:path";
import { availableParallelism } from "node:os";
import { type AgentCeilings, CEILING_RANGES, CEILING_VARIABLES, DEFAULT_AGENT_CEILINGS } from "../core/agent-ceilings.js";
import { DEFAULT_MOUNT_PREFIXES, SYSTEM_DIRECTORIES, isUnderPath } from "../core/agent-config.js";
import type { CertIdentity, OperatorToken } from "../core/auth.js";
import { ConfigError } from "./config-error.js";
import { type DeployConfig, parseDeployConfig } from "./config-deploy.js";
import { agentSocketPath, assertSecureListen, checkAgentSocketPath, isLoopbackHost } from "./config-listen.js";
import type { ListenAddress, ListenSecurity } from "./config-listen.js";
import { checkIdentitiesUsable, loadTlsMaterial, parseInsecureListen, parseTlsSettings } from "./config-tls.js";
import type { TlsSettings } from "./config-tls.js";
import { parseOperatorCredentials, parseOperatorTokens } from "./config-tokens.js";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

/** Everything the composition root needs; see README "Configuration". */
export interface Config extends DeployConfig {
  listen: ListenAddress;
  /** A separate address for GET /metrics; undefined: /metrics is served on the service port. */
  metricsListen?: ListenAddress;
  /** Holds the SQLite database and the agents' workspaces; one service instance per directory. */
  dataDir: string;
  /** The Docker engine, written as Docker's own tools read DOCKER_HOST (unix://, tcp://, ssh://). */
  dockerHost: string;
  /** Image name prefixes that may be used; empty allows every image the engine has. */
  imageAllowlist: string[];
  /** Where agents' workspaces may be mounted in their containers: these paths and those under them. */
  workspaceMountPrefixes: string[];
  /** Agent ids and images (prefixes on a boundary) that may use SANDBOX_POLICY_CONTAINER_DIRECT without the admin role. */
  networkAllowlist: string[];
  /** The starting ceilings on what an operator may ask of a container (UpdateLifecycleConfig changes them live). */
  agentCeilings: AgentCeilings;
  maxRunning: number;
  enforceIntervalMs: number;
  /** The non-root uid[:gid] containers run as. */
  containerUser: string;
  /** Which workspaces are size-limited filesystem images: those that ask (asked), every one (all), none (off). */
  workspaceQuota: "asked" | "all" | "off";
  /** Largest request message accepted, in bytes. */
  maxRequestBytes: number;
  /** How long a shutdown waits for in-flight calls before cutting connections. */
  shutdownGraceMs: number;
  logLevel: LogLevel;
  /** How many events the log keeps for resuming watches. */
  eventRetention: number;
  /** How often the zombie reaper runs. */
  reapIntervalMs: number;
  /** Watch streams: heartbeat BOOKMARK interval, and events held for a slow consumer before it is cut off. */
  watch: { bookmarkIntervalMs: number; maxBuffer: number };
  /**
   * Operator bearer tokens (names, roles, SHA-256 hashes) from AGENTORCH_TOKENS and
   * AGENTORCH_TOKENS_FILE. With no certIdentities either: no authentication on the TCP
   * listener, which must then be a loopback address (see assertSecureListen).
   */
  operatorTokens: OperatorToken[];
  /** Client certificate identities (NAME:ROLE:cert:SUBJECT entries of the same settings). */
  certIdentities: CertIdentity[];
  /** TLS on the TCP port (and the metrics port); undefined: cleartext. */
  tls?: TlsSettings;
  /** AGENTORCH_INSECURE_LISTEN=1: a non-loopback address without TLS is allowed (a warning is logged). */
  insecureListen: boolean;
  /** Bounds of the front door: connections, HTTP/2 streams, request bodies, browsers. */
  net: NetLimits;
  /** A2A mailboxes. */
  mailbox: {
    maxMessageBytes: number;
    maxUnackedMessages: number;
    maxUnackedBytes: number;
    maxUnackedPerSender: number;
    maxUnackedBytesPerSender: number;
    keepAliveMs: number;
    ackedRetentionMs: number;
  };
}

/** Connection and request-body bounds; each has its AGENTORCH_* variable (README "Configuration"). */
export interface NetLimits {
  /** Open connections on the TCP listener (AGENTORCH_MAX_CONNECTIONS); more are dropped. */
  maxConnections: number;
  /** Open connections on the agent socket (AGENTORCH_AGENT_SOCKET_MAX_CONNECTIONS). */
  agentSocketMaxConnections: number;
  /** An HTTP/2 session with no open stream for this long gets GOAWAY (AGENTORCH_HTTP2_IDLE_TIMEOUT_MS). */
  http2IdleTimeoutMs: number;
  /** An idle HTTP/1.1 keep-alive connection is closed after this (AGENTORCH_HTTP1_KEEPALIVE_TIMEOUT_MS). */
  http1KeepAliveTimeoutMs: number;
  /** Streams a client may open at once on one HTTP/2 connection (AGENTORCH_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
  /** A request message must arrive within this (AGENTORCH_REQUEST_BODY_TIMEOUT_MS). */
  requestBodyTimeoutMs: number;
  /** Bytes of all request bodies being received at once (AGENTORCH_MAX_INFLIGHT_BODY_BYTES). */
  maxInflightBodyBytes: number;
  /** Browser origins allowed to call the API (AGENTORCH_CORS_ORIGINS); empty: none but the service's own. */
  corsOrigins: string[];
}

export { ConfigError };

export const DEFAULT_LISTEN = "127.0.0.1:50051";
export const DEFAULT_DATA_DIR = "./.agentorch-data";
export const DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock";

const LOG_LEVELS: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const MAX_SAFE_BYTES = 2 ** 32 - 1; // connect's own ceiling for readMaxBytes

/**
 * Reads the configuration from env (e.g. process.env) and argv (process.argv.slice(2)).
 * Flags win over variables: --listen HOST:PORT, --data-dir DIR (also --flag=value).
 * Throws ConfigError on the first invalid value.
 */
export function loadConfig(env: Record<string, string | undefined>, argv: readonly string[] = []): Config {
  const flags = parseFlags(argv);
  const listenText = flags["--listen"] ?? nonEmpty(env.AGENTORCH_LISTEN) ?? DEFAULT_LISTEN;
  const listenName = flags["--listen"] !== undefined ? "--listen" : "AGENTORCH_LISTEN";
  const dataDirText = flags["--data-dir"] ?? nonEmpty(env.AGENTORCH_DATA_DIR) ?? DEFAULT_DATA_DIR;
  const metricsText = nonEmpty(env.AGENTORCH_METRICS_LISTEN);
  const listen = parseListen(listenName, listenText);
  const { tokens: operatorTokens, identities: certIdentities } = parseOperatorCredentials(env);
  const tls = parseTlsSettings(env);
  if (tls !== undefined) loadTlsMaterial(tls); // unreadable or mismatched files fail the start
  checkIdentitiesUsable(certIdentities, tls);
  const security = listenSecurity({ operatorTokens, certIdentities, tls, insecureListen: parseInsecureListen(env) });
  assertSecureListen(listen, security, listenName);
  // /metrics on its own port wants the same protection: tokens (scrapers send one) and TLS, or loopback.
  if (metricsText !== undefined) assertSecureListen(parseListen("AGENTORCH_METRICS_LISTEN", metricsText), security, "AGENTORCH_METRICS_LISTEN");
  checkAgentSocketPath(dataDirText, flags["--data-dir"] !== undefined ? "--data-dir" : "AGENTORCH_DATA_DIR");
  return {
    ...parseDeployConfig(env),
    listen,
    operatorTokens,
    certIdentities,
    ...(tls !== undefined ? { tls } : {}),
    insecureListen: security.insecureListen,
    metricsListen: metricsText === undefined ? undefined : parseListen("AGENTORCH_METRICS_LISTEN", metricsText),
    dataDir: dataDirText,
    dockerHost: parseDockerHost(nonEmpty(env.DOCKER_HOST) ?? DEFAULT_DOCKER_HOST),
    imageAllowlist: (env.AGENTORCH_IMAGE_ALLOWLIST ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== ""),
    workspaceMountPrefixes: parseMountPrefixes(nonEmpty(env.AGENTORCH_WORKSPACE_MOUNT_PREFIXES)),
    networkAllowlist: (env.AGENTORCH_NETWORK_ALLOWLIST ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== ""),
    agentCeilings: parseAgentCeilings(env),
    maxRunning: parseInteger(env, "AGENTORCH_MAX_RUNNING", 100, 1, 1_000_000),
    enforceIntervalMs: parseInteger(env, "AGENTORCH_ENFORCE_INTERVAL_MS", 5000, 10, 24 * 3600 * 1000),
    containerUser: parseContainerUser(nonEmpty(env.AGENTORCH_CONTAINER_USER) ?? "65534:65534"),
    workspaceQuota: parseChoice(env, "AGENTORCH_WORKSPACE_QUOTA", ["asked", "all", "off"] as const, "asked"),
    maxRequestBytes: parseBytes(env, "AGENTORCH_MAX_REQUEST_BYTES", 4 * 1024 * 1024, 1024, MAX_SAFE_BYTES),
    shutdownGraceMs: parseInteger(env, "AGENTORCH_SHUTDOWN_GRACE_MS", 10_000, 0, 3600 * 1000),
    logLevel: parseLogLevel(nonEmpty(env.AGENTORCH_LOG_LEVEL) ?? "info"),
    eventRetention: parseInteger(env, "AGENTORCH_EVENT_RETENTION", 100_000, 1, 1_000_000_000),
    reapIntervalMs: parseInteger(env, "AGENTORCH_REAP_INTERVAL_MS", 30_000, 100, 24 * 3600 * 1000),
    watch: {
      bookmarkIntervalMs: parseInteger(env, "AGENTORCH_WATCH_BOOKMARK_INTERVAL_MS", 30_000, 0, 3600 * 1000),
      maxBuffer: parseInteger(env, "AGENTORCH_WATCH_MAX_BUFFER", 10_000, 1, 10_000_000),
    },
    net: parseNetLimits(env),
    mailbox: {
      maxMessageBytes: parseBytes(env, "AGENTORCH_MAX_MESSAGE_BYTES", 256 * 1024, 1024, 16 * 1024 * 1024),
      maxUnackedMessages: parseInteger(env, "AGENTORCH_MAILBOX_MAX_MESSAGES", 10_000, 1, 100_000_000),
      maxUnackedBytes: parseBytes(env, "AGENTORCH_MAILBOX_MAX_BYTES", 64 * 1024 * 1024, 1024, MAX_SAFE_BYTES),
      maxUnackedPerSender: parseInteger(env, "AGENTORCH_MAILBOX_MAX_PER_SENDER", 1000, 1, 100_000_000),
      maxUnackedBytesPerSender: parseBytes(env, "AGENTORCH_MAILBOX_MAX_BYTES_PER_SENDER", 16 * 1024 * 1024, 1024, MAX_SAFE_BYTES),
      keepAliveMs: parseInteger(env, "AGENTORCH_MAILBOX_KEEPALIVE_MS", 30_000, 0, 3600 * 1000),
      ackedRetentionMs: parseInteger(env, "AGENTORCH_MAILBOX_ACKED_RETENTION_MS", 24 * 3600 * 1000, 0, 365 * 24 * 3600 * 1000),
    },
  };
}

function parseNetLimits(env: Record<string, string | undefined>): NetLimits {
  return {
    maxConnections: parseInteger(env, "AGENTORCH_MAX_CONNECTIONS", 1024, 1, 1_000_000),
    agentSocketMaxConnections: parseInteger(env, "AGENTORCH_AGENT_SOCKET_MAX_CONNECTIONS", 1024, 1, 1_000_000),
    http2IdleTimeoutMs: parseInteger(env, "AGENTORCH_HTTP2_IDLE_TIMEOUT_MS", 60_000, 100, 24 * 3600 * 1000),
    http1KeepAliveTimeoutMs: parseInteger(env, "AGENTORCH_HTTP1_KEEPALIVE_TIMEOUT_MS", 5000, 100, 3600 * 1000),
    maxConcurrentStreams: parseInteger(env, "AGENTORCH_MAX_CONCURRENT_STREAMS", 100, 1, 100_000),
    requestBodyTimeoutMs: parseInteger(env, "AGENTORCH_REQUEST_BODY_TIMEOUT_MS", 30_000, 100, 3600 * 1000),
    maxInflightBodyBytes: parseBytes(env, "AGENTORCH_MAX_INFLIGHT_BODY_BYTES", 64 * 1024 * 1024, 64 * 1024, 2 ** 40),
    corsOrigins: parseCorsOrigins(env.AGENTORCH_CORS_ORIGINS ?? ""),
  };
}

/**
 * AGENTORCH_CORS_ORIGINS: comma-separated origins (scheme://host[:port], as browsers send
 * them in Origin) whose pages may call the API; "*" allows any. Paths are refused.
 */
function parseCorsOrigins(text: string): string[] {
  const out: string[] = [];
  for (const item of text.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    if (item === "*") {
      out.push(item);
      continue;
    }
    let url: URL | undefined;
    try {
      url = new URL(item);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:") || url.origin !== item.replace(/\/$/, "").toLowerCase()) {
      throw new ConfigError(
        "AGENTORCH_CORS_ORIGINS",
        `AGENTORCH_CORS_ORIGINS entries must be origins like https://app.example.com or http://localhost:3000 (scheme, host, optional port; no path), or * (got "${item}")`,
      );
    }
    out.push(url.origin);
  }
  return out;
}

/** Parses "host:port", "[v6]:port" or ":port" (all interfaces). */
export function parseListen(name: string, text: string): ListenAddress {
  const bad = (why: string) => new ConfigError(name, `${name} must be HOST:PORT (e.g. 127.0.0.1:50051 or [::1]:50051): ${why} (got "${text}")`);
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") throw bad("unclosed [ or missing :PORT");
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (host === "" || !host.includes(":")) throw bad("brackets are for IPv6 addresses");
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) throw bad("missing :PORT");
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) throw bad("write IPv6 addresses in brackets");
    if (host === "") host = "0.0.0.0";
  }
  if (!/^[A-Za-z0-9.\-:%]+$/.test(host)) throw bad("invalid host");
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw bad("port must be 0-65535");
  return { host, port: Number(portText) };
}

function parseFlags(argv: readonly string[]): Record<string, string> {
  const known = new Set(["--listen", "--data-dir"]);
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    if (!known.has(name)) throw new ConfigError(name, `unknown flag "${name}" (known: --listen HOST:PORT, --data-dir DIR)`);
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else value = argv[++i];
    if (value === undefined || value === "") throw new ConfigError(name, `${name} needs a value`);
    out[name] = value;
  }
  return out;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

function parseChoice<T extends string>(env: Record<string, string | undefined>, name: string, choices: readonly T[], dflt: T): T {
  const text = nonEmpty(env[name]) ?? dflt;
  if (!(choices as readonly string[]).includes(text)) throw new ConfigError(name, `${name} must be one of ${choices.join(", ")} (got "${text}")`);
  return text as T;
}

function parseInteger(env: Record<string, string | undefined>, name: string, dflt: number, min: number, max: number): number {
  const text = nonEmpty(env[name]);
  if (text === undefined) return dflt;
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new ConfigError(name, `${name} must be an integer from ${min} to ${max} (got "${text}")`);
  }
  return Number(text);
}

const BYTE_UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tib: 1024 ** 4 };

function parseBytes(env: Record<string, string | undefined>, name: string, dflt: number, min: number, max: number): number {
  const text = nonEmpty(env[name]);
  if (text === undefined) return dflt;
  const m = /^(\d+)\s*([A-Za-z]*)$/.exec(text);
  const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  const value = m && unit !== undefined ? Number(m[1]) * unit : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(name, `${name} must be a size from ${min} to ${max} bytes, e.g. 4194304 or 4MiB (got "${text}")`);
  }
  return value;
}

/** The AGENTORCH_MAX_AGENT_* ceilings and AGENTORCH_DEFAULT_AGENT_CPUS, each in its admin-settable range. */
function parseAgentCeilings(env: Record<string, string | undefined>): AgentCeilings {
  const bytes = (key: keyof AgentCeilings) => parseBytes(env, CEILING_VARIABLES[key], DEFAULT_AGENT_CEILINGS[key], CEILING_RANGES[key][1], CEILING_RANGES[key][2]);
  const cpus = (key: keyof AgentCeilings, dflt: number) => {
    const name = CEILING_VARIABLES[key];
    const [, min, max] = CEILING_RANGES[key];
    const text = nonEmpty(env[name]);
    if (text === undefined) return dflt;
    const v = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
    if (!(v >= min && v <= max)) throw new ConfigError(name, `${name} must be a number of CPU cores from ${min} to ${max}, e.g. 1.5 (got "${text}")`);
    return v;
  };
  const c: AgentCeilings = {
    maxAgentMemoryBytes: bytes("maxAgentMemoryBytes"),
    maxAgentCpus: cpus("maxAgentCpus", availableParallelism()),
    maxAgentPids: parseInteger(env, CEILING_VARIABLES.maxAgentPids, DEFAULT_AGENT_CEILINGS.maxAgentPids, CEILING_RANGES.maxAgentPids[1], CEILING_RANGES.maxAgentPids[2]),
    maxAgentOutputBytes: bytes("maxAgentOutputBytes"),
    maxAgentDiskBytes: bytes("maxAgentDiskBytes"),
    defaultAgentCpus: cpus("defaultAgentCpus", DEFAULT_AGENT_CEILINGS.defaultAgentCpus),
  };
  if (c.defaultAgentCpus > c.maxAgentCpus) {
    const name = CEILING_VARIABLES.defaultAgentCpus;
    throw new ConfigError(name, `${name} (${c.defaultAgentCpus}) may not be above ${CEILING_VARIABLES.maxAgentCpus} (${c.maxAgentCpus})`);
  }
  return c;
}

/** AGENTORCH_WORKSPACE_MOUNT_PREFIXES: absolute, normalised paths, none of them / or a system directory. */
function parseMountPrefixes(text: string | undefined): string[] {
  if (text === undefined) return [...DEFAULT_MOUNT_PREFIXES];
  const name = "AGENTORCH_WORKSPACE_MOUNT_PREFIXES";
  const out = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (out.length === 0) throw new ConfigError(name, `${name} must list at least one absolute path, e.g. /workspace,/data (got "${text}")`);
  for (const p of out) {
    const normal = path.posix.normalize(p);
    if (!p.startsWith("/") || normal !== p || p === "/" || p.endsWith("/") || /[:\s]/.test(p)) {
      throw new ConfigError(name, `${name}: "${p}" must be an absolute, normalised path other than /, without ':' or spaces, e.g. /workspace`);
    }
    if (SYSTEM_DIRECTORIES.some((s) => isUnderPath(p, s) || isUnderPath(s, p))) {
      throw new ConfigError(name, `${name}: "${p}" is or holds a system directory (${SYSTEM_DIRECTORIES.join(", ")})`);
    }
  }
  return out;
}

function parseDockerHost(text: string): string {
  const m = /^(unix|tcp|ssh):\/\/(.+)$/.exec(text);
  if (!m) {
    throw new ConfigError("DOCKER_HOST", `DOCKER_HOST must be unix:///path/to/docker.sock, tcp://HOST:PORT or ssh://USER@HOST (got "${text}")`);
  }
  if (m[1] === "unix" && !m[2]!.startsWith("/")) {
    throw new ConfigError("DOCKER_HOST", `DOCKER_HOST unix socket path must be absolute, e.g. unix:///var/run/docker.sock (got "${text}")`);
  }
  return text;
}

function parseContainerUser(text: string): string {
  const m = /^(\d+)(?::(\d+))?$/.exec(text);
  if (!m || Number(m[1]) === 0 || Number(m[1]) > 2 ** 31 || (m[2] !== undefined && Number(m[2]) > 2 ** 31)) {
    throw new ConfigError("AGENTORCH_CONTAINER_USER", `AGENTORCH_CONTAINER_USER must be a non-root numeric UID[:GID], e.g. 65534:65534 (got "${text}")`);
  }
  return text;
}

function parseLogLevel(text: string): LogLevel {
  const level = text.toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(level)) {
    throw new ConfigError("AGENTORCH_LOG_LEVEL", `AGENTORCH_LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")} (got "${text}")`);
  }
  return level;
}

export { agentSocketPath, assertSecureListen, isLoopbackHost, parseOperatorCredentials, parseOperatorTokens };
export type { ListenAddress, ListenSecurity, TlsSettings };

/** The listen rule's inputs from a configuration (see assertSecureListen). */
export function listenSecurity(config: Pick<Config, "operatorTokens" | "certIdentities" | "tls" | "insecureListen">): ListenSecurity {
  return { credentials: config.operatorTokens.length + config.certIdentities.length, tls: config.tls !== undefined, insecureListen: config.insecureListen };
}
