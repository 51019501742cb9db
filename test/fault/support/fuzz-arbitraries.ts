/**
 * fast-check arbitraries for bad requests, driven by the services' own descriptors so every
 * field of every RPC is reached: proto3-JSON bodies with random, extreme, oversize and
 * wrongly typed values, unknown enum names and numbers, huge page sizes, bogus page tokens,
 * deeply nested Structs, unknown fields; binary bodies made from them, then corrupted
 * (invalid UTF-8 in a string field, truncation, random bytes, nesting past any limit).
 */
import { create, type DescField, type DescMessage, fromJson, type JsonValue, ScalarType, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import fc from "fast-check";

/** Ids that exist in the service under test, so lookups reach past NOT_FOUND. */
export interface KnownIds {
  agents: string[];
  tasks: string[];
}

const OVERSIZE = 70_000;

function stringArb(known: KnownIds): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.string({ maxLength: 16 }) },
    { weight: 3, arbitrary: fc.constantFrom(...known.agents, ...known.tasks, "", " ", "..", "a/b", "\u0000", "eph-x", "task-x", "AGENT") },
    { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 12 }) },
    // Lone surrogates: not representable in UTF-8.
    { weight: 1, arbitrary: fc.constantFrom("\ud800", "a\udfffb", "\udbff\udc00\ud800") },
    { weight: 1, arbitrary: fc.base64String({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.nat({ max: 3 }).map((n) => "x".repeat([300, 5_000, 20_000, OVERSIZE][n]!)) },
    // Page tokens that decode but lie: another filter, a non-numeric position, a huge one.
    {
      weight: 1,
      arbitrary: fc
        .record({ a: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("1e400", "-1", "9007199254740993", "NaN")), f: fc.string({ maxLength: 8 }) })
        .map((t) => Buffer.from(JSON.stringify(t)).toString("base64url")),
    },
  );
}

const INT32_EXTREMES = [0, -1, 1, 2 ** 31 - 1, -(2 ** 31), 1000, 1001, 100_000];
const INT64_EXTREMES = ["0", "-1", "9223372036854775807", "-9223372036854775808", "18446744073709551615", "99999999999999999999", "1e3", "0x10"];

function scalarArb(t: ScalarType, known: KnownIds): fc.Arbitrary<JsonValue> {
  switch (t) {
    case ScalarType.STRING:
      return stringArb(known);
    case ScalarType.BYTES:
      return fc.oneof(fc.base64String({ maxLength: 40 }), fc.string({ maxLength: 10 }));
    case ScalarType.BOOL:
      return fc.oneof({ weight: 5, arbitrary: fc.boolean() }, { weight: 1, arbitrary: fc.constantFrom("true", 1, 0) });
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.constantFrom(...INT32_EXTREMES), fc.integer(), fc.constantFrom("12", "1.5", 1.5, 4294967296, -4294967296));
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      return fc.oneof(
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.constantFrom("NaN", "Infinity", "-Infinity", 1e308, -0, 3.4e39, "1e999"),
      );
    default:
      return fc.oneof(fc.constantFrom(...INT64_EXTREMES), fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((b) => b.toString()), fc.integer());
  }
}

/** A JSON value nested `depth` levels deep (objects and arrays alternating). */
export function nested(depth: number): JsonValue {
  let v: JsonValue = "leaf";
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? { k: v } : [v];
  return v;
}

const jsonValueArb: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 5, arbitrary: fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<JsonValue> },
  { weight: 1, arbitrary: fc.constantFrom(20, 99, 101, 200).map(nested) },
);

function wktArb(typeName: string): fc.Arbitrary<JsonValue> | undefined {
  switch (typeName) {
    case "google.protobuf.Timestamp":
      return fc.oneof(
        fc.date({ min: new Date("0001-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z"), noInvalidDate: true }).map((d) => d.toISOString()),
        fc.constantFrom("0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "2024-13-45T25:61:61Z", "yesterday", ""),
      );
    case "google.protobuf.Duration":
      return fc.oneof(
        fc.integer({ min: -1000, max: 100_000 }).map((n) => `${n / 10}s`),
        fc.constantFrom("0s", "-1s", "0.000000001s", "315576000000s", "315576000001s", "1e9s", "1m", "s", "", "99999999999999999999s"),
      );
    case "google.protobuf.Struct":
      return fc.oneof(
        fc.dictionary(fc.string({ maxLength: 6 }), jsonValueArb, { maxKeys: 4 }) as fc.Arbitrary<JsonValue>,
        fc.constantFrom(99, 101, 150, 300).map((d) => ({ deep: nested(d) })),
        fc.nat({ max: 1 }).map((n) => Object.fromEntries(Array.from({ length: [3000, 30_000][n]! }, (_, i) => [`k${i}`, i]))),
      );
    case "google.protobuf.Value":
      return jsonValueArb;
    case "google.protobuf.ListValue":
      return fc.array(jsonValueArb, { maxLength: 4 });
    case "google.protobuf.FieldMask":
      // Real paths too, but none that could free a task slot (see bad-input.test.ts).
      return fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom("", "max_execution_time", "max_queued_tasks", "bogus", "maxExecutionTime,bogus", ",,,"));
    case "google.protobuf.Empty":
      return fc.constant({});
    default:
      return undefined;
  }
}

