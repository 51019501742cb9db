/**
 * The log line of an RPC that connect refused before any handler (and so before the log
 * interceptor) ran: a message over the size limit, an unsupported content type, a body
 * that does not parse, an unknown method. Every RPC then has its line, with the same
 * fields as the interceptor's. Only the code is derived here, from what the response
 * carried (grpc-status, else the HTTP status); no header or body is logged.
 */
import type http from "node:http";
import http2 from "node:http2";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type { ContextValues } from "@connectrpc/connect";
import { RPC_LOG_STATE, protocolOfContentType } from "../api/interceptors.js";
import type { RpcLogState, RpcObserver, RpcOutcome } from "../api/interceptors.js";
import { parseTraceparent, traceLogBindings } from "../api/trace.js";
import type { Logger } from "../core/ports.js";
import type { RequestHandler } from "./listener.js";
import { encodeGrpcMessage } from "./grpc-message.js";

type Req = http.IncomingMessage | http2.Http2ServerRequest;

/** gRPC status numbers by name, as the log interceptor writes them. */
const GRPC_CODES = [
  "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
  "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
  "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated",
];

/** The code an HTTP status of a refused call stands for (connect's mapping, read backwards). */
function codeOfHttpStatus(status: number): string {
  switch (status) {
    case 400:
    case 415:
      return "invalid_argument";
    case 401:
      return "unauthenticated";
    case 403:
      return "permission_denied";
    case 404:
    case 405:
    case 501:
      return "unimplemented";
    case 408:
    case 504:
      return "deadline_exceeded";
    case 413:
    case 429:
      return "resource_exhausted";
    case 499:
      return "canceled";
    case 503:
      return "unavailable";
    default:
      return status >= 500 ? "internal" : "unknown";
  }
}

/** How long a cut-off stream's handler has to end it with its own error before the HTTP layer does. */
const CUT_OFF_GRACE_MS = 500;
/**
 * How long after that a consumer that still reads nothing keeps its stream before it is
 * reset. Its events were freed at the cut-off; what it still holds is bounded by HTTP/2
 * flow control. Long enough that a consumer paused for a while (a GC, a debugger, a busy
 * host) still reads the status that says where to resume, rather than a bare reset.
 */
const CUT_OFF_RESET_MS = 30_000;

/**
 * Ends a server stream with RESOURCE_EXHAUSTED in its protocol, after what was written:
 * connect writes whole messages, so the body is at a message boundary.
 */
function endStream(req: Req, res: http.ServerResponse | http2.Http2ServerResponse, message: string): void {
  const type = String(req.headers["content-type"] ?? "");
  const w = res as unknown as { addTrailers(h: Record<string, string>): void; end(chunk?: Uint8Array): void };
  if (/^application\/grpc-web/i.test(type)) {
    const text = Buffer.from(`grpc-status: 8\r\ngrpc-message: ${encodeGrpcMessage(message)}\r\n`);
    const head = Buffer.alloc(5);
    head[0] = 0x80;
    head.writeUInt32BE(text.length, 1);
    w.end(Buffer.concat([head, text]));
  } else if (/^application\/grpc/i.test(type)) {
    w.addTrailers({ "grpc-status": "8", "grpc-message": encodeGrpcMessage(message) });
    w.end();
  } else {
    const json = Buffer.from(JSON.stringify({ error: { code: "resource_exhausted", message } }));
    const head = Buffer.alloc(5);
    head[0] = 0x02;
    head.writeUInt32BE(json.length, 1);
    w.end(Buffer.concat([head, json]));
  }
}

const RPC_PATH = /^\/([A-Za-z_][\w.]*)\/([A-Za-z_]\w*)$/;

/**
 * Wraps the connect handler. Returns the handler and the contextValues function to give
 * connectNodeAdapter, which hands each call's RpcLogState to the interceptor.
 */
export function createRequestLog(logger: Logger, observe?: RpcObserver): {
  wrap(handler: RequestHandler): RequestHandler;
  contextValues(req: Req): ContextValues;
} {
  const states = new WeakMap<Req, RpcLogState>();
  return {
    contextValues(req) {
      return createContextValues().set(RPC_LOG_STATE, states.get(req));
    },
    wrap(handler) {
      return (req, res) => {
        const path = RPC_PATH.exec((req.url ?? "").split("?", 1)[0]!);
        if (path === null) {
          handler(req, res);
          return;
        }
        const state: RpcLogState = { logged: false };
        state.cutOff = (message) => {
          state.forcedCode = "resource_exhausted";
          // The handler may still end the stream with its own RESOURCE_EXHAUSTED (a slow
          // consumer that reads). One that reads nothing leaves the handler blocked in a
          // write: the status is queued behind what was sent, so a consumer that reads
          // again gets every event it was sent, then the status; one that still reads
          // nothing is reset (ENHANCE_YOUR_CALM, which gRPC clients read as RESOURCE_EXHAUSTED).
          setTimeout(() => {
            if (res.writableFinished || res.destroyed || res.writableEnded) return;
            logger.info({ method: `${path[1]}/${path[2]}` }, "stream cut off: its consumer fell too far behind (AGENTORCH_WATCH_MAX_BUFFER)");
            endStream(req, res, message);
            setTimeout(() => {
              if (res.writableFinished || res.destroyed) return;
              if ("stream" in res) res.stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
              else res.destroy();
            }, CUT_OFF_RESET_MS).unref();
          }, CUT_OFF_GRACE_MS).unref();
        };
        states.set(req, state);
        const started = performance.now();
        let grpcStatus: string | undefined;
        const seeStatus = (headers: unknown) => {
          const v = (headers as Record<string, unknown> | undefined)?.["grpc-status"];
          if (v !== undefined) grpcStatus = String(v);
        };
        // Watch where grpc-status goes out: in the headers (trailers-only) or the trailers.
        const patch = res as unknown as { writeHead: (...a: unknown[]) => unknown; addTrailers: (h: unknown) => void };
        const writeHead = patch.writeHead.bind(res);
        const addTrailers = patch.addTrailers.bind(res);
        patch.writeHead = (...args: unknown[]) => {
          seeStatus(args.find((a) => typeof a === "object"));
          return writeHead(...args);
        };
        patch.addTrailers = (headers: unknown) => {
          seeStatus(headers);
          addTrailers(headers);
        };
        res.once("close", () => {
          // A cut-off stream whose handler is still blocked in a write: connect waits for a
          // "drain" that an ended stream never emits, so the handler (and what it holds)
          // would stay for good. Fail that write; the handler ends and the interceptor
          // logs the call with its forced code. Aborted: connect-node does not report it.
          if (state.forcedCode !== undefined && res.listenerCount("error") > 0) res.emit("error", new ConnectError("stream cut off", Code.Aborted));
          if (state.logged) return;
          const code = !res.writableFinished
            ? "canceled"
            : grpcStatus !== undefined
              ? (GRPC_CODES[Number(grpcStatus)] ?? "unknown")
              : codeOfHttpStatus(res.statusCode);
          const rpc: RpcOutcome = {
            method: `${path[1]}/${path[2]}`,
            code,
            durationMs: Math.round((performance.now() - started) * 10) / 10,
            protocol: protocolOfContentType(String(req.headers["content-type"] ?? "")),
          };
          const trace = parseTraceparent(req.headers.traceparent as string | undefined);
          (trace ? logger.child(traceLogBindings(trace)) : logger).info(rpc, "rpc");
          observe?.(rpc);
        });
        handler(req, res);
      };
    },
  };
}
