/**
 * Where the service may listen: the agent socket's path in the data directory, and the
 * rule for the TCP port (and the metrics port). A non-loopback address needs operator
 * credentials (tokens or certificate identities) and TLS, or, for the latter, an explicit
 * AGENTORCH_INSECURE_LISTEN=1 (behind a proxy or mesh that encrypts the traffic).
 */
import net from "node:net";
import path from "node:path";
import { ConfigError } from "./config-error.js";

/** Where the service listens for gRPC, gRPC-Web and Connect. */
export interface ListenAddress {
  host: string;
  /** 0 picks a free port. */
  port: number;
}

/** Where the agent socket lives in the data directory (mounted into containers as a directory). */
export function agentSocketPath(dataDir: string): string {
  return path.join(path.resolve(dataDir), "run", "agentorch.sock");
}

/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/** Refuses a data directory whose agent socket path would not fit in sun_path. */
export function checkAgentSocketPath(dataDir: string, name: string): void {
  const socketPath = agentSocketPath(dataDir);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new ConfigError(
      name,
      `${name} is too long for the agent socket: ${socketPath} has ${Buffer.byteLength(socketPath)} bytes, unix sockets allow ${MAX_SOCKET_PATH_BYTES}; choose a shorter data directory (got "${dataDir}")`,
    );
  }
}

/** True for addresses only this host can reach: 127.0.0.0/8, ::1 (also IPv4-mapped) and "localhost". */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice("::ffff:".length) : h;
  return net.isIPv4(v4) && v4.startsWith("127.");
}

/** What decides whether a TCP address may be listened on. */
export interface ListenSecurity {
  /** Operator credentials configured: tokens plus certificate identities. */
  credentials: number;
  /** TLS is configured (AGENTORCH_TLS_CERT and AGENTORCH_TLS_KEY). */
  tls: boolean;
  /** AGENTORCH_INSECURE_LISTEN=1: cleartext beyond loopback was asked for explicitly. */
  insecureListen: boolean;
}

/**
 * The secure default: without operator credentials the API has no authentication, and
 * without TLS tokens would cross the network in cleartext, so a non-loopback address needs
 * both (TLS may be waived with AGENTORCH_INSECURE_LISTEN=1). Throws a ConfigError naming
 * the listen setting otherwise.
 */
export function assertSecureListen(listen: ListenAddress, security: ListenSecurity, listenName = "AGENTORCH_LISTEN"): void {
  if (isLoopbackHost(listen.host)) return;
  const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
  const where = `${listenName} is ${host}:${listen.port}, which is not a loopback address`;
  if (security.credentials === 0) {
    throw new ConfigError(
      listenName,
      `${where}, and no operator tokens are configured: ` +
        "refusing to serve the API without authentication. Configure tokens with AGENTORCH_TOKENS or AGENTORCH_TOKENS_FILE " +
        '(lines NAME:ROLE:SHA256HEX; hash a token with: printf %s "$TOKEN" | sha256sum; or client certificate identities ' +
        "NAME:ROLE:cert:/CN=NAME with AGENTORCH_TLS_CLIENT_CA), or listen on 127.0.0.1.",
    );
  }
  if (!security.tls && !security.insecureListen) {
    throw new ConfigError(
      listenName,
      `${where}, and TLS is not configured: refusing to take bearer tokens from the network in cleartext. ` +
        'Set AGENTORCH_TLS_CERT and AGENTORCH_TLS_KEY (README "TLS and mTLS"), or, where a proxy or service mesh ' +
        "encrypts the traffic, say so with AGENTORCH_INSECURE_LISTEN=1.",
    );
  }
}
