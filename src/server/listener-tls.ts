/**
 * The TLS side of the listener (listener.ts): a tls.Server that never listens itself but
 * is handed the sockets the listener accepted, does their handshake (ALPN h2 and
 * http/1.1, a handshake timeout, client certificates asked for but never refused here:
 * the verdict goes with the connection to the auth layer, which can say what is wrong),
 * and hands each secured socket back for HTTP/2 or HTTP/1.1.
 */
import http2 from "node:http2";
import type net from "node:net";
import tls from "node:tls";
import type { ClientCertificate } from "../core/auth.js";
import type { Logger } from "../core/ports.js";
import { describeClientCertificate } from "./tls-peer.js";

/** The first byte of a TLS connection: a handshake record. */
export const TLS_HANDSHAKE_RECORD = 0x16;

/** TLS on a listener (ListenerOptions.tls). */
export interface TlsServerOptions {
  /** Certificate chain, key and client CA for new handshakes (setSecureContext replaces them). */
  context: tls.SecureContextOptions;
  /**
   * Ask clients for a certificate (verified against context.ca). The handshake never fails
   * for want of a good one: the verdict is recorded for the auth layer, which refuses calls
   * with a message that says what is wrong with the certificate.
   */
  requestCert: boolean;
  /** A connection must finish its handshake within this. Default 10 s. */
  handshakeTimeoutMs?: number;
}

/**
 * The handshaking tls.Server; `secured` gets each socket once its handshake is done, with
 * its client certificate's verdict. Give it sockets with `server.emit("connection", socket)`.
 */
export function createTlsServer(
  options: TlsServerOptions,
  log: Logger,
  secured: (socket: tls.TLSSocket, cert: ClientCertificate) => void,
): tls.Server {
  const server = tls.createServer({
    ...options.context,
    ALPNProtocols: ["h2", "http/1.1"],
    requestCert: options.requestCert,
    rejectUnauthorized: false,
    handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
  });
  // Handshake failures, timeouts and clients gone mid-handshake: tls.Server leaves the
  // socket open (and the accepted one under it) unless this listener destroys it.
  server.on("tlsClientError", (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
    log.debug({ err: err.message, code: err.code }, "TLS handshake failed; closing connection");
    socket.destroy();
  });
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    socket.on("error", (err: NodeJS.ErrnoException) => log.debug({ code: err.code }, "TLS connection error"));
    secured(socket, options.requestCert ? describeClientCertificate(socket) : { state: "absent" });
  });
  return server;
}

/** New certificate, key and client CA for the server's next handshakes; throws, changing nothing, when unusable. */
export function setSecureContext(server: tls.Server, context: tls.SecureContextOptions): void {
  tls.createSecureContext(context); // throws before anything is replaced
  server.setSecureContext(context);
}

/** Printable ASCII without '%': a valid grpc-message as it is. */
const CLEARTEXT_REFUSAL =
  "this port speaks TLS only: connect with TLS (https:// URLs, grpc.credentials.createSsl, agentorch --tls or https://); a cleartext connection was made to a TLS port";
/** How long a refused cleartext HTTP/2 connection may stay to read its answer. */
const REFUSAL_LINGER_MS = 5000;

/**
 * For connections on the TLS port that did not start with a handshake: HTTP/2 cleartext
 * (gRPC clients without TLS) gets one answer per stream, UNAVAILABLE in gRPC or an error
 * in Connect's JSON, saying to use TLS, then GOAWAY; an HTTP/1.x request a 400 that says
 * so (as nginx and Go's servers do); anything else is closed. Nothing is served.
 */
export function createCleartextRefuser(log: Logger): (socket: net.Socket, head: Buffer) => void {
  // The core API: the gRPC answer must be trailers-only (one HEADERS frame that ends the stream).
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: 4 } });
  h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    stream.on("error", () => undefined);
    stream.resume(); // a request body is read and dropped, so no reset cuts the answer short
    const type = String(headers["content-type"] ?? "");
    if (type.startsWith("application/grpc")) {
      stream.respond({ ":status": 200, "content-type": type.split(";")[0]!, "grpc-status": "14", "grpc-message": CLEARTEXT_REFUSAL }, { endStream: true });
    } else {
      const body = JSON.stringify({ code: "unavailable", message: CLEARTEXT_REFUSAL });
      stream.respond({ ":status": 400, "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      stream.end(body);
    }
    stream.once("close", () => stream.session?.close());
  });
  h2.setTimeout(0);
  h2.on("session", (session: http2.ServerHttp2Session) => {
    session.on("error", () => undefined);
    setTimeout(() => session.destroy(), REFUSAL_LINGER_MS).unref();
  });
  return (socket, head) => {
    log.debug({}, "cleartext connection on the TLS port; refusing it");
    const start = head.subarray(0, 8).toString("latin1");
    if (start.startsWith("PRI ")) {
      socket.unshift(head);
      h2.emit("connection", socket);
      socket.once("end", () => socket.destroy());
      return;
    }
    if (/^[A-Z]{3,7} /.test(start)) {
      const body = `${CLEARTEXT_REFUSAL}\n`;
      socket.end(`HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    socket.destroy();
  };
}
