/**
 * Writes docs/api.md from the proto comments, so the reference cannot drift from the API:
 * `buf build` gives the FileDescriptorSet with its source info (the comments), the registry
 * resolves types, and every RPC gets its comment, its request and response fields, who may
 * call it (src/api/auth-table.ts) and a hand-written example (./api-docs-examples.ts) that
 * must parse as its request. Output is deterministic.
 *
 *   node --import tsx scripts/gen-api-docs.ts           write docs/api.md
 *   node --import tsx scripts/gen-api-docs.ts --check   exit 1 when docs/api.md is not current
 *   --out PATH                                          another file than docs/api.md
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createFileRegistry, fromBinary, fromJson, ScalarType } from "@bufbuild/protobuf";
import type { DescEnum, DescField, DescFile, DescMessage, DescMethod, DescService, FileRegistry, JsonValue } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { ROLE_PERMISSIONS, RPC_RULES } from "../src/api/auth-table.js";
import { ROLES } from "../src/core/auth.js";
import { API_EXAMPLES } from "./api-docs-examples.js";
import type { ApiExample } from "./api-docs-examples.js";
import { INTRO_HEAD, INTRO_BODY } from "./api-docs-intro.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PACKAGE = "agentorch.v1";
/** The services documented, in this order. */
const SERVICES = ["agentorch.v1.AgentOrchestratorService", "agentorch.v1.LifecycleService"];
/** The proto files whose messages and enums the reference lists, in this order. */
const FILES = ["agent", "events", "task", "a2a", "orchestrator_service", "lifecycle_service"].map((f) => `agentorch/v1/${f}.proto`);
const ADDRESS = "http://127.0.0.1:50051";
const WKT_DOCS = "https://protobuf.dev/reference/protobuf/google.protobuf/";

/** The FileDescriptorSet of proto/agentorch (with imports and comments), from buf. */
export function loadRegistry(root = ROOT): FileRegistry {
  const buf = path.join(root, "node_modules", ".bin", "buf");
  const image = execFileSync(buf, ["build", "--path", "proto/agentorch", "-o", "-#format=binpb"], { cwd: root, maxBuffer: 64 << 20 });
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, image));
}

// ---- comments -------------------------------------------------------------------------------

type Described = DescMessage | DescField | DescEnum | DescEnum["values"][number] | DescService | DescMethod | NonNullable<DescField["oneof"]>;

/** The source-info path of a descriptor (descriptor.proto field numbers and indexes). */
function sourcePath(d: Described): number[] {
  switch (d.kind) {
    case "message":
      return d.parent ? [...sourcePath(d.parent), 3, d.parent.nestedMessages.indexOf(d)] : [4, d.file.messages.indexOf(d)];
    case "field":
      return [...sourcePath(d.parent), 2, d.parent.proto.field.indexOf(d.proto)];
    case "oneof":
      return [...sourcePath(d.parent), 8, d.parent.oneofs.indexOf(d)];
    case "enum":
      return d.parent ? [...sourcePath(d.parent), 4, d.parent.nestedEnums.indexOf(d)] : [5, d.file.enums.indexOf(d)];
    case "enum_value":
      return [...sourcePath(d.parent), 2, d.parent.values.indexOf(d)];
    case "service":
      return [6, d.file.services.indexOf(d)];
    case "rpc":
      return [...sourcePath(d.parent), 2, d.parent.methods.indexOf(d)];
    default:
      throw new Error(`no source path for ${(d as { kind: string }).kind}`);
  }
}

function fileOf(d: Described): DescFile {
  switch (d.kind) {
    case "field":
    case "oneof":
      return d.parent.file;
    case "enum_value":
      return d.parent.file;
    case "rpc":
      return d.parent.file;
    default:
      return d.file;
  }
}

/** The comment above a declaration (or after it), as lines without the comment's leading space. */
function commentLines(d: Described): string[] {
  const want = sourcePath(d).join(".");
  const loc = fileOf(d).proto.sourceCodeInfo?.location.find((l) => l.path.join(".") === want);
  const text = loc?.leadingComments ?? loc?.trailingComments ?? "";
  const lines = text.replace(/\n$/, "").split("\n").map((l) => l.replace(/^ /, ""));
  return lines.length === 1 && lines[0] === "" ? [] : lines;
}

