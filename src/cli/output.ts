/**
 * How results look: aligned borderless tables, relative times ("3m ago"), states in
 * colour on a terminal and plain when piped, and `-o json` as the proto JSON of the
 * message (one document, or one object per line for streams) so scripts never parse
 * tables.
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import Table from "cli-table3";
import pc from "picocolors";
import YAML from "yaml";
import { usageError } from "./errors.js";

/** Output formats of -o: table (wide: more columns), or a structured document (json, yaml). */
export type Format = "table" | "wide" | "json" | "yaml";

/** What -o takes, as the root --help lists it. */
export const FORMAT_HELP = "output format: table (for people), wide (a table with more columns), json or yaml (the proto JSON mapping, for scripts)";

/** Parses -o. */
export function parseFormat(text: string): Format {
  const f = text.toLowerCase();
  if (f === "table" || f === "text") return "table";
  if (f === "wide" || f === "json" || f === "yaml") return f;
  throw usageError(`-o ${text}: expected table, wide, json or yaml`);
}

let structured: "json" | "yaml" = "json";

/** Set once per command from -o: whether printJson and printJsonLine write JSON or YAML. */
export function useStructuredFormat(format: "json" | "yaml"): void {
  structured = format;
}

/**
 * Whether to colour stdout: on a terminal only, never with NO_COLOR, always with
 * FORCE_COLOR. (picocolors' own guess also colours when CI is set, even into a pipe.)
 */
export function colorEnabled(stream: NodeJS.WriteStream = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  return stream.isTTY === true && env.TERM !== "dumb";
}

/** The colour functions for stdout (identity functions when colour is off). */
export const colors = pc.createColors(colorEnabled());

type Paint = (s: string) => string;

const STATE_PAINT: Record<string, Paint> = {
  RUNNING: colors.green,
  COMPLETED: colors.green,
  SERVING: colors.green,
  IDLE: colors.dim,
  PAUSED: colors.cyan,
  STARTING: colors.yellow,
  STOPPING: colors.yellow,
  SUBMITTED: colors.cyan,
  WORKING: colors.yellow,
  FAILED: colors.red,
  REJECTED: colors.red,
  NOT_SERVING: colors.red,
  TERMINATED: colors.magenta,
  CANCELED: colors.magenta,
  REMOVED: colors.dim,
};

/** A state name (IDLE, RUNNING, FAILED…) in its colour. */
export function paintState(state: string): string {
  const paint = STATE_PAINT[state];
  return paint ? paint(state) : state;
}

/** The name of an enum value ("IDLE" for AgentStatus.IDLE); "-" for unspecified. */
export function enumName(e: Record<number, string>, value: number): string {
  if (value === 0) return "-";
  return e[value] ?? String(value);
}

/** Prints rows as a borderless table whose columns line up (ANSI colours do not count). */
export function printTable(head: string[], rows: string[][], out: NodeJS.WritableStream = process.stdout): void {
  if (rows.length === 0) return;
  const table = new Table({
    head: head.map((h) => colors.bold(h)),
    chars: {
      top: "", "top-mid": "", "top-left": "", "top-right": "",
      bottom: "", "bottom-mid": "", "bottom-left": "", "bottom-right": "",
      left: "", "left-mid": "", mid: "", "mid-mid": "",
      right: "", "right-mid": "", middle: "   ",
    },
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0, compact: true },
    wordWrap: false,
  });
  table.push(...rows);
  const text = table
    .toString()
    .split("\n")
    .map((line) => line.replace(/\s+$/, ""))
    .join("\n");
  out.write(text + "\n");
}

/** Prints "Key:  value" lines, keys aligned; rows with an undefined value are skipped. */
export function printFields(fields: [string, string | undefined][], out: NodeJS.WritableStream = process.stdout): void {
  const shown = fields.filter((f): f is [string, string] => f[1] !== undefined);
  const width = Math.max(0, ...shown.map(([k]) => k.length)) + 1;
  for (const [k, v] of shown) out.write(`${colors.bold((k + ":").padEnd(width))}  ${v}`.trimEnd().replace(/ +\n/g, "\n") + "\n");
}

