/**
 * Raw clients for sending what no well-behaved client would: gRPC over node:http2 with
 * hand-made frames (truncated, lying length prefixes, compressed flags, several messages,
 * garbage), and Connect over HTTP/1.1 with arbitrary bodies and content types. Every reply
 * is reduced to one outcome: the status code a client would see (as a Connect code name),
 * the HTTP status, and the message.
 */
import http from "node:http";
import http2 from "node:http2";

/** Connect code names by gRPC number. */
export const CODE_NAMES = [
  "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
  "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
  "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated",
];

export interface WireOutcome {
  /** Connect code name ("ok", "invalid_argument"…); "http_<status>" when the reply carried no status. */
  code: string;
  httpStatus: number;
  message: string;
  /** No complete reply within the client's time limit. */
  timedOut: boolean;
  /** The connection broke before a status arrived. */
  broken?: string;
}

/** gRPC's own mapping of an HTTP status without grpc-status (the spec's table). */
function grpcCodeOfHttp(status: number): string {
  if (status === 400) return "internal";
  if (status === 401) return "unauthenticated";
  if (status === 403) return "permission_denied";
  if (status === 404) return "unimplemented";
  if ([429, 502, 503, 504].includes(status)) return "unavailable";
  return `http_${status}`;
}

/** One gRPC frame: flag byte, big-endian length (which may lie), data. */
export function frame(data: Uint8Array, opts: { flags?: number; length?: number } = {}): Buffer {
  const head = Buffer.alloc(5);
  head[0] = opts.flags ?? 0;
  head.writeUInt32BE(opts.length ?? data.byteLength, 1);
  return Buffer.concat([head, data]);
}

export interface GrpcRequest {
  path: string;
  body: Uint8Array;
  contentType?: string;
  headers?: Record<string, string>;
  /** Client-side limit; the call is reset after it. */
  timeoutMs: number;
  /** Reset the stream after sending the body instead of waiting for the reply. */
  resetAfterSend?: boolean;
  /**
   * Keep sending the body after the status arrived, and resolve only once the stream has
   * closed (a client that does not stop). By default the stream is cancelled as soon as the
   * status is in, as gRPC clients do.
   */
  keepSending?: boolean;
}

/** A reusable HTTP/2 session to the server; re-made when the server closes it. */
export class H2Client {
  private session: http2.ClientHttp2Session | undefined;

  constructor(private readonly url: string) {}

  /** Sessions made so far (a new one after the server closed or refused the last). */
  sessions = 0;

