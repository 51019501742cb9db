/**
 * One listening socket (TCP port or unix socket) that serves HTTP/2 cleartext and
 * HTTP/1.1 with the same request handler, so gRPC, gRPC-Web and Connect all work on
 * one port. Node's cleartext http2 server ignores allowHTTP1, so each connection's first
 * bytes are sniffed: the HTTP/2 preface starts with "PRI ", anything else goes to the
 * HTTP/1.1 server (which answers garbage with 400 and closes).
 *
 * With TLS, every connection must start with a TLS handshake (cleartext HTTP/1.1 and
 * HTTP/2 clients get an error that says so). A tls.Server that never listens itself does the
 * handshake (ALPN h2 and http/1.1, a handshake timeout, client certificates asked for
 * but judged by the auth layer, see tls-peer.ts), then ALPN picks the same HTTP/2 or
 * HTTP/1.1 server as above, so the same limits, timeouts and graceful close apply.
 *
 * close() is graceful: stop accepting, GOAWAY to HTTP/2 sessions, close idle HTTP/1.1
 * connections, let in-flight calls finish, and after the grace period destroy what is
 * left. Long-lived streams are the application's to end (see app.shutdownSignal).
 */
import { chmod } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type tls from "node:tls";
import type { Logger } from "../core/ports.js";
import { answerEarlyWithClose } from "./early-answer.js";
import { createCleartextRefuser, createTlsServer, setSecureContext, TLS_HANDSHAKE_RECORD } from "./listener-tls.js";
import type { TlsServerOptions } from "./listener-tls.js";
import { listenOn, prepareSocketPath } from "./listen-on.js";
import { recordClientCertificate } from "./tls-peer.js";

/** What connectNodeAdapter returns: serves both http and http2 requests. */
export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface ListenerOptions {
  /** TCP: host and port (0 picks a free port). */
  host?: string;
  port?: number;
  /** Unix socket instead of TCP: its directory is created 0755; a stale socket file is replaced. */
  socketPath?: string;
  /** File mode of the unix socket. Default 0660 (owner and group may connect). */
  socketMode?: number;
  handler: RequestHandler;
  logger: Logger;
  /** How long close() lets in-flight calls run before destroying connections. Default 10 s. */
  graceMs?: number;
  /** A connection that has not sent enough bytes to be classified by then is dropped. Default 10 s. */
  sniffTimeoutMs?: number;
  /** HTTP/1.1: time allowed to receive request headers. Default 20 s. */
  headersTimeoutMs?: number;
  /** HTTP/1.1: an idle keep-alive connection is closed after this. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /** HTTP/2: a session without an open stream for this long gets GOAWAY. Default 60 s. */
  http2IdleTimeoutMs?: number;
  /** HTTP/2: streams a client may open at once per connection. Default 100. */
  maxConcurrentStreams?: number;
  /** Open connections; more are dropped at accept. Default 1024. */
  maxConnections?: number;
  /** The setting an operator raises when maxConnections is reached (named in the log). */
  maxConnectionsSetting?: string;
  /** Serve TLS instead of cleartext (TCP only). */
  tls?: ListenerTls;
}

/** TLS on a listener (see listener-tls.ts). */
export type ListenerTls = TlsServerOptions;

export type ListenerAddress = { host: string; port: number } | { socketPath: string };

/** A started (or startable) listener; see createListener. */
export interface Listener {
  listen(): Promise<ListenerAddress>;
  /** Graceful close; resolves once every connection is closed. Idempotent. */
  close(): Promise<void>;
  /** Open connections (for tests and logs). */
  connectionCount(): number;
  /**
   * TLS listeners: the certificate, key and client CA for new handshakes from now on
   * (open connections keep theirs). Throws, changing nothing, when they cannot be used.
   */
  setSecureContext(context: tls.SecureContextOptions): void;
}

const H2_PREFACE = Buffer.from("PRI ");
/** After a client's FIN, how long its HTTP/2 streams may still finish before the connection is cut. */
const HALF_CLOSED_GRACE_MS = 5000;
/** At most one "connection limit reached" line this often. */
const DROP_LOG_INTERVAL_MS = 10_000;
/** How long after an early gRPC answer its unread request stream is reset. */
const UNREAD_BODY_RESET_MS = 1000;
/** The longest it waits for that answer's END_STREAM to be sent before resetting anyway. */
const UNREAD_BODY_RESET_MAX_MS = 30_000;

