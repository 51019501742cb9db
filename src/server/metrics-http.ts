/**
 * GET /metrics: the Prometheus text exposition. Served on the service port by default
 * (outside Connect's routing, like /healthz), or on a port of its own when
 * AGENTORCH_METRICS_LISTEN is set. When operator tokens are configured, a scraper must
 * send one of them (any role; Prometheus: `authorization: {credentials: TOKEN}`), on
 * either port: metrics name methods, agents' counts and the process, not for strangers.
 */
import http from "node:http";
import type net from "node:net";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { OperatorTokens } from "../core/auth.js";
import type { Logger } from "../core/ports.js";
import { parseBearer } from "../api/auth.js";
import type { ListenAddress } from "./config.js";
import type { Metrics } from "./metrics.js";

/** The requests and responses connect's fallback handles (HTTP/1.1 or HTTP/2). */
type Fallback = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
type Req = Parameters<Fallback>[0];
type Res = Parameters<Fallback>[1];

/** True for a request of the metrics path (any method; the query string is ignored). */
export function isMetricsPath(req: Req): boolean {
  const url = req.url ?? "";
  return url === "/metrics" || url.startsWith("/metrics?");
}

/** Says whether a request's bearer token may read the metrics. */
export type MetricsAccess = (authorization: string | undefined) => boolean;

/** Access for the configured operator tokens: open when there are none (loopback only then). */
export function metricsAccess(tokens: OperatorTokens): MetricsAccess {
  return (authorization) => {
    if (tokens.open) return true;
    const token = parseBearer(authorization);
    return token !== undefined && tokens.find(token) !== undefined;
  };
}

/** Answers a request for /metrics: GET or HEAD gets the exposition, other methods 405, no valid token 401. */
export function serveMetrics(metrics: Metrics, req: Req, res: Res, logger: Logger, access: MetricsAccess): void {
  const reply = (status: number, headers: Record<string, string | number>, body: string) => {
    if (res.headersSent || res.destroyed) return;
    (res as http.ServerResponse).writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) });
    if (req.method === "HEAD") res.end();
    else res.end(body);
  };
  if (!access(req.headers.authorization)) {
    reply(401, { "www-authenticate": "Bearer", "content-type": "text/plain; charset=utf-8" }, "send an operator token: authorization: Bearer <token>\n");
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    reply(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }, "method not allowed\n");
    return;
  }
  metrics.render().then(
    ({ contentType, body }) => reply(200, { "content-type": contentType, "cache-control": "no-store" }, body),
    (err: unknown) => {
      logger.warn({ err }, "collecting metrics failed");
      reply(500, { "content-type": "text/plain; charset=utf-8" }, "collecting metrics failed\n");
    },
  );
}

/** A separate HTTP/1.1 listener that serves only /metrics. */
export interface MetricsServer {
  listen(): Promise<{ host: string; port: number }>;
  /** Closes it and its connections; idempotent. */
  close(): Promise<void>;
}

/** Creates the metrics listener for address (port 0 picks a free port). */
export function createMetricsServer(metrics: Metrics, address: ListenAddress, logger: Logger, access: MetricsAccess): MetricsServer {
  const log = logger.child({ component: "metrics" });
  const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => {
    if (isMetricsPath(req)) return serveMetrics(metrics, req, res, log, access);
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "content-length": 10 });
    res.end("not found\n");
  });
  let closed: Promise<void> | undefined;
  return {
    listen() {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host: address.host, port: address.port }, () => {
          server.off("error", reject);
          const addr = server.address() as net.AddressInfo;
          log.info({ listen: `${addr.address}:${addr.port}` }, "metrics listening");
          resolve({ host: addr.address, port: addr.port });
        });
      });
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
