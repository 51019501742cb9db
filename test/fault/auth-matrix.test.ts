/**
 * The role x RPC matrix, generated: every method of every service the generated code
 * declares (gen/agentorch/v1/*_pb.ts, read from the directory, plus health and both
 * reflection versions) is called by every kind of caller, over a real server and a real
 * gRPC client (@grpc/grpc-js, messages encoded from the generated descriptors):
 *
 *   on the TCP port: no token, a bogus token, viewer, operator, admin;
 *   on the agent socket: a running agent's own token (acting as itself, and, where the table
 *   says "own", as another agent), no token, and an operator's token.
 *
 * Each answer is checked against THE permission table (src/api/auth-table.ts: RPC_RULES,
 * roleMay, OPEN_SERVICES): an allowed call must not be refused (UNAUTHENTICATED or
 * PERMISSION_DENIED), a refused one must be, with the right one of the two. A method of a
 * generated service that the table does not list fails the test, naming the method and the
 * file to add it to: a new RPC cannot ship without an entry. The container backend is a
 * fake (no Docker needed).
 */
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import path from "node:path";
import { create, type DescField, type DescMessage, type DescMethod, type DescService, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { type AgentAccess, OPEN_SERVICES, roleMay, RPC_RULES } from "../../src/api/auth-table.js";
import type { Role } from "../../src/core/auth.js";
import { hashToken } from "../../src/core/tokens.js";
import { FakeBackend } from "../fakes/fake-backend.js";
import { REPO_ROOT, startTestServer, type TestServer } from "../support/server.js";
import { CODE_NAMES } from "./support/wire.js";

// ------------------------------------------------------------------ every generated service

/** Every service exported by the generated agentorch modules (found by listing the directory), plus health and reflection. */
async function generatedServices(): Promise<DescService[]> {
  const dir = path.join(REPO_ROOT, "gen", "agentorch", "v1");
  const found: DescService[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith("_pb.ts")).sort()) {
    const mod = (await import(path.join(dir, file))) as Record<string, unknown>;
    for (const v of Object.values(mod)) {
      if (typeof v === "object" && v !== null && (v as { kind?: string }).kind === "service") found.push(v as DescService);
    }
  }
  return [...found, Health, ReflectionV1, ReflectionV1Alpha];
}

// ------------------------------------------------------------------ callers

const ROLES: Role[] = ["viewer", "operator", "admin"];
const TOKENS: Record<Role, string> = {
  viewer: randomBytes(32).toString("base64url"),
  operator: randomBytes(32).toString("base64url"),
  admin: randomBytes(32).toString("base64url"),
};
const BOGUS = randomBytes(32).toString("base64url");
const AGENT = "matrix-a";
const OTHER = "matrix-b";

type Caller =
  | { name: string; where: "tcp"; token?: string; role?: Role }
  | { name: string; where: "socket"; token?: "agent" | string; actsAs?: string };

const CALLERS: Caller[] = [
  { name: "tcp: no token", where: "tcp" },
  { name: "tcp: bogus token", where: "tcp", token: BOGUS },
  ...ROLES.map((role): Caller => ({ name: `tcp: ${role}`, where: "tcp", token: TOKENS[role], role })),
  { name: "socket: agent as itself", where: "socket", token: "agent", actsAs: AGENT },
  { name: "socket: agent as another agent", where: "socket", token: "agent", actsAs: OTHER },
  { name: "socket: no token", where: "socket" },
  { name: "socket: operator token", where: "socket", token: TOKENS.operator },
];

type Expect = "allowed" | "unauthenticated" | "permission_denied";

/** What the table says a caller gets from a method. */
function expected(method: string, service: string, caller: Caller): Expect {
  if (OPEN_SERVICES.has(service)) return "allowed";
  const rule = RPC_RULES[method]!;
  if (caller.where === "tcp") {
    if (caller.role === undefined) return "unauthenticated";
    return roleMay(caller.role, rule.permission) ? "allowed" : "permission_denied";
  }
  if (caller.token !== "agent") return "unauthenticated";
  const access: AgentAccess | undefined = rule.agent;
  if (access === undefined) return "permission_denied";
  if (access.kind === "any") return "allowed";
  return caller.actsAs === AGENT ? "allowed" : "permission_denied";
}

// ------------------------------------------------------------------ requests

