/**
 * Authorization rules without a network: the permission table covers every RPC, each role
 * against it, bearer parsing, and the interceptor's decisions for operators and for agents
 * acting as themselves or as others (called directly, as the server would call it).
 */
import { create } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, MessageInitShape } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type { StreamRequest, StreamResponse, UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { LifecycleService } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { AgentOrchestratorService } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { createAuth, parseBearer, PRINCIPAL } from "../../src/api/auth.js";
import { RPC_RULES, roleMay, ROLE_PERMISSIONS } from "../../src/api/auth-table.js";
import type { Principal, Role } from "../../src/core/auth.js";
import { OperatorTokens, ROLES } from "../../src/core/auth.js";
import { hashToken } from "../../src/core/tokens.js";
import { createTestLogger } from "../fakes/clock-and-logger.js";
import type { LogLine } from "../fakes/clock-and-logger.js";

const SERVICES = [AgentOrchestratorService, LifecycleService];
const ALL_METHODS = SERVICES.flatMap((s) => s.methods);
const fullName = (m: DescMethod) => `${m.parent.typeName}/${m.name}`;
const method = (name: string): DescMethod => {
  const m = ALL_METHODS.find((x) => x.name === name);
  if (!m) throw new Error(`no method ${name}`);
  return m;
};

describe("the permission table", () => {
  it("lists every method of both services, and nothing else", () => {
    const names = ALL_METHODS.map(fullName).sort();
    expect(Object.keys(RPC_RULES).sort()).toEqual(names);
    expect(names.length).toBeGreaterThanOrEqual(28);
  });

  it("opens to agents exactly the methods about themselves, messages and cards", () => {
    const forAgents = Object.entries(RPC_RULES)
      .filter(([, rule]) => rule.agent !== undefined)
      .map(([name, rule]) => `${name.split("/")[1]}:${rule.agent!.kind}`)
      .sort();
    expect(forAgents).toEqual([
      "AckMessages:own",
      "GetAgent:own",
      "GetAgentCard:any",
      "ListAgentCards:any",
      "PublishAgentCard:own",
      "ReportActivity:own",
      "SendAndWait:own",
      "SendMessage:own",
      "StreamMessages:own",
    ]);
  });

  it("gives admin everything, operator all but admin, viewer only reads", () => {
    expect(ROLES).toEqual(["admin", "operator", "viewer"]);
    for (const [name, rule] of Object.entries(RPC_RULES)) {
      expect(roleMay("admin", rule.permission), name).toBe(true);
      expect(roleMay("operator", rule.permission), name).toBe(rule.permission !== "admin");
      expect(roleMay("viewer", rule.permission), name).toBe(rule.permission === "read");
    }
    expect(ROLE_PERMISSIONS.viewer).toEqual(["read"]);
  });

  it.each([
    ["RegisterAgent", "operate"],
    ["StartAgent", "operate"],
    ["GetAgent", "read"],
    ["WatchAgents", "read"],
    ["StreamAgentOutput", "read"],
    ["SubmitTask", "operate"],
    ["WatchTasks", "read"],
    ["GetLifecycleConfig", "read"],
    ["UpdateLifecycleConfig", "admin"],
    ["SendMessage", "operate"],
    ["StreamMessages", "read"],
  ])("%s needs %s", (name, permission) => {
    expect(RPC_RULES[fullName(method(name))]?.permission).toBe(permission);
  });

  it("marks every read-only method (idempotent in the proto) as read", () => {
    // A method the proto declares free of side effects must not need more than read.
    const readOnly = ALL_METHODS.filter((m) => m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS);
    expect(readOnly.length).toBeGreaterThan(5);
    for (const m of readOnly) expect(RPC_RULES[fullName(m)]?.permission, fullName(m)).toBe("read");
  });
});

describe("parseBearer", () => {
  it.each([
    ["Bearer abc", "abc"],
    ["bearer abc", "abc"],
    ["BEARER   a.b-c_d=  ", "a.b-c_d="],
  ])("reads %j", (value, token) => expect(parseBearer(value)).toBe(token));

  it.each([null, undefined, "", "abc", "Basic abc", "Bearer", "Bearer ", "Bearer a b", "Bearer a, Bearer b", "Token abc"])(
    "refuses %j",
    (value) => expect(parseBearer(value)).toBeUndefined(),
  );
});

// ------------------------------------------------------------------ the interceptor, called directly

const TOKENS: Record<Role, string> = { admin: "admin-secret-1", operator: "operator-secret-2", viewer: "viewer-secret-3" };
const AGENT_TOKENS: Record<string, string> = { "agent-a": "agent-a-token", "agent-b": "agent-b-token" };

function setup(opts: { open?: boolean } = {}) {
  const lines: LogLine[] = [];
  const auth = createAuth({
    operatorTokens: new OperatorTokens(opts.open ? [] : ROLES.map((role) => ({ name: `${role}-user`, role, hash: hashToken(TOKENS[role]) }))),
    agentTokens: { agentFor: (t) => Object.keys(AGENT_TOKENS).find((id) => AGENT_TOKENS[id] === t) },
    logger: createTestLogger(lines),
  });
  return { auth, lines };
}

type Auth = ReturnType<typeof setup>["auth"];

interface Outcome {
  code?: Code;
  message?: string;
  principal?: Principal;
  /** The request message the handler received (streams: read from its input). */
  received?: unknown;
}

async function call<I extends DescMessage>(
  auth: Auth,
  m: DescMethod & { input: I },
  init: MessageInitShape<I>,
  opts: { token?: string; socket?: boolean; header?: Record<string, string> } = {},
): Promise<Outcome> {
  const nodeReq = {};
  if (opts.socket) auth.agentSocketHandler(() => undefined)(nodeReq, {});
  const contextValues = auth.contextValues(() => createContextValues())(nodeReq);
  const header = new Headers(opts.header);
  if (opts.token !== undefined) header.set("authorization", `Bearer ${opts.token}`);
  const message = create(m.input, init);
  const common = {
    service: m.parent,
    method: m,
    requestMethod: "POST",
    url: `http://x/${fullName(m)}`,
    signal: new AbortController().signal,
    header,
    contextValues,
  };
  const req =
    m.methodKind === "unary"
      ? ({ ...common, stream: false, message } as unknown as UnaryRequest)
      : ({ ...common, stream: true, message: (async function* () { yield message; })() } as unknown as StreamRequest);
  const out: Outcome = {};
  const next = async (r: UnaryRequest | StreamRequest): Promise<UnaryResponse | StreamResponse> => {
    out.principal = r.contextValues.get(PRINCIPAL);
    if (r.stream) {
      const all: unknown[] = [];
      for await (const x of r.message) all.push(x);
      expect(all).toHaveLength(1);
      out.received = all[0];
    } else {
      out.received = r.message;
    }
    return {} as UnaryResponse;
  };
  try {
    await auth.interceptor(next as never)(req as never);
  } catch (err) {
    const e = ConnectError.from(err);
    out.code = e.code;
    out.message = e.rawMessage;
  }
  return out;
}

describe("operators over TCP", () => {
  it("answers UNAUTHENTICATED without a token, with an unknown one, or with another scheme", async () => {
    const { auth } = setup();
    const m = method("ListAgents");
    expect(await call(auth, m, {})).toMatchObject({ code: Code.Unauthenticated, message: expect.stringContaining("missing bearer token") });
    expect(await call(auth, m, {}, { token: "nope" })).toMatchObject({ code: Code.Unauthenticated, message: "unknown bearer token" });
    expect(await call(auth, m, {}, { header: { authorization: `Basic ${TOKENS.admin}` } })).toMatchObject({ code: Code.Unauthenticated });
  });

  it("lets each role call what its permissions allow and names the RPC and role when not", async () => {
    const { auth } = setup();
    for (const role of ROLES) {
      for (const m of ALL_METHODS) {
        const out = await call(auth, m as never, {}, { token: TOKENS[role] });
        const may = roleMay(role, RPC_RULES[fullName(m)]!.permission);
        if (may) {
          expect(out.code, `${role} ${m.name}`).toBeUndefined();
          expect(out.principal).toEqual({ kind: "operator", name: `${role}-user`, role, open: false });
        } else {
          expect(out.code, `${role} ${m.name}`).toBe(Code.PermissionDenied);
          expect(out.message).toContain(fullName(m));
          expect(out.message).toContain(`role ${role}`);
        }
      }
    }
  });

  it("refuses agent tokens on TCP", async () => {
    const { auth } = setup();
    expect((await call(auth, method("GetAgentCard"), { agentId: "agent-a" }, { token: AGENT_TOKENS["agent-a"] })).code).toBe(Code.Unauthenticated);
  });

  it("with no tokens configured, treats every caller as an anonymous admin and warns once", async () => {
    const { auth, lines } = setup({ open: true });
    expect(lines.filter((l) => l.level === "warn").map((l) => l.msg)).toEqual([expect.stringContaining("no operator tokens configured")]);
    const out = await call(auth, method("UpdateLifecycleConfig"), {});
    expect(out.code).toBeUndefined();
    expect(out.principal).toMatchObject({ kind: "operator", role: "admin", open: true });
  });

  it("lets health through without a token", async () => {
    const { auth } = setup();
    expect((await call(auth, Health.method.check, { service: "" })).code).toBeUndefined();
    expect((await call(auth, Health.method.check, { service: "" }, { socket: true })).code).toBeUndefined();
  });

  it("never logs a token", async () => {
    const { auth, lines } = setup();
    await call(auth, method("StartAgent"), { agentId: "x" }, { token: TOKENS.viewer });
    await call(auth, method("StartAgent"), { agentId: "x" }, { token: "wrong-token-xyz" });
    await call(auth, method("SendMessage"), {}, { token: AGENT_TOKENS["agent-a"], socket: true });
    const text = JSON.stringify(lines);
    expect(lines.filter((l) => l.msg === "call refused")).toHaveLength(3);
    for (const secret of [...Object.values(TOKENS), ...Object.values(AGENT_TOKENS), "wrong-token-xyz"]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(hashToken(secret));
    }
  });
});

describe("agents over their socket", () => {
  const A = AGENT_TOKENS["agent-a"]!;
  const asA = { token: A, socket: true };

  it("answers UNAUTHENTICATED without a token, with an unknown or an operator token, or a mismatched agent id header", async () => {
    const { auth } = setup({ open: true }); // the socket never is open, even when TCP is
    const m = method("GetAgentCard");
    expect((await call(auth, m, { agentId: "agent-b" }, { socket: true })).code).toBe(Code.Unauthenticated);
    expect((await call(auth, m, { agentId: "agent-b" }, { socket: true, token: "nope" })).code).toBe(Code.Unauthenticated);
    const { auth: withTokens } = setup();
    expect((await call(withTokens, m, { agentId: "agent-b" }, { socket: true, token: TOKENS.admin })).code).toBe(Code.Unauthenticated);
    expect((await call(auth, m, { agentId: "agent-b" }, { ...asA, header: { "x-agentorch-agent-id": "agent-b" } })).code).toBe(Code.Unauthenticated);
    const ok = await call(auth, m, { agentId: "agent-b" }, { ...asA, header: { "x-agentorch-agent-id": "agent-a" } });
    expect(ok.code).toBeUndefined();
    expect(ok.principal).toEqual({ kind: "agent", agentId: "agent-a" });
  });

  it("sends messages only as itself", async () => {
    const { auth } = setup();
    const m = method("SendMessage");
    const msg = (from: string) => ({ message: { fromAgentId: from, toAgentId: "agent-b", handshake: { agentId: from, name: "n" } } });
    expect((await call(auth, m, msg("agent-a"), asA)).code).toBeUndefined();
    const other = await call(auth, m, msg("agent-b"), asA);
    expect(other.code).toBe(Code.PermissionDenied);
    expect(other.message).toBe(
      'agent "agent-a" may call agentorch.v1.LifecycleService/SendMessage only as itself (message.from_agent_id is "agent-b")',
    );
    expect((await call(auth, m, { message: { toAgentId: "agent-b" } }, asA)).message).toContain("message.from_agent_id is empty");
    expect((await call(auth, m, {}, asA)).code).toBe(Code.PermissionDenied);
    const sw = method("SendAndWait");
    expect((await call(auth, sw, msg("agent-a"), asA)).code).toBeUndefined();
    expect((await call(auth, sw, msg("agent-b"), asA)).code).toBe(Code.PermissionDenied);
  });

  it("streams and acknowledges only its own mailbox; the stream's request reaches the handler intact", async () => {
    const { auth } = setup();
    const own = await call(auth, method("StreamMessages"), { agentId: "agent-a", resumeAfterSequence: 7n }, asA);
    expect(own.code).toBeUndefined();
    expect(own.received).toMatchObject({ agentId: "agent-a", resumeAfterSequence: 7n });
    expect((await call(auth, method("StreamMessages"), { agentId: "agent-b" }, asA)).code).toBe(Code.PermissionDenied);
    expect((await call(auth, method("AckMessages"), { agentId: "agent-a", upToSequence: 1n }, asA)).code).toBeUndefined();
    expect((await call(auth, method("AckMessages"), { agentId: "agent-b", upToSequence: 1n }, asA)).code).toBe(Code.PermissionDenied);
  });

  it("publishes only its own card, reads any card, reports its own activity and reads itself", async () => {
    const { auth } = setup();
    expect((await call(auth, method("PublishAgentCard"), { card: { agentId: "agent-a" } }, asA)).code).toBeUndefined();
    expect((await call(auth, method("PublishAgentCard"), { card: { agentId: "agent-b" } }, asA)).code).toBe(Code.PermissionDenied);
    expect((await call(auth, method("GetAgentCard"), { agentId: "agent-b" }, asA)).code).toBeUndefined();
    expect((await call(auth, method("ListAgentCards"), {}, asA)).code).toBeUndefined();
    expect((await call(auth, method("ReportActivity"), { agentId: "agent-a" }, asA)).code).toBeUndefined();
    expect((await call(auth, method("ReportActivity"), { agentId: "agent-b" }, asA)).code).toBe(Code.PermissionDenied);
    expect((await call(auth, method("GetAgent"), { agentId: "agent-a" }, asA)).code).toBeUndefined();
    expect((await call(auth, method("GetAgent"), { agentId: "agent-b" }, asA)).code).toBe(Code.PermissionDenied);
  });

  it("may call nothing else", async () => {
    const { auth } = setup();
    for (const m of ALL_METHODS) {
      if (RPC_RULES[fullName(m)]!.agent !== undefined) continue;
      const out = await call(auth, m as never, { agentId: "agent-a" } as never, asA);
      expect(out.code, m.name).toBe(Code.PermissionDenied);
      expect(out.message).toBe(`agent "agent-a" may not call ${fullName(m)}`);
    }
  });
});
