/**
 * The one place where errors become gRPC/Connect codes (like containerd's errgrpc.ToGRPC).
 * Expected failures (AgentorchError kinds) keep their message; anything else is hidden
 * from the client behind "internal error" and an error id that also appears in the log.
 */
import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { type ErrorKind, isAgentorchError } from "../core/errors.js";
import type { Logger } from "../core/ports.js";
import { detailsFor } from "./error-details.js";

const CODES: Readonly<Record<ErrorKind, Code>> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  unavailable: Code.Unavailable,
  resource_exhausted: Code.ResourceExhausted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  out_of_range: Code.OutOfRange,
  deadline_exceeded: Code.DeadlineExceeded,
  canceled: Code.Canceled,
  internal: Code.Internal,
};

/** The Connect code for a core error kind; exported so tests can check the table is total. */
export function codeForKind(kind: ErrorKind): Code {
  return CODES[kind];
}

/**
 * Converts anything a handler threw into the ConnectError the client sees.
 * - ConnectError: passes through unchanged (e.g. the call's own deadline or cancellation).
 * - AgentorchError: its kind's code and message, with google.rpc details (error-details.ts); logged at debug (it is an expected outcome),
 *   except kind "internal", whose message is hidden like any unexpected error.
 * - An AbortError (the call's signal fired inside the core): Canceled.
 * - Anything else: Internal "internal error (id X)", the cause logged at error with the same id.
 */
export function toConnectError(err: unknown, logger: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isAgentorchError(err) && err.kind !== "internal") {
    const code = CODES[err.kind];
    // A kind this table does not know (a newer core) is a bug, not a client's problem.
    if (code !== undefined) {
      logger.debug({ kind: err.kind, ...err.details, msg: err.message }, "request failed");
      return new ConnectError(err.message, code, undefined, detailsFor(err));
    }
  }
  if (isAbortError(err)) {
    logger.debug({ err }, "request canceled");
    return new ConnectError("request canceled", Code.Canceled);
  }
  const errorId = randomBytes(4).toString("hex");
  logger.error({ err, errorId }, "internal error");
  return new ConnectError(`internal error (id ${errorId})`, Code.Internal);
}

function isAbortError(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { name?: unknown }).name === "AbortError";
}

type AnyMethod = (req: never, ctx: HandlerContext) => unknown;

/**
 * Wraps every method of a service implementation so that whatever it throws (or a server
 * stream throws mid-way) goes through toConnectError. Handlers then never repeat try/catch.
 * The service descriptor says which methods stream, so a streaming method that is not an
 * async generator function is still wrapped right.
 */
export function withErrors<S extends DescService, T extends Partial<ServiceImpl<S>>>(service: S, impl: T, logger: Logger): T {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(impl)) {
    const desc = service.method[name];
    if (typeof fn !== "function" || desc === undefined) {
      out[name] = fn;
      continue;
    }
    const method = (fn as AnyMethod).bind(impl);
    const streams = desc.methodKind === "server_streaming" || desc.methodKind === "bidi_streaming";
    out[name] = streams ? wrapStream(method, logger) : wrapUnary(method, logger);
  }
  return out as T;
}

function wrapUnary(method: AnyMethod, logger: Logger): AnyMethod {
  return async (req, ctx) => {
    try {
      return await method(req, ctx);
    } catch (err) {
      throw toConnectError(err, logger);
    }
  };
}

function wrapStream(method: AnyMethod, logger: Logger): AnyMethod {
  return async function* (req, ctx) {
    try {
      yield* method(req, ctx) as AsyncIterable<unknown>;
    } catch (err) {
      throw toConnectError(err, logger);
    }
  };
}