  private get(): http2.ClientHttp2Session {
    if (!this.session || this.session.closed || this.session.destroyed) {
      const s = http2.connect(this.url);
      s.on("error", () => undefined);
      const drop = () => {
        if (this.session === s) this.session = undefined;
      };
      s.on("goaway", drop);
      s.on("close", drop);
      s.unref();
      this.session = s;
      this.sessions++;
    }
    return this.session;
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  call(req: GrpcRequest): Promise<WireOutcome> {
    return new Promise((resolve) => {
      let settled = false;
      let httpStatus = 0;
      let headerStatus: string | undefined;
      let headerMessage = "";
      let result: WireOutcome | undefined;
      const done = (o: WireOutcome) => {
        if (settled) return;
        if (req.keepSending && !stream.closed && !o.timedOut) {
          result ??= o;
          return;
        }
        settled = true;
        clearTimeout(timer);
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        resolve(o.timedOut ? o : (result ?? o));
      };
      const stream = this.get().request({
        ":method": "POST",
        ":path": req.path,
        "content-type": req.contentType ?? "application/grpc",
        te: "trailers",
        ...req.headers,
      });
      const timer = setTimeout(() => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        done({ code: "client_timeout", httpStatus, message: "", timedOut: true });
      }, req.timeoutMs);
      let responseType = "";
      const body: Buffer[] = [];
      /** A reply in another protocol (the content type chose Connect): its error JSON says how it went. */
      const otherProtocol = (): WireOutcome | undefined => {
        if (responseType.startsWith("application/grpc-web") && headerStatus === undefined) return grpcWebOutcome(httpStatus, Buffer.concat(body));
        if (responseType.startsWith("application/grpc") || httpStatus === 0) return undefined;
        const text = Buffer.concat(body);
        if (httpStatus === 200) return { code: "ok", httpStatus, message: "", timedOut: false };
        return fromErrorJson(httpStatus, text);
      };
      stream.on("response", (headers) => {
        httpStatus = Number(headers[":status"]);
        responseType = String(headers["content-type"] ?? "");
        if (headers["grpc-status"] !== undefined) {
          headerStatus = String(headers["grpc-status"]);
          headerMessage = decodeGrpcMessage(String(headers["grpc-message"] ?? ""));
        }
      });
      stream.on("trailers", (trailers) => {
        const status = trailers["grpc-status"];
        if (status !== undefined) {
          done({ code: CODE_NAMES[Number(status)] ?? `grpc_${String(status)}`, httpStatus, message: decodeGrpcMessage(String(trailers["grpc-message"] ?? "")), timedOut: false });
        }
      });
      stream.on("data", (c: Buffer) => {
        if (!responseType.startsWith("application/grpc") || responseType.startsWith("application/grpc-web")) body.push(c);
      });
      stream.on("end", () => {
        const other = otherProtocol();
        if (other) done(other);
        if (headerStatus !== undefined) done({ code: CODE_NAMES[Number(headerStatus)] ?? `grpc_${headerStatus}`, httpStatus, message: headerMessage, timedOut: false });
        else if (httpStatus !== 0 && httpStatus !== 200) done({ code: grpcCodeOfHttp(httpStatus), httpStatus, message: "", timedOut: false });
      });
      stream.on("close", () => {
        if (result) done(result);
        const other = otherProtocol();
        if (other) done(other);
        if (headerStatus !== undefined) done({ code: CODE_NAMES[Number(headerStatus)] ?? `grpc_${headerStatus}`, httpStatus, message: headerMessage, timedOut: false });
        else if (httpStatus !== 0 && httpStatus !== 200) done({ code: grpcCodeOfHttp(httpStatus), httpStatus, message: "", timedOut: false });
        else done({ code: "no_status", httpStatus, message: "", timedOut: false, broken: `stream closed (rst ${stream.rstCode ?? "-"})` });
      });
      stream.on("error", (err) => done({ code: "no_status", httpStatus, message: "", timedOut: false, broken: err.message }));
      stream.end(Buffer.from(req.body), () => {
        if (req.resetAfterSend) {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          done({ code: "client_reset", httpStatus, message: "", timedOut: false });
        }
      });
    });
  }
}

