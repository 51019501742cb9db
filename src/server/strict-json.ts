/**
 * Strict reading of JSON requests. connect-es reads JSON with `ignoreUnknownFields: true`
 * by default, so a misspelt field (`"timeut":"5s"`) or an enum value without its prefix
 * (`"status":"RUNNING"`) was silently dropped and the call ran with the default instead:
 * every agent listed, a 900 s timeout, the no-network policy. The server now reads JSON
 * strictly (jsonOptions.ignoreUnknownFields false), and this module checks a request first
 * so the error names the field by its path and lists what would have been accepted.
 *
 * Well-known types (Timestamp, Duration, Struct, wrappers…) have JSON forms of their own;
 * their contents are left to protobuf-es, whose errors are already specific.
 */
import { type DescEnum, type DescField, type DescMessage, fromJsonString } from "@bufbuild/protobuf";
import { invalidField } from "../api/error-details.js";

/** One thing wrong with a request, by field path (proto JSON names, dotted; [i] for list items). */
export interface JsonViolation {
  field: string;
  description: string;
}

/** The first violation in a JSON request for desc, or undefined when it reads strictly. */
export function findJsonViolation(desc: DescMessage, text: string): JsonViolation | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { field: "", description: `the request is not valid JSON: ${(err as Error).message}` };
  }
  const found = walkMessage(desc, json, "");
  if (found) return found;
  try {
    fromJsonString(desc, text, { ignoreUnknownFields: false });
  } catch (err) {
    return { field: "", description: (err as Error).message };
  }
  return undefined;
}

/** Throws INVALID_ARGUMENT naming the violation (with a BadRequest detail), if any. */
export function checkJsonRequest(desc: DescMessage, text: string): void {
  const v = findJsonViolation(desc, text);
  if (v) throw invalidField(v.field, v.field ? `${v.field}: ${v.description}` : v.description);
}

function isWellKnown(desc: DescMessage): boolean {
  return desc.typeName.startsWith("google.protobuf.");
}

function walkMessage(desc: DescMessage, json: unknown, path: string): JsonViolation | undefined {
  if (isWellKnown(desc) || json === null || typeof json !== "object" || Array.isArray(json)) return undefined;
  for (const [key, value] of Object.entries(json)) {
    const field = desc.fields.find((f) => f.jsonName === key || f.name === key);
    const at = path ? `${path}.${key}` : key;
    if (!field) return { field: at, description: unknownField(desc, key) };
    if (value === null) continue; // null means the default, for any field
    const found = walkField(field, value, path ? `${path}.${field.jsonName}` : field.jsonName);
    if (found) return found;
  }
  return undefined;
}

function walkField(field: DescField, value: unknown, at: string): JsonViolation | undefined {
  switch (field.fieldKind) {
    case "enum":
      return checkEnum(field.enum, value, at);
    case "message":
      return walkMessage(field.message, value, at);
    case "list":
      if (!Array.isArray(value)) return undefined; // protobuf-es says what is wrong
      for (let i = 0; i < value.length; i++) {
        const item = value[i];
        const found =
          field.listKind === "enum"
            ? checkEnum(field.enum, item, `${at}[${i}]`)
            : field.listKind === "message"
              ? walkMessage(field.message, item, `${at}[${i}]`)
              : undefined;
        if (found) return found;
      }
      return undefined;
    case "map":
      if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
      for (const [k, item] of Object.entries(value)) {
        const found =
          field.mapKind === "enum"
            ? checkEnum(field.enum, item, `${at}["${k}"]`)
            : field.mapKind === "message"
              ? walkMessage(field.message, item, `${at}["${k}"]`)
              : undefined;
        if (found) return found;
      }
      return undefined;
    default:
      return undefined;
  }
}

function checkEnum(desc: DescEnum, value: unknown, at: string): JsonViolation | undefined {
  if (typeof value !== "string") return undefined; // numbers are valid JSON for enums
  if (desc.values.some((v) => v.name === value)) return undefined;
  const names = desc.values.map((v) => v.name);
  const guess = names.find((n) => n === `${desc.sharedPrefix ? desc.sharedPrefix.toUpperCase() : ""}${value.toUpperCase()}`);
  const hint = guess ? ` (did you mean "${guess}"?)` : "";
  return { field: at, description: `unknown value "${value}" for ${desc.typeName}${hint}; accepted: ${names.join(", ")}` };
}

function unknownField(desc: DescMessage, key: string): string {
  const squash = (s: string) => s.replace(/_/g, "").toLowerCase();
  const guess =
    desc.fields.find((f) => squash(f.jsonName) === squash(key)) ??
    desc.fields.find((f) => editDistance(squash(f.jsonName), squash(key)) <= 2);
  const hint = guess ? ` (did you mean "${guess.jsonName}"?)` : "";
  const accepted = desc.fields.map((f) => f.jsonName).join(", ");
  return `unknown field "${key}" in ${desc.typeName}${hint}; accepted: ${accepted || "none"} (or their proto names, e.g. snake_case)`;
}

/** Levenshtein distance, for "did you mean" on short names. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
