/**
 * The closed set of error kinds the core raises. The API layer maps each kind to a
 * gRPC code in one place (src/api/errors.ts); nothing else decides codes.
 */
export type ErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "unavailable"
  | "resource_exhausted"
  | "unauthenticated"
  | "permission_denied"
  | "out_of_range"
  | "deadline_exceeded"
  | "canceled"
  | "internal";

/** Structured context carried by an error; logged, and safe to show to the caller. */
export interface ErrorDetails {
  agentId?: string;
  taskId?: string;
  containerId?: string;
  field?: string;
  /** A stable reason (UPPER_SNAKE) where the kind and subject do not say it, e.g. CARD_NOT_FOUND. */
  reason?: string;
  /** The configured bound that was hit: its setting (the variable that sets it) and value. */
  limit?: { setting: string; value: number };
}

/** An expected failure with a stable kind. Its message is shown to the caller (except for "internal"). */
export class AgentorchError extends Error {
  override readonly name = "AgentorchError";
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly details: ErrorDetails = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True when err is an AgentorchError, optionally of the given kind. Works across module copies. */
export function isAgentorchError(err: unknown, kind?: ErrorKind): err is AgentorchError {
  if (typeof err !== "object" || err === null) return false;
  const e = err as { name?: unknown; kind?: unknown };
  if (e.name !== "AgentorchError" || typeof e.kind !== "string") return false;
  return kind === undefined || e.kind === kind;
}

export const invalidArgument = (message: string, details?: ErrorDetails) =>
  new AgentorchError("invalid_argument", message, details);
export const notFound = (message: string, details?: ErrorDetails) => new AgentorchError("not_found", message, details);
export const alreadyExists = (message: string, details?: ErrorDetails) =>
  new AgentorchError("already_exists", message, details);
export const failedPrecondition = (message: string, details?: ErrorDetails) =>
  new AgentorchError("failed_precondition", message, details);
export const resourceExhausted = (message: string, details?: ErrorDetails) =>
  new AgentorchError("resource_exhausted", message, details);
export const unavailable = (message: string, details?: ErrorDetails, cause?: unknown) =>
  new AgentorchError("unavailable", message, details, { cause });

/** The message of anything thrown, for logs and status reasons. */
export function errorMessage(err: unknown): string {
  if (isAgentorchError(err)) return err.message;
  return err instanceof Error ? err.message : String(err);
}