/** Sets a field by its proto-name path ("message.from_agent_id") on a message made from its descriptor. */
function setPath(desc: DescMessage, msg: Message, dotted: string, value: string): void {
  const [head, ...rest] = dotted.split(".");
  const field = desc.fields.find((f: DescField) => f.name === head);
  if (!field) throw new Error(`${desc.typeName} has no field ${head} (from the permission table's "${dotted}")`);
  const rec = msg as unknown as Record<string, unknown>;
  if (rest.length === 0) {
    rec[field.localName] = value;
    return;
  }
  if (field.fieldKind !== "message") throw new Error(`${desc.typeName}.${head} is not a message`);
  const inner = create(field.message);
  setPath(field.message, inner, rest.join("."), value);
  // A oneof member is set through its case; plain message fields directly.
  if (field.oneof) rec[field.oneof.localName] = { case: field.localName, value: inner };
  else rec[field.localName] = inner;
}

/**
 * The request a caller sends: empty (an allowed call then fails in the handler, e.g.
 * INVALID_ARGUMENT for a missing id, or just runs: nothing here changes anything that
 * matters), with the table's "own" field set to whom the agent claims to be.
 */
function requestFor(method: DescMethod, caller: Caller): Uint8Array {
  const msg = create(method.input);
  const rule = RPC_RULES[`${method.parent.typeName}/${method.name}`];
  if (caller.where === "socket" && rule?.agent?.kind === "own") setPath(method.input, msg, rule.agent.field, caller.actsAs ?? AGENT);
  return toBinary(method.input, msg);
}

// ------------------------------------------------------------------ calling

interface Answer {
  /** "ok" also for a stream that got going (its first message arrived). */
  code: string;
  message: string;
}

function call(client: grpc.Client, method: DescMethod, body: Uint8Array, token: string | undefined): Promise<Answer> {
  const p = `/${method.parent.typeName}/${method.name}`;
  const md = new grpc.Metadata();
  if (token !== undefined) md.set("authorization", `Bearer ${token}`);
  const serialize = (b: Uint8Array) => Buffer.from(b);
  const deserialize = (b: Buffer) => fromBinary(method.output, b);
  // Allowed streams send something at once (bookmarks and keep-alives every 100 ms, see the
  // server's settings below) or fail in the handler; a refused one ends with its status. A
  // deadline is only a backstop (it reads as "deadline_exceeded", which no refusal may be).
  const deadline = Date.now() + 20_000;
  return new Promise((resolve) => {
    let settled = false;
    const done = (code: number, message: string) => {
      if (settled) return;
      settled = true;
      resolve({ code: CODE_NAMES[code] ?? String(code), message });
    };
    if (method.methodKind === "unary") {
      client.makeUnaryRequest(p, serialize, deserialize, body, md, { deadline }, (err) => (err ? done(err.code, err.details) : done(0, "")));
      return;
    }
    const stream =
      method.methodKind === "server_streaming"
        ? client.makeServerStreamRequest(p, serialize, deserialize, body, md, { deadline })
        : method.methodKind === "client_streaming"
          ? client.makeClientStreamRequest(p, serialize, deserialize, md, { deadline }, (err) => (err ? done(err.code, err.details) : done(0, "")))
          : client.makeBidiStreamRequest(p, serialize, deserialize, md, { deadline });
    if ("write" in stream) {
      stream.write(body);
      stream.end();
    }
    if ("on" in stream) {
      stream.on("data", () => {
        done(0, "");
        stream.cancel();
      });
      stream.on("error", (err: grpc.ServiceError) => done(err.code, err.details));
      stream.on("status", (s: grpc.StatusObject) => done(s.code, s.details));
    }
  });
}

// ------------------------------------------------------------------ the server

let server: TestServer;
let tcp: grpc.Client;
let socket: grpc.Client;
let agentToken: string;
const backend = new FakeBackend();
let services: DescService[] = [];