/** Creates a listener for TCP (host/port) or a unix socket (socketPath); call listen() to start. */
export function createListener(opts: ListenerOptions): Listener {
  const log = opts.logger.child({ component: "listener" });
  const graceMs = opts.graceMs ?? 10_000;
  const sniffTimeoutMs = opts.sniffTimeoutMs ?? 10_000;
  const sockets = new Set<net.Socket>();
  const sniffing = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  let closing = false;
  let closed: Promise<void> | undefined;

  /** HTTP/1.1 responses not yet finished: at shutdown they are told not to keep the connection. */
  const h1Responses = new Set<http.ServerResponse>();
  const onRequest: RequestHandler = (req, res) => {
    if (res instanceof http.ServerResponse) {
      // A request that arrives during shutdown is still served, but its connection is not kept.
      if (closing) res.shouldKeepAlive = false;
      h1Responses.add(res);
      res.once("close", () => h1Responses.delete(res));
      answerEarlyWithClose(req as http.IncomingMessage, res);
    } else {
      // A gRPC error sent before the request body was read (e.g. a message over the size
      // limit) would leave the stream open for good: the client is blocked by flow control
      // and the compat layer has stopped reading. As gRPC servers do, reset the stream
      // (NO_ERROR) after the trailers that carry the status; they have no "sent" event, and
      // a reset queued right behind them can destroy them, so this waits a moment.
      const stream = (req as http2.Http2ServerRequest).stream;
      stream.once("finish", () => {
        if (req.complete) return;
        // Read and drop what is left at once: a stream reset while body bytes are still
        // unread (or on their way) leaks their size in Node's per-session memory account,
        // and once that passes maxSessionMemory (10 MB) every new stream of the connection
        // is refused with ENHANCE_YOUR_CALM (seen after ~18 oversize requests on one
        // connection; test/fault/bad-input.test.ts). A client that stops sending once
        // answered never gets reset at all; Node frees the stream when its body ends.
        stream.removeAllListeners("data");
        stream.on("data", () => undefined).resume();
        // Reset only once the status is out: "finish" means the response was handed over,
        // not sent, and on a busy process (load 30, 48 streams in flight) the trailers were
        // sometimes still queued a second later; the reset then dropped them and the client
        // saw a stream reset without any status (3 in 25,600 fuzzed gRPC calls). localClose
        // is set once our END_STREAM has been sent.
        const resetWhenSent = (waitedMs: number) => {
          if (stream.closed || stream.destroyed) return;
          if (stream.state.localClose !== 1 && waitedMs < UNREAD_BODY_RESET_MAX_MS) {
            setTimeout(() => resetWhenSent(waitedMs + UNREAD_BODY_RESET_MS), UNREAD_BODY_RESET_MS).unref();
            return;
          }
          stream.close(http2.constants.NGHTTP2_NO_ERROR);
        };
        setTimeout(() => resetWhenSent(UNREAD_BODY_RESET_MS), UNREAD_BODY_RESET_MS).unref();
      });
    }
    opts.handler(req, res);
  };

  const h1 = http.createServer(
    {
      requestTimeout: 300_000, // receiving a whole request; responses (streams) are not limited
      headersTimeout: opts.headersTimeoutMs ?? 20_000,
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5000,
    },
    onRequest,
  );
  h1.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
    log.debug({ err: err.message, code: err.code }, "bad HTTP/1.1 request; closing connection");
    if (socket.writable && !socket.destroyed) {
      if (err.code === "HPE_HEADER_OVERFLOW") {
        // Often a Connect GET whose message does not fit in the URL: say so in Connect's
        // error format (a bare 400 reads as INTERNAL to Connect clients).
        const body = '{"code":"resource_exhausted","message":"request header fields too large; send the request with POST"}';
        socket.end(
          `HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        );
      } else {
        socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      }
    }
    socket.destroy();
  });
  // The HTTP/1.1 server never listens itself; connection tracking (used by
  // closeIdleConnections and the headers/request timeouts) starts on "listening".
  h1.emit("listening");

  const h2 = http2.createServer({ settings: { maxConcurrentStreams: opts.maxConcurrentStreams ?? 100 } }, onRequest);
  h2.setTimeout(0);
  const http2IdleTimeoutMs = opts.http2IdleTimeoutMs ?? 60_000;
  let lastSession: http2.ServerHttp2Session | undefined;
  h2.on("session", (session: http2.ServerHttp2Session) => {
    lastSession = session;
    sessions.add(session);
    session.on("error", (err) => log.debug({ err: err.message }, "HTTP/2 session error"));
    if (closing) session.close();
    // Idle: no open stream for http2IdleTimeoutMs. GOAWAY, as grpc-go's max idle does.
    let open = 0;
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      idle = setTimeout(() => {
        log.debug({ http2IdleTimeoutMs }, "HTTP/2 session idle; closing it");
        session.close();
      }, http2IdleTimeoutMs);
      idle.unref();
    };
    armIdle();
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      open++;
      clearTimeout(idle);
      stream.once("close", () => {
        if (--open === 0 && !session.closed) armIdle();
      });
    });
    session.once("close", () => {
      clearTimeout(idle);
      sessions.delete(session);
    });
  });
  h2.on("sessionError", (err) => log.debug({ err: err.message }, "HTTP/2 session error"));

  // Half-open like http.Server's own sockets: a client that shuts its sending side after
  // a request still gets the response.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // Errors (resets) are normal for clients that vanish; the HTTP layers see them too.
    socket.on("error", (err: NodeJS.ErrnoException) => log.debug({ code: err.code }, "connection error"));
    if (closing) {
      socket.destroy();
      return;
    }
    sniff(socket);
  });
  server.on("error", (err) => log.error({ err }, "listener error"));
  server.maxConnections = opts.maxConnections ?? 1024;
  let dropped = 0;
  let lastDropLog = 0;
  server.on("drop", () => {
    dropped++;
    const now = Date.now();
    if (now - lastDropLog < DROP_LOG_INTERVAL_MS) return;
    lastDropLog = now;
    log.warn(
      { maxConnections: server.maxConnections, dropped, setting: opts.maxConnectionsSetting ?? "maxConnections" },
      "connection limit reached; dropping new connections",
    );
    dropped = 0;
  });

  const tlsServer =
    opts.tls === undefined
      ? undefined
      : createTlsServer(opts.tls, log, (socket, cert) => {
          if (closing) {
            socket.destroy();
            return;
          }
          if (socket.alpnProtocol === "h2") {
            lastSession = undefined;
            h2.emit("connection", socket);
            const session = lastSession as http2.ServerHttp2Session | undefined;
            if (session) {
              recordClientCertificate(session, cert);
              closeOnClientEnd(socket, session);
            }
          } else {
            recordClientCertificate(socket, cert);
            h1.emit("connection", socket);
          }
        });

  const refuseCleartext = tlsServer && createCleartextRefuser(log);

  function sniff(socket: net.Socket): void {
    sniffing.add(socket);
    let head: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      log.debug({}, "connection sent too little to classify; dropping it");
      socket.destroy();
    }, sniffTimeoutMs);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      sniffing.delete(socket);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", done);
    };
    const onEnd = () => {
      done();
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (tlsServer !== undefined) {
        done();
        socket.pause();
        if (head[0] !== TLS_HANDSHAKE_RECORD) return refuseCleartext!(socket, head);
        socket.unshift(head); // the TLS socket reads what is buffered first
        tlsServer.emit("connection", socket);
        return;
      }
      const n = Math.min(head.length, H2_PREFACE.length);
      const prefaceSoFar = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (prefaceSoFar && head.length < H2_PREFACE.length) return; // "P", "PR", "PRI": wait for more
      done();
      socket.pause();
      socket.unshift(head);
      if (prefaceSoFar) {
        // The HTTP/2 session reads the bytes already buffered on the next tick; resuming
        // here would let them flow past it.
        lastSession = undefined;
        h2.emit("connection", socket);
        const session = lastSession as http2.ServerHttp2Session | undefined;
        if (session) closeOnClientEnd(socket, session);
      } else {
        h1.emit("connection", socket);
        socket.resume(); // the HTTP/1.1 parser only listens for "data"
      }
    };
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", done);
  }

  /**
   * The sockets are half-open (allowHalfOpen, for HTTP/1.1 clients that shut their side
   * after a request), and an HTTP/2 session does not close itself on the client's FIN or
   * on a reset that its native reader sees: it would stay, socket and fd, for good. So:
   * FIN closes the session (GOAWAY; streams in flight may finish for a moment), a socket
   * error or close destroys it.
   */
  function closeOnClientEnd(socket: net.Socket, session: http2.ServerHttp2Session): void {
    socket.once("end", () => {
      if (session.destroyed) return;
      session.close();
      setTimeout(() => {
        if (!session.destroyed) session.destroy();
        socket.destroy();
      }, HALF_CLOSED_GRACE_MS).unref();
    });
    socket.once("error", () => session.destroy());
    socket.once("close", () => session.destroy());
  }

  return {
    async listen() {
      if (opts.socketPath !== undefined) {
        const socketPath = opts.socketPath;
        await prepareSocketPath(socketPath);
        await listenOn(server, { path: socketPath });
        await chmod(socketPath, opts.socketMode ?? 0o660);
        return { socketPath };
      }
      await listenOn(server, { host: opts.host ?? "127.0.0.1", port: opts.port ?? 0 });
      const addr = server.address() as net.AddressInfo;
      return { host: addr.address, port: addr.port };
    },

    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        const started = Date.now();
        for (const socket of sniffing) socket.destroy();
        for (const session of sessions) session.close(); // GOAWAY; open streams may finish
        for (const res of h1Responses) if (!res.headersSent) res.shouldKeepAlive = false;
        h1.closeIdleConnections();
        // In-flight HTTP/1.1 requests leave idle connections behind as they finish.
        const sweep = setInterval(() => h1.closeIdleConnections(), 50);
        const grace = setTimeout(() => {
          if (sockets.size > 0) log.warn({ connections: sockets.size, graceMs }, "grace period over; closing remaining connections");
          for (const session of sessions) session.destroy();
          for (const socket of sockets) socket.destroy();
        }, graceMs);
        grace.unref();
        const finish = () => {
          clearInterval(sweep);
          clearTimeout(grace);
          h1.close(); // stops its connection checker; it never listened itself
          log.info({ durationMs: Date.now() - started }, "listener closed");
          resolve();
        };
        // net.Server.close calls back once every connection (HTTP/1.1 or HTTP/2) has closed.
        if (server.listening) server.close(finish);
        else queueMicrotask(finish);
      });
      return closed;
    },

    connectionCount: () => sockets.size,

    setSecureContext(context) {
      if (tlsServer === undefined) throw new Error("this listener does not serve TLS");
      setSecureContext(tlsServer, context);
    },
  };
}