function singleArb(field: DescField, known: KnownIds, depth: number): fc.Arbitrary<JsonValue> {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind === "map" ? field.mapKind : field.fieldKind;
  if (kind === "scalar") return scalarArb((field as { scalar: ScalarType }).scalar, known);
  if (kind === "enum") {
    const e = (field as { enum: { values: { name: string; number: number }[] } }).enum;
    return fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...e.values.map((v) => v.name)) },
      { weight: 1, arbitrary: fc.constantFrom(...e.values.map((v) => v.number), 99, -1, 2 ** 31 - 1) },
      { weight: 1, arbitrary: fc.constantFrom("BOGUS", e.values[0]!.name.toLowerCase(), "") },
    );
  }
  const message = (field as { message: DescMessage }).message;
  return wktArb(message.typeName) ?? (depth >= 3 ? fc.constant({}) : messageJsonArb(message, known, depth + 1));
}

/** A small value of the field's element type: what oversize lists and maps are made of. */
function smallValue(field: DescField): JsonValue {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind === "map" ? field.mapKind : field.fieldKind;
  if (kind === "enum") return (field as { enum: { values: { name: string }[] } }).enum.values[0]!.name;
  if (kind === "message") return {};
  const t = (field as { scalar: ScalarType }).scalar;
  if (t === ScalarType.STRING) return "x";
  if (t === ScalarType.BOOL) return true;
  if (t === ScalarType.BYTES) return "eA==";
  return 1;
}

function fieldArb(field: DescField, known: KnownIds, depth: number): fc.Arbitrary<JsonValue> {
  const one = singleArb(field, known, depth);
  // Oversize lists and maps have many small entries (many oversize entries would only test the size limit).
  const counts = fc.constantFrom(65, 1001, 20_000);
  if (field.fieldKind === "list") {
    return fc.oneof(
      { weight: 6, arbitrary: fc.array(one, { maxLength: 4 }) },
      { weight: 1, arbitrary: counts.map((n) => Array.from({ length: n }, () => smallValue(field))) },
    );
  }
  if (field.fieldKind === "map") {
    const key = field.mapKey === ScalarType.STRING ? stringArb(known) : fc.integer().map(String);
    return fc.oneof(
      { weight: 6, arbitrary: fc.dictionary(key, one, { maxKeys: 4 }) as fc.Arbitrary<JsonValue> },
      { weight: 1, arbitrary: counts.map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`K${i}`, smallValue(field)]))) },
    );
  }
  return one;
}

/** A proto3-JSON object for desc: random fields, sometimes of the wrong type, sometimes unknown ones. */
export function messageJsonArb(desc: DescMessage, known: KnownIds, depth = 0): fc.Arbitrary<Record<string, JsonValue>> {
  const entries = desc.fields.map((f) =>
    fc
      .tuple(
        fc.option(
          fc.oneof(
            { weight: 8, arbitrary: fieldArb(f, known, depth) },
            // The wrong JSON type for the field.
            { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 }), fc.constant({ x: 1 })) },
          ),
          { freq: 2 },
        ),
        fc.boolean(),
      )
      .map(([v, jsonName]) => [jsonName ? f.jsonName : f.name, v] as const),
  );
  return fc
    .tuple(fc.tuple(...entries), fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }) as fc.Arbitrary<JsonValue>, { maxKeys: 2 }), { freq: 6 }))
    .map(([fields, unknown]) => {
      const out: Record<string, JsonValue> = {};
      for (const [k, v] of fields) if (v !== null) out[k] = v;
      if (unknown) Object.assign(out, unknown);
      return out;
    });
}

/** The binary form of a JSON request, when it is valid proto3 JSON (else undefined). */
export function toBinaryIfValid(desc: DescMessage, json: JsonValue): Uint8Array | undefined {
  try {
    return toBinary(desc, fromJson(desc, json, { ignoreUnknownFields: true }));
  } catch {
    return undefined;
  }
}

/** Appends a string-typed field (by number) holding bytes that are not UTF-8. */
export function withInvalidUtf8(desc: DescMessage, base: Uint8Array, which: number, bytes: number[]): Uint8Array {
  const strings = desc.fields.filter((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING);
  const w = new BinaryWriter();
  w.raw(base);
  const field = strings.length > 0 ? strings[which % strings.length]! : undefined;
  w.tag(field?.number ?? 1, WireType.LengthDelimited).bytes(new Uint8Array(bytes));
  return w.finish();
}

export const INVALID_UTF8 = [
  [0xff],
  [0xc3, 0x28],
  [0xed, 0xa0, 0x80], // an encoded surrogate
  [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
  [0xe2, 0x82], // truncated sequence
  [0xc0, 0xaf], // overlong "/"
];

/**
 * A message nested past any sane depth, written directly as bytes (no encoder recursion):
 * field `fieldNo` of the outer message holds a message whose field 1 holds the next, …
 */
export function deepBytes(fieldNo: number, depth: number): Uint8Array {
  const w = new BinaryWriter();
  w.tag(fieldNo, WireType.LengthDelimited).bytes(deepInner(depth));
  return w.finish();
}

/**
 * The nested part, made once per depth: each level copies the one inside it, so 20,000
 * levels cost about 400 MB of copying (3 s here), more than all the other inputs together.
 */
function deepInner(depth: number): Uint8Array {
  const cached = deepCache.get(depth);
  if (cached) return cached;
  let inner = new Uint8Array(0);
  for (let i = 0; i < depth; i++) {
    const w = new BinaryWriter();
    w.tag(1, WireType.LengthDelimited).bytes(inner);
    inner = w.finish();
  }
  deepCache.set(depth, inner);
  return inner;
}
const deepCache = new Map<number, Uint8Array>();

/** An empty message of desc in binary (a valid request for methods without required fields). */
export function emptyBinary(desc: DescMessage): Uint8Array {
  return toBinary(desc, create(desc));
}
