/**
 * Server interceptors. The log interceptor writes one line per RPC (for streams: when the
 * stream ends) with the method, the outcome code, the duration and the protocol, so an
 * operator can see what was called and how it went. It never logs headers (they carry
 * credentials) or messages (they carry user data).
 */
import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import type { Interceptor, StreamRequest, UnaryRequest } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "../core/ports.js";
import { traceLogBindings, traceOfHeaders } from "./trace.js";

/** Per-call state shared with the HTTP layer, which logs the calls refused before any handler ran. */
export interface RpcLogState {
  logged: boolean;
  /** Set by the HTTP layer: ends a stream whose consumer fell too far behind (see streamCutOff). */
  cutOff?: (message: string) => void;
  /** The code to log whatever the handler ends with (a stream cut off by the HTTP layer). */
  forcedCode?: string;
}

/**
 * What a watch handler passes to the core as onCutOff: the HTTP layer ends the stream with
 * RESOURCE_EXHAUSTED even while its consumer reads nothing (and the handler is blocked).
 */
export function streamCutOff(ctx: { values: { get(key: typeof RPC_LOG_STATE): RpcLogState | undefined } }): ((message: string) => void) | undefined {
  return ctx.values.get(RPC_LOG_STATE)?.cutOff;
}

/** How one RPC ended: the fields of its log line. */
export interface RpcOutcome {
  /** "package.Service/Method". */
  method: string;
  /** Snake_case code name ("ok", "not_found", …). */
  code: string;
  durationMs: number;
  protocol: string;
}

/** Told of every RPC once, when its log line is written (the metrics count them). */
export type RpcObserver = (rpc: RpcOutcome) => void;

/** Where the server puts each call's RpcLogState (see connectNodeAdapter's contextValues). */
export const RPC_LOG_STATE = createContextKey<RpcLogState | undefined>(undefined, { description: "rpc log state" });

/** "grpc", "grpc-web" or "connect" (as connect names its protocols), from the content type. */
export function protocolOfContentType(type: string): string {
  if (type.startsWith("application/grpc-web")) return "grpc-web";
  if (type.startsWith("application/grpc")) return "grpc";
  return "connect";
}

function protocolOf(req: UnaryRequest | StreamRequest): string {
  return protocolOfContentType(req.header.get("content-type") ?? "");
}

/** The snake_case code name ("ok", "not_found", …) of how a call ended. */
function codeOf(err: unknown): string {
  return err === undefined ? "ok" : codeToString(ConnectError.from(err).code);
}

/**
 * A stream whose handler returned because the client cancelled, hung up or ran out of
 * time did not end "ok" for the client: the reason, if the call's signal says so.
 */
function clientEnded(signal: AbortSignal): ConnectError | undefined {
  if (!signal.aborted) return undefined;
  const err = ConnectError.from(signal.reason);
  return [Code.Canceled, Code.Aborted, Code.DeadlineExceeded].includes(err.code) ? err : undefined;
}

/** Creates the RPC log interceptor; a call with a valid traceparent logs its trace_id and span_id. */
export function createLogInterceptor(logger: Logger, observe?: RpcObserver): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const state = req.contextValues.get(RPC_LOG_STATE);
    if (state) state.logged = true;
    const trace = traceOfHeaders(req.header);
    const callLogger = trace ? logger.child(traceLogBindings(trace)) : logger;
    const log = (err: unknown) => {
      const rpc: RpcOutcome = {
        method: `${req.service.typeName}/${req.method.name}`,
        code: state?.forcedCode ?? codeOf(err),
        durationMs: Math.round((performance.now() - started) * 10) / 10,
        protocol: protocolOf(req),
      };
      callLogger.info(rpc, "rpc");
      observe?.(rpc);
    };
    let res;
    try {
      res = await next(req);
    } catch (err) {
      log(err);
      throw err;
    }
    if (!res.stream) {
      log(undefined);
      return res;
    }
    const source = res.message;
    async function* logged() {
      let outcome: { err: unknown } | undefined;
      try {
        yield* source;
        outcome = { err: undefined };
      } catch (err) {
        outcome = { err };
        throw err;
      } finally {
        log(outcome ? (outcome.err ?? clientEnded(req.signal)) : (clientEnded(req.signal) ?? new ConnectError("canceled", Code.Canceled)));
      }
    }
    return { ...res, message: logged() };
  };
}
