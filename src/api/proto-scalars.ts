/**
 * Proto scalars as the core takes them: int64 as an exact JS number, Duration as whole
 * milliseconds. Shared by every service's mapping, so a field converts the same way (and
 * fails with the same INVALID_ARGUMENT naming it) whichever RPC carries it.
 */
import type { Duration } from "@bufbuild/protobuf/wkt";
import { LIMITS } from "../core/agent-config.js";
import { invalidArgument } from "../core/errors.js";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const NANOS_PER_MS = 1_000_000n;

/**
 * A non-negative int64 as a JS number; INVALID_ARGUMENT naming the field when it is
 * negative or too large to be exact, rather than silently losing precision.
 */
export function int64ToNumber(value: bigint, field: string): number {
  if (value < 0n || value > MAX_SAFE) {
    throw invalidArgument(`${field} must be between 0 and ${Number.MAX_SAFE_INTEGER} (got ${value})`, { field });
  }
  return Number(value);
}

/**
 * A Duration as whole milliseconds, rounded up so that a tiny non-zero duration never
 * becomes 0 (which means "no limit"). Negative, malformed, or longer than the core's
 * LIMITS.maxDurationMs: INVALID_ARGUMENT naming the field.
 */
export function durationToMs(d: Duration, field: string): number {
  if (!Number.isInteger(d.nanos) || Math.abs(d.nanos) > 999_999_999) {
    throw invalidArgument(`${field}: nanos must be between -999999999 and 999999999 (got ${d.nanos})`, { field });
  }
  if (d.seconds < 0n || d.nanos < 0) throw invalidArgument(`${field} may not be negative`, { field });
  const nanos = d.seconds * 1_000_000_000n + BigInt(d.nanos);
  const ms = (nanos + NANOS_PER_MS - 1n) / NANOS_PER_MS;
  if (ms > BigInt(LIMITS.maxDurationMs)) {
    throw invalidArgument(`${field} may be at most ${LIMITS.maxDurationMs / 1000} seconds`, { field });
  }
  return Number(ms);
}
