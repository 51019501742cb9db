/**
 * GET /metrics: the Prometheus text exposition. Served on the service port by default
 * (outside Connect's routing, like /healthz), or on a port of its own when
 * AGENTORCH_METRICS_LISTEN is set. When operator tokens are configured, a scraper must
 * send one of them (any role; Prometheus: `authorization: {credentials: TOKEN}`) or a
 * client certificate of a configured identity, on either port: metrics name methods,
 * agents' counts and the process, not for strangers. With TLS configured, the metrics
 * port serves TLS too, with the same certificate (reloaded with it).
 */
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import type tls from "node:tls";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { ClientCertificate, OperatorTokens } from "../core/auth.js";
import type { Logger } from "../core/ports.js";
import { authenticateOperator, parseBearer } from "../api/auth.js";
import type { ListenAddress } from "./config-listen.js";
import type { Metrics } from "./metrics.js";
import { clientCertificateOf } from "./tls-peer.js";

/** The requests and responses connect's fallback handles (HTTP/1.1 or HTTP/2). */
type Fallback = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
type Req = Parameters<Fallback>[0];
type Res = Parameters<Fallback>[1];

/** True for a request of the metrics path (any method; the query string is ignored). */
export function isMetricsPath(req: Req): boolean {
  const url = req.url ?? "";
  return url === "/metrics" || url.startsWith("/metrics?");
}

/** Says whether a request's bearer token (or TLS client certificate) may read the metrics. */
export type MetricsAccess = (authorization: string | undefined, certificate?: ClientCertificate) => boolean;

/** Access for the configured operator credentials: open when there are none (loopback only then). */
export function metricsAccess(tokens: OperatorTokens, certificateRequired = false): MetricsAccess {
  return (authorization, certificate) => {
    try {
      authenticateOperator(tokens, { token: parseBearer(authorization), certificate }, certificateRequired);
      return true;
    } catch {
      return false;
    }
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
  if (!access(req.headers.authorization, clientCertificateOf(req))) {
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
  /** With TLS: the certificate, key and client CA for new handshakes (a reload). */
  setSecureContext(context: tls.SecureContextOptions): void;
}

/** TLS for the metrics port: the service port's certificate, and whether to ask for client certificates. */
export interface MetricsTls {
  context: tls.SecureContextOptions;
  requestCert: boolean;
  handshakeTimeoutMs: number;
}

/** Creates the metrics listener for address (port 0 picks a free port); HTTPS when tlsOptions are given. */
export function createMetricsServer(metrics: Metrics, address: ListenAddress, logger: Logger, access: MetricsAccess, tlsOptions?: MetricsTls): MetricsServer {
  const log = logger.child({ component: "metrics" });
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (isMetricsPath(req)) return serveMetrics(metrics, req, res, log, access);
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "content-length": 10 });
    res.end("not found\n");
  };
  const timeouts = { requestTimeout: 30_000, headersTimeout: 10_000 };
  const server =
    tlsOptions === undefined
      ? http.createServer(timeouts, onRequest)
      : https.createServer(
          { ...timeouts, ...tlsOptions.context, requestCert: tlsOptions.requestCert, rejectUnauthorized: false, handshakeTimeout: tlsOptions.handshakeTimeoutMs },
          onRequest,
        );
  // Failed handshakes: https.Server leaves those sockets to their listener.
  server.on("tlsClientError", (err: Error, socket: tls.TLSSocket) => {
    log.debug({ err: err.message }, "TLS handshake failed on the metrics port");
    socket.destroy();
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
    setSecureContext(context) {
      if (!(server instanceof https.Server)) throw new Error("the metrics port does not serve TLS");
      server.setSecureContext(context);
    },
  };
}
