/**
 * Where the CLI's clients connect: the address (host:port, http(s)://host:port or
 * unix:/path/to.sock), TLS (https://, --tls, or any --tls-* file) and the bearer token,
 * turned into one gRPC transport shared by every client of a command.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import type { Client, Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { LifecycleService } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { AgentOrchestratorService } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { usageError } from "./errors.js";

/** The default address when neither --addr nor AGENTORCH_ADDR is given. */
export const DEFAULT_ADDR = "127.0.0.1:50051";

/** A parsed --addr. */
export interface Endpoint {
  /** The base URL the transport uses (for a unix socket, a placeholder host). */
  baseUrl: string;
  /** Set for unix:/path addresses. */
  socketPath?: string;
  /** The address said http:// or https:// itself. */
  explicitScheme?: boolean;
}

/** The TLS options of the command line (--tls, --tls-ca, --tls-cert, --tls-key; AGENTORCH_CLI_TLS_*). */
export interface TlsFlags {
  tls?: boolean;
  /** PEM CA certificates to trust for the server's certificate (default: the system's). */
  tlsCa?: string;
  /** PEM client certificate and its key, for mutual TLS. */
  tlsCert?: string;
  tlsKey?: string;
}

/** Whether the flags or the address ask for TLS. */
export function wantsTls(addr: string, flags: TlsFlags): boolean {
  return /^https:\/\//.test(addr.trim()) || flags.tls === true || Boolean(flags.tlsCa || flags.tlsCert || flags.tlsKey);
}

/** Parses host:port, [v6]:port, http(s)://host:port or unix:/path (also unix:///path). */
export function parseAddr(addr: string): Endpoint {
  const text = addr.trim();
  if (text.startsWith("unix:")) {
    const socketPath = text.replace(/^unix:(\/\/)?/, "");
    if (!socketPath.startsWith("/")) throw usageError(`--addr ${addr}: a unix socket address needs an absolute path, e.g. unix:/run/agentorch.sock`);
    return { baseUrl: "http://localhost", socketPath };
  }
  if (/^https?:\/\//.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw usageError(`--addr ${addr}: not a valid URL`);
    }
    return { baseUrl: `${url.protocol}//${url.host}${url.pathname.replace(/\/$/, "")}`, explicitScheme: true };
  }
  if (!/^(\[[0-9A-Fa-f:.%\w]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(text)) {
    throw usageError(`--addr ${addr}: expected HOST:PORT, http://HOST:PORT or unix:/path/to.sock`);
  }
  return { baseUrl: `http://${text}` };
}

/** Adds `authorization: Bearer <token>` to every call. */
function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** The clients one command uses, over one HTTP/2 connection. */
export interface Clients {
  agents: Client<typeof AgentOrchestratorService>;
  lifecycle: Client<typeof LifecycleService>;
  health: Client<typeof Health>;
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw usageError(`${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** The endpoint with TLS applied (host:port becomes https://host:port) and the TLS files read. */
function tlsEndpoint(addr: string, flags: TlsFlags): { endpoint: Endpoint; tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer } } {
  const endpoint = parseAddr(addr);
  if (!wantsTls(addr, flags)) return { endpoint };
  if (endpoint.socketPath !== undefined) throw usageError(`--addr ${addr}: a unix socket is not served with TLS; drop --tls and the --tls-* options`);
  if (endpoint.explicitScheme && endpoint.baseUrl.startsWith("http://")) {
    throw usageError(`--addr ${addr} says http://, but TLS options are given: use https://${addr.trim().slice("http://".length)}`);
  }
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) throw usageError("--tls-cert and --tls-key go together: a client certificate needs its key");
  const tls = {
    ...(flags.tlsCa ? { ca: readPem("--tls-ca", flags.tlsCa) } : {}),
    ...(flags.tlsCert ? { cert: readPem("--tls-cert", flags.tlsCert) } : {}),
    ...(flags.tlsKey ? { key: readPem("--tls-key", flags.tlsKey) } : {}),
  };
  return { endpoint: { ...endpoint, baseUrl: endpoint.baseUrl.replace(/^http:/, "https:") }, tls };
}

/** Makes a gRPC transport for the address, with TLS when asked, sending the token when one is given. */
export function createTransport(addr: string, token: string | undefined, flags: TlsFlags = {}): Transport {
  const { endpoint, tls } = tlsEndpoint(addr, flags);
  const interceptors = token ? [bearer(token)] : [];
  const socketPath = endpoint.socketPath;
  return createGrpcTransport({
    baseUrl: endpoint.baseUrl,
    interceptors,
    ...(socketPath !== undefined ? { nodeOptions: { createConnection: () => net.connect(socketPath) } } : {}),
    ...(tls !== undefined ? { nodeOptions: tls } : {}),
  });
}

/** Creates the clients for a command. */
export function createClients(addr: string, token: string | undefined, flags: TlsFlags = {}): Clients {
  const transport = createTransport(addr, token, flags);
  const make = <S extends DescService>(s: S) => createClient(s, transport);
  return { agents: make(AgentOrchestratorService), lifecycle: make(LifecycleService), health: make(Health) };
}

/** Deadline for one unary call; streams have none (they last until the user stops them). */
export const UNARY_TIMEOUT_MS = 60_000;