/** Prints a message as its proto JSON (or the same as YAML with -o yaml), one document. */
export function printJson<D extends DescMessage>(schema: D, message: MessageShape<D>, out: NodeJS.WritableStream = process.stdout): void {
  printDocument(messageJson(schema, message), out);
}

/** Prints a plain value (not a proto message) as -o json or -o yaml asks. */
export function printDocument(value: unknown, out: NodeJS.WritableStream = process.stdout): void {
  out.write(structured === "yaml" ? YAML.stringify(value) : JSON.stringify(value, null, 2) + "\n");
}

/** For streams: a message as proto JSON on one line, or (-o yaml) as one YAML document each after "---". */
export function printJsonLine<D extends DescMessage>(schema: D, message: MessageShape<D>, out: NodeJS.WritableStream = process.stdout): void {
  const value = messageJson(schema, message);
  out.write(structured === "yaml" ? `---\n${YAML.stringify(value)}` : JSON.stringify(value) + "\n");
}

/** The proto JSON of a message, with zero values included so scripts find every field. */
export function messageJson<D extends DescMessage>(schema: D, message: MessageShape<D>): unknown {
  return toJson(schema, message, { alwaysEmitImplicit: true });
}

/** "3m ago", "in 5s", "just now"; "-" when unset. */
export function relativeTime(ts: Timestamp | undefined, now: number = Date.now()): string {
  if (ts === undefined) return "-";
  const ms = now - timestampDate(ts).getTime();
  const abs = Math.abs(ms);
  if (abs < 1000) return "just now";
  const text = shortDuration(abs);
  return ms >= 0 ? `${text} ago` : `in ${text}`;
}

/** "2026-01-02 15:04:05 (3m ago)"; "-" when unset. */
export function absoluteAndRelative(ts: Timestamp | undefined, now: number = Date.now()): string {
  if (ts === undefined) return "-";
  const d = timestampDate(ts);
  const local = new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().replace("T", " ").slice(0, 19);
  return `${local} (${relativeTime(ts, now)})`;
}

/** A coarse duration for ages: "45s", "3m", "2h", "4d" (one unit, rounded down). */
export function shortDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

/** An exact duration: "450ms", "2.5s", "1m30s", "1h", "2h5m". */
export function formatMillis(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))}s`;
  const totalS = Math.round(ms / 1000);
  const h = Math.floor(totalS / 3600);
  const m = Math.floor((totalS % 3600) / 60);
  const s = totalS % 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s ? `${s}s` : ""}` || "0s";
}

/** Whether a proto Duration is unset or zero. */
export function isZeroDuration(d: Duration | undefined): boolean {
  return d === undefined || (d.seconds === 0n && d.nanos === 0);
}

/** A proto Duration as formatMillis; "-" when unset. */
export function formatDuration(d: Duration | undefined): string {
  if (d === undefined) return "-";
  return formatMillis(Number(d.seconds) * 1000 + d.nanos / 1e6);
}

/** Bytes as "512MiB", "64KiB", "100B". */
export function formatBytes(n: bigint | number): string {
  const v = Number(n);
  for (const [unit, size] of [["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]] as const) {
    if (v >= size && v % size === 0) return `${v / size}${unit}`;
    if (v >= size * 10) return `${(v / size).toFixed(1)}${unit}`;
  }
  return `${v}B`;
}

/** Cuts text to n characters on one line, ending with "…" when cut. */
export function truncate(text: string, n: number): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length <= n ? line : line.slice(0, n - 1) + "…";
}

/** A command line as a shell would need it typed: words with spaces or quotes quoted. */
export function shellJoin(words: readonly string[]): string {
  return words.map((w) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(" ");
}

/** A container id as docker shows it (12 characters). */
export function shortId(id: string): string {
  return id === "" ? "-" : id.slice(0, 12);
}