/** gRPC-Web: the status is in a trailer frame (flag 0x80) at the end of the body. */
function grpcWebOutcome(httpStatus: number, body: Buffer): WireOutcome {
  let offset = 0;
  while (offset + 5 <= body.length) {
    const flags = body[offset]!;
    const len = body.readUInt32BE(offset + 1);
    const data = body.subarray(offset + 5, offset + 5 + len).toString("utf8");
    offset += 5 + len;
    if (flags & 0x80) {
      const fields = Object.fromEntries(data.split("\r\n").filter((l) => l.includes(":")).map((l) => [l.slice(0, l.indexOf(":")).trim().toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
      const status = fields["grpc-status"];
      if (status !== undefined) return { code: CODE_NAMES[Number(status)] ?? `grpc_${status}`, httpStatus, message: decodeGrpcMessage(fields["grpc-message"] ?? ""), timedOut: false };
    }
  }
  return { code: "no_status", httpStatus, message: "", timedOut: false, broken: "gRPC-Web response without a trailer frame" };
}

function decodeGrpcMessage(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

export interface HttpRequest {
  method: "GET" | "POST" | "PUT";
  /** The keep-alive agent to use (default: one shared agent of 4 sockets). */
  agent?: http.Agent;
  /** Path and query. */
  path: string;
  body?: Uint8Array;
  contentType?: string;
  headers?: Record<string, string>;
  timeoutMs: number;
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** A Connect (or any HTTP/1.1) request; the outcome's code comes from the Connect error body, an end-stream message, or the HTTP status. */
export function http1(baseUrl: string, req: HttpRequest): Promise<WireOutcome & { body: Buffer; contentType: string }> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (o: WireOutcome & { body: Buffer; contentType: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(o);
    };
    const headers: Record<string, string | number> = { ...req.headers };
    if (req.contentType !== undefined) headers["content-type"] = req.contentType;
    if (req.body !== undefined) headers["content-length"] = req.body.byteLength;
    const r = http.request(`${baseUrl}${req.path}`, { method: req.method, headers, agent: req.agent ?? keepAlive }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        const contentType = String(res.headers["content-type"] ?? "");
        const grpcStatus = res.trailers["grpc-status"] ?? res.headers["grpc-status"];
        if (contentType.startsWith("application/grpc-web") && grpcStatus === undefined && (res.statusCode ?? 0) === 200) {
          // gRPC-Web: the status is in a trailer frame at the end of the body (base64 for -text).
          const frames = contentType.startsWith("application/grpc-web-text") ? Buffer.from(body.toString("latin1"), "base64") : body;
          done({ ...grpcWebOutcome(200, frames), body, contentType });
          return;
        }
        if (contentType.startsWith("application/grpc") && grpcStatus !== undefined) {
          // gRPC(-Web) over HTTP/1.1: the status is in the headers or the (chunked) trailers.
          const message = decodeGrpcMessage(String(res.trailers["grpc-message"] ?? res.headers["grpc-message"] ?? ""));
          done({ code: CODE_NAMES[Number(grpcStatus)] ?? `grpc_${String(grpcStatus)}`, httpStatus: res.statusCode ?? 0, message, timedOut: false, body, contentType });
          return;
        }
        done({ ...connectOutcome(res.statusCode ?? 0, contentType, body), body, contentType });
      });
      res.on("error", (err) => done({ code: "no_status", httpStatus: res.statusCode ?? 0, message: "", timedOut: false, broken: err.message, body: Buffer.alloc(0), contentType: "" }));
    });
    const timer = setTimeout(() => {
      r.destroy();
      done({ code: "client_timeout", httpStatus: 0, message: "", timedOut: true, body: Buffer.alloc(0), contentType: "" });
    }, req.timeoutMs);
    r.on("error", (err) => done({ code: "no_status", httpStatus: 0, message: "", timedOut: false, broken: err.message, body: Buffer.alloc(0), contentType: "" }));
    r.end(req.body === undefined ? undefined : Buffer.from(req.body));
  });
}

/** What a Connect client makes of a reply: the error JSON's code, an end-stream error, or success. */
function connectOutcome(status: number, contentType: string, body: Buffer): WireOutcome {
  if (contentType.startsWith("application/connect+")) {
    // Enveloped stream: the end-stream message (flag 0x02) says how it ended.
    let offset = 0;
    while (offset + 5 <= body.length) {
      const flags = body[offset]!;
      const len = body.readUInt32BE(offset + 1);
      const data = body.subarray(offset + 5, offset + 5 + len);
      offset += 5 + len;
      if (flags & 0x02) {
        try {
          const end = JSON.parse(data.toString("utf8")) as { error?: { code?: string; message?: string } };
          if (end.error) return { code: end.error.code ?? "unknown", httpStatus: status, message: end.error.message ?? "", timedOut: false };
          return { code: "ok", httpStatus: status, message: "", timedOut: false };
        } catch {
          return { code: "bad_end_stream", httpStatus: status, message: data.toString("utf8").slice(0, 200), timedOut: false };
        }
      }
    }
    if (status !== 200) return fromErrorJson(status, body);
    return { code: "no_end_stream", httpStatus: status, message: "", timedOut: false };
  }
  if (status === 200) return { code: "ok", httpStatus: status, message: "", timedOut: false };
  return fromErrorJson(status, body);
}

function fromErrorJson(status: number, body: Buffer): WireOutcome {
  try {
    const err = JSON.parse(body.toString("utf8")) as { code?: string; message?: string };
    if (typeof err.code === "string") return { code: err.code, httpStatus: status, message: err.message ?? "", timedOut: false };
  } catch {
    // not a Connect error body
  }
  return { code: `http_${status}`, httpStatus: status, message: body.toString("utf8").slice(0, 200), timedOut: false };
}

/** A Connect streaming request body: one enveloped message (flags 0). */
export function connectEnvelope(data: Uint8Array, flags = 0): Buffer {
  return frame(data, { flags });
}
