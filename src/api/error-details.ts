/**
 * google.rpc error details, so a client can act on an error without parsing its message
 * (AIP-193): every expected error carries an `ErrorInfo` (a stable reason, domain
 * `agentorch.dev`, the agent or task it concerns), INVALID_ARGUMENT a `BadRequest` naming
 * the field, and the codes where trying again later can succeed a `RetryInfo`. gRPC clients
 * read them from `grpc-status-details-bin`, Connect clients from the error's `details`.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { AgentorchError, ErrorDetails, ErrorKind } from "../core/errors.js";

/** The ErrorInfo domain of every agentorch error. */
export const ERROR_DOMAIN = "agentorch.dev";

/** How long a client should wait before retrying UNAVAILABLE / RESOURCE_EXHAUSTED. */
const RETRY_DELAY_MS: Partial<Record<ErrorKind, number>> = {
  unavailable: 1_000,
  resource_exhausted: 1_000,
};

type OutgoingDetail = ConstructorParameters<typeof ConnectError>[3] extends (infer D)[] | undefined ? D : never;

/** The reason of an error: its own when the core named one, else one derived from its kind and subject. */
export function reasonOf(kind: ErrorKind, details: ErrorDetails): string {
  if (details.reason) return details.reason;
  switch (kind) {
    case "not_found":
      return details.taskId ? "TASK_NOT_FOUND" : details.agentId ? "AGENT_NOT_FOUND" : "NOT_FOUND";
    case "already_exists":
      return details.agentId ? "AGENT_ALREADY_EXISTS" : "ALREADY_EXISTS";
    case "failed_precondition":
      return "INVALID_STATE";
    case "resource_exhausted":
      return "QUOTA_EXCEEDED";
    case "out_of_range":
      return "REVISION_OUT_OF_RANGE";
    default:
      return kind.toUpperCase();
  }
}

/** The details sent with an expected error of the core. */
export function detailsFor(err: AgentorchError): OutgoingDetail[] {
  const { details } = err;
  const metadata: Record<string, string> = {};
  if (details.agentId) metadata.agent_id = details.agentId;
  if (details.taskId) metadata.task_id = details.taskId;
  if (details.field) metadata.field = details.field;
  if (details.limit) {
    metadata.setting = details.limit.setting;
    metadata.limit = String(details.limit.value);
  }
  const out: OutgoingDetail[] = [
    { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: reasonOf(err.kind, details), domain: ERROR_DOMAIN, metadata }) },
  ];
  if (err.kind === "invalid_argument") out.push(badRequest(details.field ?? "", err.message));
  const delay = RETRY_DELAY_MS[err.kind];
  if (delay !== undefined) out.push({ desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: durationFromMs(delay) }) });
  return out;
}

/** A BadRequest detail with one field violation. */
export function badRequest(field: string, description: string): OutgoingDetail {
  return { desc: BadRequestSchema, value: create(BadRequestSchema, { fieldViolations: [{ field, description }] }) };
}

/** An INVALID_ARGUMENT ConnectError about one field, with its BadRequest and ErrorInfo details. */
export function invalidField(field: string, message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument, undefined, [
    { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: "INVALID_ARGUMENT", domain: ERROR_DOMAIN, metadata: field ? { field } : {} }) },
    badRequest(field, message),
  ]);
}

/** The ErrorInfo of a configured bound that was hit: which setting, and its value. */
export function limitInfo(reason: string, setting: string, limit: number): OutgoingDetail {
  return { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata: { setting, limit: String(limit) } }) };
}
