/**
 * Flag values as people type them ("10m", "256m", "K=V", "high") turned into proto
 * values, with a usage error that names the flag when they cannot be.
 */
import { create } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { fromJson } from "@bufbuild/protobuf";
import type { JsonValue } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { readFileSync } from "node:fs";
import YAML from "yaml";
import { usageError } from "./errors.js";

const DURATION_UNITS: Record<string, number> = { ms: 1e-3, s: 1, m: 60, h: 3600, d: 86400 };

/** Parses "30s", "10m", "1h30m", "500ms", "1.5h", "0" into seconds. */
export function parseSeconds(flag: string, text: string): number {
  const t = text.trim();
  if (t === "0") return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (t === "" || matched !== t.length) throw usageError(`${flag} ${text}: expected a duration such as 30s, 10m, 1h30m or 500ms`);
  return total;
}

/** parseSeconds as a google.protobuf.Duration. */
export function parseDuration(flag: string, text: string): Duration {
  const seconds = parseSeconds(flag, text);
  const whole = Math.floor(seconds);
  return create(DurationSchema, { seconds: BigInt(whole), nanos: Math.round((seconds - whole) * 1e9) });
}

const BYTE_UNITS: Record<string, number> = {
  "": 1, b: 1,
  k: 1024, kb: 1024, ki: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mi: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gi: 1024 ** 3, gib: 1024 ** 3,
};

/** Parses "256m", "512MiB", "1g", "65536" (Docker's convention: k/m/g are powers of 1024). */
export function parseBytes(flag: string, text: string): bigint {
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text.trim());
  const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw usageError(`${flag} ${text}: expected a size such as 256m, 1g or 512MiB`);
  return BigInt(Math.round(Number(m[1]) * unit));
}

/** Parses a non-negative integer flag. */
export function parseCount(flag: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw usageError(`${flag} ${text}: expected a whole number`);
  return Number(text);
}

/** Parses a non-negative decimal flag (e.g. --cpus 0.5). */
export function parseDecimal(flag: string, text: string): number {
  if (!/^\d+(\.\d+)?$/.test(text.trim())) throw usageError(`${flag} ${text}: expected a number such as 0.5 or 2`);
  return Number(text);
}

/** Parses repeated K=V flags into a map. */
export function parseEnv(flag: string, entries: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of entries) {
    const eq = e.indexOf("=");
    if (eq <= 0) throw usageError(`${flag} ${e}: expected NAME=VALUE`);
    env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return env;
}

/** Accumulates a repeatable flag (commander's argParser for `--flag <v>…`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * Parses an enum value from a lower-case word ("high", "running", "not-serving"):
 * matches the enum's names, case-insensitively, with '-' for '_'.
 */
export function parseEnum<E extends Record<string, string | number>>(flag: string, e: E, text: string): E[keyof E] {
  const want = text.trim().toUpperCase().replace(/-/g, "_");
  const names = Object.keys(e).filter((k) => Number.isNaN(Number(k)) && k !== "UNSPECIFIED");
  const hit = names.find((n) => n === want);
  if (hit === undefined) throw usageError(`${flag} ${text}: expected one of ${names.map((n) => n.toLowerCase()).join(", ")}`);
  return e[hit as keyof E];
}

/**
 * Lets a file say what a flag would: durations as "10m" or "1h30m" (proto JSON wants
 * "600s") and *_bytes sizes as "256m". Everything else is left for fromJson to judge.
 */
function humanized(schema: DescMessage, data: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...data };
  for (const field of schema.fields) {
    const key = field.jsonName in out ? field.jsonName : field.name in out ? field.name : undefined;
    if (key === undefined) continue;
    const value = out[key];
    if (field.fieldKind === "message" && field.message.typeName === "google.protobuf.Duration") {
      if (typeof value === "string" && !/^-?\d+(\.\d+)?s$/.test(value)) out[key] = `${parseSeconds(field.name, value)}s`;
      else if (typeof value === "number") out[key] = `${value}s`;
    } else if (field.fieldKind === "message" && typeof value === "object" && value !== null && !Array.isArray(value)) {
      out[key] = humanized(field.message, value as Record<string, unknown>);
    } else if (field.fieldKind === "scalar" && field.name.endsWith("_bytes") && typeof value === "string" && !/^\d+$/.test(value)) {
      out[key] = parseBytes(field.name, value).toString();
    }
  }
  return out;
}

/**
 * Reads a message from a JSON or YAML file (or "-" for stdin) in the proto JSON form
 * (camelCase or snake_case field names, enums by name; durations also as "10m", sizes as "256m").
 */
export function readMessageFile<D extends DescMessage>(flag: string, schema: D, file: string): MessageShape<D> {
  let text: string;
  try {
    text = readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (err) {
    throw usageError(`${flag} ${file}: cannot read it: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = YAML.parse(text);
  } catch (err) {
    throw usageError(`${flag} ${file}: not valid JSON or YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw usageError(`${flag} ${file}: expected an object with the fields of ${schema.typeName}`);
  }
  try {
    return fromJson(schema, humanized(schema, data as Record<string, unknown>) as JsonValue);
  } catch (err) {
    throw usageError(`${flag} ${file}: not a valid ${schema.typeName}: ${(err as Error).message}`);
  }
}
