/**
 * Docker's time formats: RFC 3339 with nanoseconds in inspect and log timestamps, the
 * zero time "0001-01-01T00:00:00Z" for "never", and unix seconds with a fraction in the
 * since/until query parameters.
 */

/** Epoch ms, or undefined for Docker's zero time, an empty or an unparsable value. */
export function dockerTime(value: string | undefined): number | undefined {
  if (value === undefined || value === "" || value.startsWith("0001-01-01")) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) || ms <= 0 ? undefined : ms;
}

/** A since/until parameter ("<unix seconds>.<9 digits>") for an RFC 3339 timestamp, exact to the nanosecond. */
export function unixParam(stamp: string): string | undefined {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(stamp);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return `${Math.floor(ms / 1000)}.${(m[2] ?? "").padEnd(9, "0")}`;
}

/** A since/until parameter for epoch ms. */
export function unixParamMs(ms: number): string {
  return (ms / 1000).toFixed(3);
}
