/**
 * Maps SQLite failures to the core's error kinds in one place: conditions of the disk
 * or of other processes (full, I/O, read-only, locked) are "unavailable", and the
 * caller may retry later; anything else from SQLite is a bug or corruption: "internal".
 */
import Database from "better-sqlite3";
import { AgentorchError, isAgentorchError } from "../../core/errors.js";

const UNAVAILABLE_CODES = /^SQLITE_(FULL|IOERR|READONLY|BUSY|LOCKED|CANTOPEN|NOMEM|PROTOCOL)(_|$)/;

/** The SQLite result code of err (e.g. "SQLITE_IOERR_WRITE"), if it is a SqliteError. */
export function sqliteCode(err: unknown): string | undefined {
  return err instanceof Database.SqliteError ? err.code : undefined;
}

/**
 * Turns whatever a store call threw into an AgentorchError, keeping the original as cause.
 * AgentorchErrors raised on purpose inside a transaction pass through unchanged.
 */
export function mapStoreError(err: unknown, op: "open" | "read" | "write"): AgentorchError {
  if (isAgentorchError(err)) return err;
  const code = sqliteCode(err);
  if (code !== undefined && UNAVAILABLE_CODES.test(code)) {
    return new AgentorchError("unavailable", `store ${op} failed: ${code}`, {}, { cause: err });
  }
  return new AgentorchError("internal", `store ${op} failed: ${code ?? "unexpected error"}`, {}, { cause: err });
}
