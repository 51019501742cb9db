/**
 * The error a call must end with, caught so a test can assert on it: an AgentorchError
 * thrown by the core (anything else thrown is rethrown), or the ConnectError of a client
 * call. Each fails the test when nothing is thrown.
 */
import { type Code, ConnectError } from "@connectrpc/connect";
import { type AgentorchError, isAgentorchError } from "../../src/core/errors.js";

/** err when it is an AgentorchError; anything else is thrown again. */
function agentorchError(err: unknown): AgentorchError {
  if (isAgentorchError(err)) return err;
  throw err;
}

/** The AgentorchError fn throws. */
export function thrown(fn: () => unknown): AgentorchError {
  try {
    fn();
  } catch (err) {
    return agentorchError(err);
  }
  throw new Error("expected an AgentorchError, nothing was thrown");
}

/** What tests compare of an AgentorchError, as a plain object (for toMatchObject). */
export interface ErrorSummary {
  kind: string;
  message: string;
  field?: string;
}

const summary = (err: AgentorchError): ErrorSummary => ({ kind: err.kind, message: err.message, field: err.details.field });

/** Kind, message and field of the AgentorchError fn throws. */
export function failure(fn: () => unknown): ErrorSummary {
  return summary(thrown(fn));
}

/** Kind, message and field of the AgentorchError p rejects with (or fn throws or rejects with). */
export async function rejection(p: Promise<unknown> | (() => unknown)): Promise<ErrorSummary> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    return summary(agentorchError(err));
  }
  throw new Error("expected a rejection");
}

/** The kind of the AgentorchError fn throws, or "ok" when it returns. */
export function kindOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return agentorchError(err).kind;
  }
  return "ok";
}

/** The kind of the AgentorchError p rejects with, or "ok" when it resolves. */
export function kindOfAsync(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => "ok",
    (err: unknown) => agentorchError(err).kind,
  );
}

/** The ConnectError of a client call that must fail. */
export async function connectError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

/** The Connect code of a client call that must fail. */
export async function connectCode(p: Promise<unknown>): Promise<Code> {
  return (await connectError(p)).code;
}
