/**
 * W3C trace context (https://www.w3.org/TR/trace-context/): a caller's `traceparent`
 * header is validated here, at the boundary, and then carried as is into the log line of
 * the call (trace_id, span_id) and into the container of a task the call submits
 * (AGENTORCH_TRACEPARENT). agentorch records no spans of its own: it propagates the
 * caller's context, so what a task's container does shows up as a child of the span that
 * submitted it. A header that does not parse is ignored, as the specification asks.
 */

/** A valid traceparent, split into its parts. */
export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** The caller's span: 16 lowercase hex digits, not all zero. */
  parentId: string;
  /** 2 hex digits (01: sampled). */
  flags: string;
  /** The header to pass on: always version 00 (fields of a later version dropped). */
  traceparent: string;
}

const TRACEPARENT_RE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE_ID = "0".repeat(32);
const ZERO_PARENT_ID = "0".repeat(16);

/**
 * Parses a traceparent header value; undefined when absent or invalid (version ff, an
 * all-zero id, uppercase hex, a version 00 header with extra fields, several headers).
 * A later version is read by its first four fields, as the specification says.
 */
export function parseTraceparent(value: string | null | undefined): TraceContext | undefined {
  if (typeof value !== "string" || value.length > 512) return undefined;
  const m = TRACEPARENT_RE.exec(value.trim());
  if (!m) return undefined;
  const [, version, traceId, parentId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_PARENT_ID) return undefined;
  return { traceId, parentId, flags, traceparent: `00-${traceId}-${parentId}-${flags}` };
}

/** The call's trace context from its request headers (connect's Headers, or a Node header value). */
export function traceOfHeaders(headers: Headers): TraceContext | undefined {
  return parseTraceparent(headers.get("traceparent"));
}

/** Log bindings of a call with a trace context, named as OpenTelemetry's log correlation names them. */
export function traceLogBindings(trace: TraceContext): { trace_id: string; span_id: string } {
  return { trace_id: trace.traceId, span_id: trace.parentId };
}