const CODES = /\b(INVALID_ARGUMENT|DEADLINE_EXCEEDED|NOT_FOUND|ALREADY_EXISTS|PERMISSION_DENIED|RESOURCE_EXHAUSTED|FAILED_PRECONDITION|OUT_OF_RANGE|UNIMPLEMENTED|UNAVAILABLE|DATA_LOSS|UNAUTHENTICATED)\b/g;

/** Prose for Markdown: `<` escaped, gRPC codes as code. */
function prose(text: string): string {
  return text.replace(/</g, "&lt;").replace(/\*/g, "\\*").replace(CODES, "`$1`");
}

/** A comment as one line, for a table cell. */
function cell(d: Described): string {
  return prose(commentLines(d).map((l) => l.trim()).filter((l) => l !== "").join(" ")).replace(/\|/g, "\\|");
}

/** A comment as Markdown blocks: paragraphs, and indented lines (diagrams) as code blocks. */
function blocks(lines: string[]): string[] {
  const out: string[] = [];
  let para: string[] = [];
  let code: string[] = [];
  const flush = () => {
    if (para.length > 0) out.push(prose(para.join(" ")));
    if (code.length > 0) out.push(["```", ...code, "```"].join("\n"));
    para = [];
    code = [];
  };
  for (const line of lines) {
    if (line.trim() === "") flush();
    else if (/^\s{2,}/.test(line)) {
      if (para.length > 0) flush();
      code.push(line.replace(/^\s{2}/, ""));
    } else {
      if (code.length > 0) flush();
      para.push(line.trim());
    }
  }
  flush();
  return out;
}

// ---- types and tables -----------------------------------------------------------------------

/** The GitHub anchor of a heading made of one identifier. */
const anchor = (name: string) => `#${name.toLowerCase()}`;

function typeLink(d: DescMessage | DescEnum): string {
  if (d.typeName.startsWith("google.protobuf.")) return `[${d.typeName}](${WKT_DOCS}#${d.name.toLowerCase()})`;
  if (!d.typeName.startsWith(`${PACKAGE}.`)) throw new Error(`type outside ${PACKAGE}: ${d.typeName}`);
  return `[${d.name}](${anchor(d.name)})`;
}

function scalarName(t: ScalarType): string {
  return ScalarType[t].toLowerCase();
}

function fieldType(f: DescField): string {
  switch (f.fieldKind) {
    case "scalar":
      return `${f.proto.proto3Optional ? "optional " : ""}${scalarName(f.scalar)}`;
    case "enum":
      return `${f.proto.proto3Optional ? "optional " : ""}${typeLink(f.enum)}`;
    case "message":
      return typeLink(f.message);
    case "list":
      return `repeated ${f.listKind === "scalar" ? scalarName(f.scalar) : typeLink(f.listKind === "enum" ? f.enum : f.message)}`;
    case "map": {
      const value = f.mapKind === "scalar" ? scalarName(f.scalar) : typeLink(f.mapKind === "enum" ? f.enum : f.message);
      return `map&lt;${scalarName(f.mapKey)}, ${value}&gt;`;
    }
  }
}

function fieldTable(m: DescMessage): string[] {
  if (m.fields.length === 0) return ["No fields: send `{}`."];
  const rows = m.fields.map((f) => {
    const oneof = f.oneof ? `*One of \`${f.oneof.name}\`.* ` : "";
    return `| \`${f.name}\` | \`${f.jsonName}\` | ${fieldType(f)} | ${oneof}${cell(f)} |`;
  });
  const out = [["| field | JSON | type | description |", "|---|---|---|---|", ...rows].join("\n")];
  for (const o of m.oneofs) {
    const names = o.fields.map((f) => `\`${f.name}\``);
    const members = `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
    const note = cell(o);
    out.push(`Oneof \`${o.name}\` (${members}): ${note === "" ? "at most one is set." : note}`);
  }
  return out;
}

function messageSection(m: DescMessage, level: string): string[] {
  return [`${level} ${m.name}`, ...blocks(commentLines(m)), ...fieldTable(m)];
}

