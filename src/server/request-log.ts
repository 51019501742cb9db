/**
 * The log line of an RPC that connect refused before any handler (and so before the log
 * interceptor) ran: a message over the size limit, an unsupported content type, a body
 * that does not parse, an unknown method. Every RPC then has its line, with the same
 * fields as the interceptor's. Only the code is derived here, from what the response
 * carried (grpc-status, else the HTTP status); no header or body is logged.
 */
import type http from "node:http";
import type http2 from "node:http2";
import { createContextValues } from "@connectrpc/connect";
import type { ContextValues } from "@connectrpc/connect";
import { RPC_LOG_STATE, protocolOfContentType } from "../api/interceptors.js";
import type { RpcLogState, RpcObserver, RpcOutcome } from "../api/interceptors.js";
import { parseTraceparent, traceLogBindings } from "../api/trace.js";
import type { Logger } from "../core/ports.js";
import type { RequestHandler } from "./listener.js";

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
