/**
 * Turns what dockerode / docker-modem throw into AgentorchError kinds, so the core
 * sees "unavailable", "failed_precondition", "not_found", "canceled" or "internal" and
 * never a raw HTTP or socket error.
 */
import { AgentorchError, type ErrorDetails, isAgentorchError } from "../../core/errors.js";
import { socketAccessHint } from "./socket-access.js";

/** Socket-level failures that mean "the engine cannot be reached", not "the request was bad". */
const UNREACHABLE_CODES = new Set([
  "ENOENT",
  "ECONNREFUSED",
  "EACCES",
  "EPERM",
  "ETIMEDOUT",
  "ECONNRESET",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENOTSOCK",
]);

interface ModemError {
  code?: unknown;
  statusCode?: unknown;
  message?: unknown;
  name?: unknown;
  json?: unknown;
}

function asModemError(err: unknown): ModemError {
  return typeof err === "object" && err !== null ? (err as ModemError) : {};
}

/** The HTTP status docker-modem attached to an engine error response, if any. */
export function statusOf(err: unknown): number | undefined {
  const s = asModemError(err).statusCode;
  return typeof s === "number" ? s : undefined;
}

/** The engine's own message ("No such image: x") when there is one, else the error's message. */
export function engineMessage(err: unknown): string {
  const e = asModemError(err);
  const json = e.json;
  if (typeof json === "object" && json !== null && typeof (json as { message?: unknown }).message === "string") {
    return (json as { message: string }).message;
  }
  return typeof e.message === "string" ? e.message : String(err);
}

/** The socket error code (ECONNREFUSED…) or "socket hang up" when the engine could not be reached. */
export function unreachableCode(err: unknown): string | undefined {
  const e = asModemError(err);
  if (statusOf(err) !== undefined) return undefined;
  if (typeof e.code === "string" && UNREACHABLE_CODES.has(e.code)) return e.code;
  if (typeof e.message === "string" && /socket hang up/i.test(e.message)) return "socket hang up";
  return undefined;
}

/** True for the error an aborted fetch / http request / stream rejects with. */
export function isAbortError(err: unknown): boolean {
  const e = asModemError(err);
  return e.name === "AbortError" || e.code === "ABORT_ERR";
}

export const isNotFound = (err: unknown): boolean => statusOf(err) === 404;
export const isConflict = (err: unknown): boolean => statusOf(err) === 409;

/**
 * Maps any failure of an engine call to an AgentorchError. Already-mapped errors pass
 * through; unknown ones become "internal" with the cause attached (the API layer hides
 * the message from clients and logs the cause).
 */
export function toAgentorchError(err: unknown, endpoint: string, op: string, details: ErrorDetails = {}): AgentorchError {
  if (isAgentorchError(err)) return err;
  const code = unreachableCode(err);
  if (code !== undefined) {
    const hint = code === "EACCES" && endpoint.startsWith("unix://") ? ` (${socketAccessHint(endpoint.slice("unix://".length))})` : "";
    return new AgentorchError("unavailable", `Docker engine unreachable at ${endpoint}: ${code}${hint}`, details, { cause: err });
  }
  if (isAbortError(err)) return new AgentorchError("canceled", `${op} canceled`, details, { cause: err });
  if (isNotFound(err) && details.containerId !== undefined) {
    return new AgentorchError("not_found", `container ${details.containerId} does not exist`, details, { cause: err });
  }
  return new AgentorchError("internal", `docker ${op} failed: ${engineMessage(err)}`, details, { cause: err });
}
