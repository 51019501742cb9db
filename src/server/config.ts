/**
 * The service's configuration, read once at start-up from the environment (and a few
 * command-line flags). Every value is checked here so that a typo fails the start with
 * a message naming the variable, instead of surfacing later as odd behaviour.
 */

/** Where the service listens for gRPC, gRPC-Web and Connect. */
export interface ListenAddress {
  host: string;
  /** 0 picks a free port. */
  port: number;
}

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

/** Everything the composition root needs; see README "Configuration". */
export interface Config {
  listen: ListenAddress;
  /** Holds the SQLite database and the agents' workspaces; one service instance per directory. */
  dataDir: string;
  /** The Docker engine, written as Docker's own tools read DOCKER_HOST (unix://, tcp://, ssh://). */
  dockerHost: string;
  /** Image name prefixes that may be used; empty allows every image the engine has. */
  imageAllowlist: string[];
  maxRunning: number;
  enforceIntervalMs: number;
  /** The non-root uid[:gid] containers run as. */
  containerUser: string;
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
  /** A2A mailboxes. */
  mailbox: {
    maxMessageBytes: number;
    maxUnackedMessages: number;
    maxUnackedBytes: number;
    keepAliveMs: number;
    ackedRetentionMs: number;
  };
}

/** A configuration value that cannot be used; the message names the variable or flag. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
  }
}

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
  return {
    listen: parseListen(listenName, listenText),
    dataDir: dataDirText,
    dockerHost: parseDockerHost(nonEmpty(env.DOCKER_HOST) ?? DEFAULT_DOCKER_HOST),
    imageAllowlist: (env.AGENTORCH_IMAGE_ALLOWLIST ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== ""),
    maxRunning: parseInteger(env, "AGENTORCH_MAX_RUNNING", 100, 1, 1_000_000),
    enforceIntervalMs: parseInteger(env, "AGENTORCH_ENFORCE_INTERVAL_MS", 5000, 10, 24 * 3600 * 1000),
    containerUser: parseContainerUser(nonEmpty(env.AGENTORCH_CONTAINER_USER) ?? "65534:65534"),
    maxRequestBytes: parseBytes(env, "AGENTORCH_MAX_REQUEST_BYTES", 4 * 1024 * 1024, 1024, MAX_SAFE_BYTES),
    shutdownGraceMs: parseInteger(env, "AGENTORCH_SHUTDOWN_GRACE_MS", 10_000, 0, 3600 * 1000),
    logLevel: parseLogLevel(nonEmpty(env.AGENTORCH_LOG_LEVEL) ?? "info"),
    eventRetention: parseInteger(env, "AGENTORCH_EVENT_RETENTION", 100_000, 1, 1_000_000_000),
    reapIntervalMs: parseInteger(env, "AGENTORCH_REAP_INTERVAL_MS", 30_000, 100, 24 * 3600 * 1000),
    watch: {
      bookmarkIntervalMs: parseInteger(env, "AGENTORCH_WATCH_BOOKMARK_INTERVAL_MS", 30_000, 0, 3600 * 1000),
      maxBuffer: parseInteger(env, "AGENTORCH_WATCH_MAX_BUFFER", 10_000, 1, 10_000_000),
    },
    mailbox: {
      maxMessageBytes: parseBytes(env, "AGENTORCH_MAX_MESSAGE_BYTES", 256 * 1024, 1024, 16 * 1024 * 1024),
      maxUnackedMessages: parseInteger(env, "AGENTORCH_MAILBOX_MAX_MESSAGES", 10_000, 1, 100_000_000),
      maxUnackedBytes: parseBytes(env, "AGENTORCH_MAILBOX_MAX_BYTES", 64 * 1024 * 1024, 1024, MAX_SAFE_BYTES),
      keepAliveMs: parseInteger(env, "AGENTORCH_MAILBOX_KEEPALIVE_MS", 30_000, 0, 3600 * 1000),
      ackedRetentionMs: parseInteger(env, "AGENTORCH_MAILBOX_ACKED_RETENTION_MS", 24 * 3600 * 1000, 0, 365 * 24 * 3600 * 1000),
    },
  };
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

function parseInteger(env: Record<string, string | undefined>, name: string, dflt: number, min: number, max: number): number {
  const text = nonEmpty(env[name]);
  if (text === undefined) return dflt;
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new ConfigError(name, `${name} must be an integer from ${min} to ${max} (got "${text}")`);
  }
  return Number(text);
}

const BYTE_UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3 };

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
