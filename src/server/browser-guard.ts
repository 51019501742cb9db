/**
 * What browsers may do, on the TCP listener (the agent socket has no browsers):
 * - DNS rebinding: with no operator tokens the API is open to whoever reaches the loopback
 *   address, and a web page whose host name is rebound to 127.0.0.1 reaches it too. So in
 *   that mode only loopback host names are accepted in Host/:authority (127.0.0.0/8,
 *   localhost, [::1], any port).
 * - CORS: a request carrying an Origin other than the service's own is refused unless the
 *   origin is in AGENTORCH_CORS_ORIGINS; allowed origins get their preflight answered and
 *   the Access-Control-* headers that let a page read gRPC-Web and Connect answers.
 * Refusals answer PERMISSION_DENIED in the caller's protocol (gRPC trailers-only, or a
 * Connect error) and name the setting; GET /healthz stays open to probes.
 */
import type http from "node:http";
import type http2 from "node:http2";
import type { Logger } from "../core/ports.js";
import { isLoopbackHost } from "./config.js";
import { encodeGrpcMessage } from "./grpc-message.js";
import type { RequestHandler } from "./listener.js";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** Request headers a page may send (gRPC-Web, Connect, auth, tracing). */
const ALLOW_HEADERS = [
  "authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding",
  "connect-protocol-version", "connect-timeout-ms", "connect-content-encoding", "connect-accept-encoding",
  "content-encoding", "accept-encoding", "traceparent", "tracestate", "x-agentorch-agent-id",
].join(", ");
/** Response headers a page may read. */
const EXPOSE_HEADERS = [
  "grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-encoding", "grpc-accept-encoding",
  "connect-content-encoding", "connect-accept-encoding", "content-encoding", "date",
].join(", ");
const PREFLIGHT_MAX_AGE_S = 600;

export interface BrowserGuardOptions {
  /** No operator tokens: only loopback Host names are accepted. */
  loopbackOnly: boolean;
  /** Allowed origins ("*": any). */
  corsOrigins: readonly string[];
  logger: Logger;
}

/** Wraps the TCP listener's handler with the Host and Origin checks and CORS. */
export function withBrowserGuard(handler: RequestHandler, opts: BrowserGuardOptions): RequestHandler {
  const log = opts.logger.child({ component: "browser-guard" });
  const allowed = new Set(opts.corsOrigins);
  return (req, res) => {
    if (req.socket.remoteAddress === undefined) return handler(req, res); // the agent socket
    const host = hostOf(req);
    const probe = req.method === "GET" && (req.url === "/healthz" || req.url?.startsWith("/healthz?"));
    if (opts.loopbackOnly && host !== undefined && !isLoopbackHost(hostnameOf(host)) && !probe) {
      log.info({ host }, "request refused: not a loopback Host");
      return refuse(req, res, `Host "${host}" is not a loopback name: without operator tokens (AGENTORCH_TOKENS) the API answers only to 127.0.0.1, localhost and [::1]`);
    }
    const origin = header(req, "origin");
    const scheme = (req.socket as { encrypted?: boolean }).encrypted === true ? "https:" : "http:";
    if (origin === undefined || sameOrigin(origin, host, scheme)) return handler(req, res);
    if (!allowed.has(origin) && !allowed.has("*")) {
      log.info({ origin }, "request refused: origin not in AGENTORCH_CORS_ORIGINS");
      return refuse(req, res, `origin ${origin} may not call this API: add it to AGENTORCH_CORS_ORIGINS`);
    }
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("vary", "Origin");
    if (req.method === "OPTIONS" && header(req, "access-control-request-method") !== undefined) {
      res.writeHead(204, {
        "access-control-allow-methods": "POST, GET",
        "access-control-allow-headers": ALLOW_HEADERS,
        "access-control-max-age": String(PREFLIGHT_MAX_AGE_S),
        "content-length": "0",
      });
      res.end();
      return;
    }
    res.setHeader("access-control-expose-headers", EXPOSE_HEADERS);
    handler(req, res);
  };
}

function header(req: Req, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** Host (HTTP/1.1) or :authority (HTTP/2). */
function hostOf(req: Req): string | undefined {
  return header(req, ":authority") ?? header(req, "host");
}

/** "127.0.0.1:50051" -> "127.0.0.1", "[::1]:80" -> "::1". */
function hostnameOf(host: string): string {
  if (host.startsWith("[")) return host.slice(1, host.indexOf("]") >>> 0);
  const colon = host.lastIndexOf(":");
  return colon >= 0 ? host.slice(0, colon) : host;
}

/** The page's origin is the service's own: same scheme (http or, over TLS, https), host and port. */
function sameOrigin(origin: string, host: string | undefined, scheme: "http:" | "https:"): boolean {
  if (host === undefined) return false;
  try {
    const u = new URL(origin);
    return u.protocol === scheme && u.host === new URL(`${scheme}//${host}`).host;
  } catch {
    return false;
  }
}

/** PERMISSION_DENIED in the caller's protocol. */
function refuse(req: Req, res: Res, message: string): void {
  const type = header(req, "content-type") ?? "";
  if (type.startsWith("application/grpc")) {
    // Trailers-only: gRPC and gRPC-Web clients read the status from these headers.
    res.writeHead(200, { "content-type": type.split(";")[0]!, "grpc-status": "7", "grpc-message": encodeGrpcMessage(message) });
    res.end();
    return;
  }
  const body = JSON.stringify({ code: "permission_denied", message });
  res.writeHead(403, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}