function enumSection(e: DescEnum): string[] {
  const rows = e.values.map((v) => `| \`${v.name}\` | ${v.number} | ${cell(v)} |`);
  return [`### ${e.name}`, ...blocks(commentLines(e)), ["| value | number | description |", "|---|---|---|", ...rows].join("\n")];
}

// ---- RPCs -----------------------------------------------------------------------------------

/** Who may call a method, from the permission table. */
function access(method: string): string {
  const rule = RPC_RULES[method];
  if (rule === undefined) throw new Error(`${method} is missing from RPC_RULES (src/api/auth-table.ts)`);
  const roles = ROLES.filter((r) => ROLE_PERMISSIONS[r].includes(rule.permission)).map((r) => `\`${r}\``);
  const agent =
    rule.agent === undefined
      ? "agents may not call it"
      : rule.agent.kind === "any"
        ? "agents may call it over their socket"
        : `agents may call it over their socket for themselves only (\`${rule.agent.field}\` must be their own id)`;
  return `**Access:** roles ${roles.join(", ")} (permission \`${rule.permission}\`); ${agent}.`;
}

/**
 * JSON on one line when it fits in the line (`used` characters already taken), else one member
 * per line, indented by two.
 */
function formatJson(value: unknown, indent = 0, used = 0): string {
  const flat = JSON.stringify(value);
  if (used + flat.length <= 80 || value === null || typeof value !== "object") return flat;
  const pad = " ".repeat(indent + 2);
  const entries = Array.isArray(value)
    ? value.map((v) => pad + formatJson(v, indent + 2, pad.length))
    : Object.entries(value).map(([k, v]) => {
        const head = `${pad}${JSON.stringify(k)}: `;
        return head + formatJson(v, indent + 2, head.length);
      });
  const [open, close] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  return `${open}\n${entries.join(",\n")}\n${" ".repeat(indent)}${close}`;
}

function exampleBlock(method: DescMethod, full: string, example: ApiExample, registry: FileRegistry): string[] {
  try {
    fromJson(method.input, example.body as JsonValue, { registry });
  } catch (err) {
    throw new Error(`the example of ${full} is not a valid ${method.input.typeName} in JSON: ${(err as Error).message}`);
  }
  const body = formatJson(example.body, 0, 6);
  if (body.includes("'")) throw new Error(`the example of ${full} contains a single quote, which breaks the shell quoting`);
  const command = body.includes("\n")
    ? `buf curl --protocol grpc --http2-prior-knowledge -d '${body}' \\\n  ${ADDRESS}/${full}`
    : `buf curl --protocol grpc --http2-prior-knowledge \\\n  -d '${body}' \\\n  ${ADDRESS}/${full}`;
  return [...(example.note ? [prose(example.note)] : []), ["```sh", command, "```"].join("\n")];
}

function rpcSection(method: DescMethod, registry: FileRegistry): string[] {
  const full = `${method.parent.typeName}/${method.name}`;
  const examples = API_EXAMPLES[full];
  if (examples === undefined || examples.length === 0) throw new Error(`no example for ${full}: add one to scripts/api-docs-examples.ts`);
  const kind = method.methodKind === "unary" ? "unary" : method.methodKind === "server_streaming" ? "server-streaming" : method.methodKind;
  const stream = method.methodKind === "server_streaming" ? "stream " : "";
  const lines = commentLines(method);
  const text = lines.join("\n");
  const at = text.search(/\bErrors:/);
  const what = at < 0 ? lines : text.slice(0, at).split("\n");
  const errors = at < 0 ? [] : [`**Errors:** ${prose(text.slice(at + "Errors:".length).replace(/\s+/g, " ").trim())}`];
  return [
    `### ${method.name}`,
    `\`rpc ${method.name}(${method.input.name}) returns (${stream}${method.output.name})\` · ${kind}`,
    ...blocks(what),
    ...errors,
    access(full),
    ...messageSection(method.input, "####"),
    ...messageSection(method.output, "####"),
    `**Example${examples.length > 1 ? "s" : ""}**`,
    ...examples.flatMap((e) => exampleBlock(method, full, e, registry)),
  ];
}

// ---- document -------------------------------------------------------------------------------