beforeAll(async () => {
  services = await generatedServices();
  server = await startTestServer({
    env: {
      AGENTORCH_TOKENS: ROLES.map((r) => `m-${r}:${r}:${hashToken(TOKENS[r])}`).join(","),
      AGENTORCH_WATCH_BOOKMARK_INTERVAL_MS: "100",
      AGENTORCH_MAILBOX_KEEPALIVE_MS: "100",
    },
    overrides: { backend },
  });
  tcp = new grpc.Client(server.address, grpc.credentials.createInsecure());
  socket = new grpc.Client(`unix://${path.join(server.dataDir, "run", "agentorch.sock")}`, grpc.credentials.createInsecure());
  // A running agent, for its socket token, and another one for it to (try to) act as.
  const admin = new grpc.Metadata();
  admin.set("authorization", `Bearer ${TOKENS.admin}`);
  const orch = services.find((s) => s.typeName === "agentorch.v1.AgentOrchestratorService")!;
  const adminCall = (name: string, json: object) =>
    new Promise<void>((resolve, reject) => {
      const m = orch.methods.find((x) => x.name === name)!;
      const body = toBinary(m.input, create(m.input, json as never));
      tcp.makeUnaryRequest(`/${orch.typeName}/${name}`, (b: Uint8Array) => Buffer.from(b), (b: Buffer) => b, body, admin, { deadline: Date.now() + 15_000 }, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  for (const id of [AGENT, OTHER]) await adminCall("RegisterAgent", { agent: { agentId: id, image: "busybox:test", command: ["sleep", "60"] } });
  await adminCall("StartAgent", { agentId: AGENT });
  agentToken = backend.running().find((c) => c.spec.labels.agentId === AGENT)!.spec.env.AGENTORCH_TOKEN!;
}, 60_000);

afterAll(async () => {
  tcp?.close();
  socket?.close();
  await server?.stop();
});

describe("role x RPC matrix, generated from the descriptors and checked against src/api/auth-table.ts", () => {
  it("finds every service of the generated code, and the permission table covers every method", () => {
    const names = services.map((s) => s.typeName);
    expect(names).toEqual(expect.arrayContaining(["agentorch.v1.AgentOrchestratorService", "agentorch.v1.LifecycleService", "grpc.health.v1.Health"]));
    const missing = services
      .filter((s) => !OPEN_SERVICES.has(s.typeName))
      .flatMap((s) => s.methods.map((m) => `${s.typeName}/${m.name}`))
      .filter((m) => RPC_RULES[m] === undefined);
    expect(
      missing,
      `these RPCs have no entry in the permission table: add each to RPC_RULES in src/api/auth-table.ts (permission, and agent access if agents may call it)`,
    ).toEqual([]);
    // And the table names no method that does not exist.
    const all = new Set(services.flatMap((s) => s.methods.map((m) => `${s.typeName}/${m.name}`)));
    expect(Object.keys(RPC_RULES).filter((m) => !all.has(m)), "RPC_RULES entries for methods no service declares").toEqual([]);
  });

  it("answers every method as the table says, for every caller, on TCP and on the agent socket", async () => {
    const methods = services.flatMap((s) => s.methods.filter((m) => OPEN_SERVICES.has(s.typeName) || RPC_RULES[`${s.typeName}/${m.name}`] !== undefined));
    const rows: { full: string; caller: string; want: Expect; code: string; message: string }[] = [];
    // One method at a time (every caller at once): a few calls in flight, not hundreds, on a busy machine.
    for (const m of methods) {
      rows.push(
        ...(await Promise.all(
          CALLERS.map(async (caller) => {
            const full = `${m.parent.typeName}/${m.name}`;
            const token = caller.token === "agent" ? agentToken : caller.token;
            const answer = await call(caller.where === "tcp" ? tcp : socket, m, requestFor(m, caller), token);
            return { full, caller: caller.name, want: expected(full, m.parent.typeName, caller), ...answer };
          }),
        )),
      );
    }
    const wrong = rows
      .filter((r) => (r.want === "allowed" ? ["unauthenticated", "permission_denied"].includes(r.code) : r.code !== r.want))
      .map((r) => `${r.full} as ${r.caller}: want ${r.want}, got ${r.code} ${r.message}`);
    expect(wrong).toEqual([]);
    // The matrix is complete: every method x every caller was called.
    expect(rows.length).toBe(methods.length * CALLERS.length);
    const tally: Record<string, number> = {};
    for (const r of rows) tally[r.want] = (tally[r.want] ?? 0) + 1;
    console.log(`[auth-matrix] ${methods.length} methods x ${CALLERS.length} callers: ${JSON.stringify(tally)}`);
    // Allowed calls really reached their handlers: an empty GetAgent is the handler's INVALID_ARGUMENT.
    expect(rows.find((r) => r.full.endsWith("/GetAgent") && r.caller === "tcp: viewer")?.code).toBe("invalid_argument");
    expect(rows.find((r) => r.full.endsWith("/GetAgent") && r.caller === "socket: agent as itself")?.code).toBe("ok");
  });
});