/** The whole of docs/api.md. Throws when an RPC lacks an example or a permission rule. */
export function renderApiDocs(registry: FileRegistry = loadRegistry()): string {
  const services = SERVICES.map((name) => {
    const s = registry.getService(name);
    if (s === undefined) throw new Error(`service ${name} not found in the proto build`);
    return s;
  });
  const known = new Set(services.flatMap((s) => s.methods.map((m) => `${s.typeName}/${m.name}`)));
  const stale = Object.keys(API_EXAMPLES).filter((k) => !known.has(k));
  if (stale.length > 0) throw new Error(`examples for RPCs that do not exist: ${stale.join(", ")}`);

  const rpcMessages = new Set(services.flatMap((s) => s.methods.flatMap((m) => [m.input.typeName, m.output.typeName])));
  const files = FILES.map((name) => {
    const f = registry.getFile(name);
    if (f === undefined) throw new Error(`${name} not found in the proto build`);
    return f;
  });
  const unlisted = [...registry.files].filter((f) => f.proto.package === PACKAGE && !FILES.includes(f.proto.name));
  if (unlisted.length > 0) throw new Error(`add ${unlisted.map((f) => f.proto.name).join(", ")} to FILES in scripts/gen-api-docs.ts`);
  const messages = files.flatMap((f) => f.messages).filter((m) => !rpcMessages.has(m.typeName));
  const enums = files.flatMap((f) => f.enums);

  const toc = [
    "## Contents",
    [
      "- [Calling the API](#calling-the-api), [Errors](#errors), [Streams and resume](#streams-and-resume)",
      ...services.map((s) => `- [${s.name}](${anchor(s.name)}): ${s.methods.map((m) => `[${m.name}](${anchor(m.name)})`).join(", ")}`),
      `- [Messages](#messages): ${messages.map((m) => `[${m.name}](${anchor(m.name)})`).join(", ")}`,
      `- [Enums](#enums): ${enums.map((e) => `[${e.name}](${anchor(e.name)})`).join(", ")}`,
    ].join("\n"),
  ];
  const parts = [
    ...INTRO_HEAD,
    ...toc,
    ...INTRO_BODY,
    ...services.flatMap((s) => [`## ${s.name}`, ...blocks(commentLines(s)), ...s.methods.flatMap((m) => rpcSection(m, registry))]),
    "## Messages",
    "Every message of `agentorch.v1` that is not the request or response of one RPC (those are listed with their RPC).",
    ...messages.flatMap((m) => messageSection(m, "###")),
    "## Enums",
    "In JSON, an enum value is its name as a string (e.g. `\"AGENT_STATUS_RUNNING\"`).",
    ...enums.flatMap(enumSection),
  ];
  assertUniqueHeadings(parts);
  return `${parts.join("\n\n")}\n`;
}

/** GitHub suffixes repeated heading anchors with -1, -2: links to the plain anchor would then go astray. */
function assertUniqueHeadings(parts: string[]): void {
  const seen = new Set<string>();
  for (const p of parts) {
    const m = /^#{1,6} (.+)$/.exec(p);
    if (m === null) continue;
    const slug = m[1]!.toLowerCase().replace(/[^a-z0-9 _-]/g, "").replace(/ /g, "-");
    if (seen.has(slug)) throw new Error(`two headings have the anchor #${slug}`);
    seen.add(slug);
  }
}

function main(argv: string[]): number {
  const check = argv.includes("--check");
  const outAt = argv.indexOf("--out");
  const out = outAt >= 0 && argv[outAt + 1] !== undefined ? path.resolve(argv[outAt + 1]!) : path.join(ROOT, "docs", "api.md");
  const shown = path.relative(process.cwd(), out) || out;
  const text = renderApiDocs();
  if (!check) {
    writeFileSync(out, text);
    console.log(`wrote ${shown}`);
    return 0;
  }
  let current: string | undefined;
  try {
    current = readFileSync(out, "utf8");
  } catch {
    current = undefined;
  }
  if (current === text) return 0;
  const have = current?.split("\n") ?? [];
  const want = text.split("\n");
  const line = want.findIndex((l, i) => have[i] !== l);
  const where = current === undefined ? "it does not exist" : `first difference at line ${(line < 0 ? want.length : line) + 1}`;
  console.error(`${shown} is not current with proto/ (${where}): run \`npm run docs:api\` and commit the result`);
  return 1;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    console.error(`gen-api-docs: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 2;
  }
}
