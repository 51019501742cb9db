/**
 * Authentication and authorization end to end: a real server on a free port with operator
 * tokens configured (a tokens file and the inline variable), and clients that share no code
 * with it: @grpc/grpc-js over HTTP/2, and plain HTTP/1.1 Connect JSON (fetch). Every RPC of
 * both services is called as each role, without a token and with a wrong one, and checked
 * against the role table written out below (independently of the server's own table).
 * Then: health and reflection need no token; the agent socket takes only a running agent's
 * token and only for itself; and the service will not listen beyond loopback unprotected.
 * The container backend is a fake: no Docker engine is needed (test/integration/agent-socket
 * does the same from inside real containers).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LifecycleService } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { AgentOrchestratorService } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { hashToken } from "../../src/core/tokens.js";
import { ConfigError } from "../../src/server/config.js";
import { FakeBackend } from "../fakes/fake-backend.js";
import { methodDefinition } from "../support/grpc.js";
import { REPO_ROOT, startTestServer } from "../support/server.js";
import type { TestServer } from "../support/server.js";

// ------------------------------------------------------------------ the expected role table

type Role = "admin" | "operator" | "viewer";
/** The least role that may call each RPC; agents: "own" (only as itself), "any", or absent. */
const EXPECTED: Record<string, { least: Role; agent?: "own" | "any" }> = {
  "AgentOrchestratorService/RegisterAgent": { least: "operator" },
  "AgentOrchestratorService/GetAgent": { least: "viewer", agent: "own" },
  "AgentOrchestratorService/ListAgents": { least: "viewer" },
  "AgentOrchestratorService/StartAgent": { least: "operator" },
  "AgentOrchestratorService/StopAgent": { least: "operator" },
  "AgentOrchestratorService/RemoveAgent": { least: "operator" },
  "AgentOrchestratorService/GetAgentOutput": { least: "viewer" },
  "AgentOrchestratorService/EnforceLifecycle": { least: "operator" },
  "AgentOrchestratorService/WatchAgents": { least: "viewer" },
  "AgentOrchestratorService/StreamAgentOutput": { least: "viewer" },
  "AgentOrchestratorService/ReportActivity": { least: "operator", agent: "own" },
  "LifecycleService/SubmitTask": { least: "operator" },
  "LifecycleService/GetTask": { least: "viewer" },
  "LifecycleService/ListTasks": { least: "viewer" },
  "LifecycleService/CancelTask": { least: "operator" },
  "LifecycleService/RetryTask": { least: "operator" },
  "LifecycleService/WatchTask": { least: "viewer" },
  "LifecycleService/WatchTasks": { least: "viewer" },
  "LifecycleService/ReapZombies": { least: "operator" },
  "LifecycleService/GetLifecycleConfig": { least: "viewer" },
  "LifecycleService/UpdateLifecycleConfig": { least: "admin" },
  "LifecycleService/PublishAgentCard": { least: "operator", agent: "own" },
  "LifecycleService/GetAgentCard": { least: "viewer", agent: "any" },
  "LifecycleService/ListAgentCards": { least: "viewer", agent: "any" },
  "LifecycleService/SendMessage": { least: "operator", agent: "own" },
  "LifecycleService/StreamMessages": { least: "viewer", agent: "own" },
  "LifecycleService/AckMessages": { least: "operator", agent: "own" },
  "LifecycleService/SendAndWait": { least: "operator", agent: "own" },
};
const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
const may = (role: Role, rpc: string) => RANK[role] >= RANK[EXPECTED[rpc]!.least];

/**
 * Requests that end quickly and change nothing whoever is allowed to send them (empty ids
 * are INVALID_ARGUMENT; watches send their initial BOOKMARK at once).
 */
const REQUESTS: Record<string, object> = {
  "AgentOrchestratorService/WatchAgents": { sendInitialState: true },
  "LifecycleService/WatchTasks": { sendInitialState: true },
};

const METHODS = [AgentOrchestratorService, LifecycleService].flatMap((s) =>
  s.methods.map((m) => ({ rpc: `${s.name}/${m.name}`, path: `/${s.typeName}/${m.name}`, streaming: m.methodKind === "server_streaming" })),
);

// ------------------------------------------------------------------ clients

/** How a call ended, as a code name ("ok" when it was answered or its stream got going). */
interface Outcome {
  code: string;
  message: string;
}

const GRPC_NAMES = [
  "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied",
  "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated",
];

function grpcCall(client: grpc.Client, p: string, req: object, token?: string): Promise<Outcome> {
  const def = methodDefinition(p, "json");
  const md = new grpc.Metadata();
  if (token !== undefined) md.set("authorization", `Bearer ${token}`);
  const deadline = Date.now() + 15_000;
  return new Promise((resolve) => {
    const done = (err: grpc.ServiceError | null) =>
      resolve(err ? { code: GRPC_NAMES[err.code] ?? String(err.code), message: err.details } : { code: "ok", message: "" });
    if (!def.responseStream) {
      client.makeUnaryRequest(p, def.requestSerialize, def.responseDeserialize, req, md, { deadline }, (err) => done(err));
      return;
    }
    const call = client.makeServerStreamRequest(p, def.requestSerialize, def.responseDeserialize, req, md, { deadline });
    let settled = false;
    call.on("data", () => {
      if (settled) return;
      settled = true;
      done(null); // it streams: it was let through
      call.cancel();
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (!settled) {
        settled = true;
        done(err);
      }
    });
    call.on("status", (s: grpc.StatusObject) => {
      if (!settled) {
        settled = true;
        done(s.code === grpc.status.OK ? null : ({ code: s.code, details: s.details } as grpc.ServiceError));
      }
    });
  });
}

/** Connect JSON over HTTP/1.1 (fetch): unary as plain JSON, server streams enveloped. */
async function connectCall(url: string, p: string, req: object, streaming: boolean, headers: Record<string, string> = {}): Promise<Outcome> {
  const abort = new AbortController();
  const json = Buffer.from(JSON.stringify(req));
  const body = streaming ? Buffer.concat([envelopeHeader(0, json.length), json]) : json;
  const res = await fetch(url + p, {
    method: "POST",
    headers: { "content-type": streaming ? "application/connect+json" : "application/json", "connect-protocol-version": "1", ...headers },
    body,
    signal: abort.signal,
  });
  if (!streaming || res.status !== 200) {
    const text = await res.text();
    if (res.status === 200) return { code: "ok", message: "" };
    const err = JSON.parse(text) as { code: string; message?: string };
    return { code: err.code, message: err.message ?? "" };
  }
  // Frames: 1 flag byte, 4 length bytes, payload. Flag 2 ends the stream (with an error or not).
  let buf = Buffer.alloc(0);
  const reader = res.body!.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { code: "unknown", message: "stream ended without an end frame" };
      buf = Buffer.concat([buf, value]);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        const flags = buf[0]!;
        const payload = buf.subarray(5, 5 + buf.readUInt32BE(1));
        buf = buf.subarray(5 + payload.length);
        if ((flags & 2) === 0) return { code: "ok", message: "" }; // a message: it was let through
        const end = JSON.parse(payload.toString() || "{}") as { error?: { code: string; message?: string } };
        return end.error ? { code: end.error.code, message: end.error.message ?? "" } : { code: "ok", message: "" };
      }
    }
  } finally {
    abort.abort();
  }
}

function envelopeHeader(flags: number, length: number): Buffer {
  const h = Buffer.alloc(5);
  h[0] = flags;
  h.writeUInt32BE(length, 1);
  return h;
}

const bearer = (token: string | undefined): Record<string, string> => (token === undefined ? {} : { authorization: `Bearer ${token}` });

// ------------------------------------------------------------------ the server

const TOKENS: Record<Role, string> = {
  admin: randomBytes(32).toString("base64url"),
  operator: randomBytes(32).toString("base64url"),
  viewer: randomBytes(32).toString("base64url"),
};
const WRONG = randomBytes(32).toString("base64url");

const dirs: string[] = [];
const tempDir = (prefix: string) => {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("with operator tokens configured", () => {
  let server: TestServer;
  let grpcClient: grpc.Client;
  const backend = new FakeBackend();

  beforeAll(async () => {
    const file = path.join(tempDir("agentorch-auth-"), "tokens");
    writeFileSync(file, `# name:role:sha256\nalice:admin:${hashToken(TOKENS.admin)}\nop:operator:${hashToken(TOKENS.operator)}\n`);
    server = await startTestServer({
      env: { AGENTORCH_TOKENS_FILE: file, AGENTORCH_TOKENS: `watcher:viewer:${hashToken(TOKENS.viewer)}` },
      overrides: { backend },
    });
    grpcClient = new grpc.Client(server.address, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    grpcClient?.close();
    await server?.stop();
  });

  it("has an expectation for every RPC of both services", () => {
    expect(METHODS.map((m) => m.rpc).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const protocol of ["grpc", "connect"] as const) {
    it(`checks every RPC against the role table over ${protocol === "grpc" ? "gRPC (grpc-js)" : "Connect JSON (HTTP/1.1)"}`, async () => {
      const callers: [string, string | undefined][] = [...(Object.entries(TOKENS) as [Role, string][]), ["none", undefined], ["wrong", WRONG]];
      const results = await Promise.all(
        METHODS.flatMap((m) =>
          callers.map(async ([who, token]) => {
            const req = REQUESTS[m.rpc] ?? {};
            const out =
              protocol === "grpc"
                ? await grpcCall(grpcClient, m.path, req, token)
                : await connectCall(server.url, m.path, req, m.streaming, bearer(token));
            return { rpc: m.rpc, path: m.path, who, ...out };
          }),
        ),
      );
      for (const r of results) {
        const where = `${r.rpc} as ${r.who}: ${r.code} ${r.message}`;
        if (r.who === "none" || r.who === "wrong") {
          expect(r.code, where).toBe("unauthenticated");
        } else if (may(r.who as Role, r.rpc)) {
          expect(["unauthenticated", "permission_denied"], where).not.toContain(r.code);
        } else {
          expect(r.code, where).toBe("permission_denied");
          expect(r.message, where).toContain(r.path.slice(1));
          expect(r.message, where).toContain(`role ${r.who}`);
        }
      }
      // The allowed calls really ran: e.g. an empty id is the handler's INVALID_ARGUMENT.
      expect(results.find((r) => r.rpc.endsWith("/GetAgent") && r.who === "viewer")?.code).toBe("invalid_argument");
      expect(results.find((r) => r.rpc.endsWith("/ListAgents") && r.who === "viewer")?.code).toBe("ok");
    });
  }

  it("reads the token from gRPC-Web requests too", async () => {
    const grpcWeb = async (p: string, token?: string) => {
      const res = await fetch(server.url + p, {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", ...bearer(token) },
        body: envelopeHeader(0, 0),
      });
      const body = Buffer.from(await res.arrayBuffer()).toString("latin1");
      return res.headers.get("grpc-status") ?? /grpc-status:\s*(\d+)/.exec(body)?.[1];
    };
    expect(await grpcWeb("/agentorch.v1.AgentOrchestratorService/ListAgents")).toBe("16");
    expect(await grpcWeb("/agentorch.v1.AgentOrchestratorService/ListAgents", TOKENS.viewer)).toBe("0");
    expect(await grpcWeb("/agentorch.v1.AgentOrchestratorService/EnforceLifecycle", TOKENS.viewer)).toBe("7");
  });

  it("answers health and reflection without a token", async () => {
    expect(await grpcCall(grpcClient, "/grpc.health.v1.Health/Check", { service: "" })).toEqual({ code: "ok", message: "" });
    expect(await connectCall(server.url, "/grpc.health.v1.Health/Check", {}, false)).toEqual({ code: "ok", message: "" });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);

    const def = methodDefinition("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "json");
    const stream = grpcClient.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, new grpc.Metadata());
    const names = await new Promise<string[]>((resolve, reject) => {
      stream.on("data", (r: { listServicesResponse?: { service: { name: string }[] } }) => resolve((r.listServicesResponse?.service ?? []).map((s) => s.name)));
      stream.on("error", reject);
      stream.write({ listServices: "" });
    });
    stream.end();
    stream.cancel();
    expect(names).toEqual(expect.arrayContaining(["agentorch.v1.AgentOrchestratorService", "agentorch.v1.LifecycleService"]));
  });

  it("never writes a token or its hash to the log", () => {
    const text = JSON.stringify(server.logs);
    expect(server.logs.some((l) => l.msg === "call refused")).toBe(true);
    for (const t of [...Object.values(TOKENS), WRONG]) {
      expect(text).not.toContain(t);
      expect(text).not.toContain(hashToken(t));
    }
  });

  describe("the agent socket", () => {
    const socketPost = (p: string, body: object, headers: Record<string, string>) =>
      new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
        const data = JSON.stringify(body);
        const req = http.request(
          {
            socketPath: path.join(server.dataDir, "run", "agentorch.sock"),
            path: p,
            method: "POST",
            headers: { "content-type": "application/json", "content-length": Buffer.byteLength(data), ...headers },
          },
          (res) => {
            let text = "";
            res.on("data", (c: Buffer) => (text += c.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || "{}") as Record<string, unknown> }));
          },
        );
        req.on("error", reject);
        req.end(data);
      });
    const admin = (p: string, body: object) => connectCall(server.url, p, body, false, bearer(TOKENS.admin));
    const send = (from: string, to: string, token?: string) =>
      socketPost("/agentorch.v1.LifecycleService/SendMessage", { message: { fromAgentId: from, toAgentId: to, handshake: { agentId: from, name: from } } }, bearer(token));
    let tokenA: string;

    beforeAll(async () => {
      for (const id of ["sock-a", "sock-b"]) {
        expect(await admin("/agentorch.v1.AgentOrchestratorService/RegisterAgent", { agent: { agentId: id, image: "busybox:test", command: ["sleep", "60"] } })).toMatchObject({ code: "ok" });
      }
      expect(await admin("/agentorch.v1.AgentOrchestratorService/StartAgent", { agentId: "sock-a" })).toMatchObject({ code: "ok" });
      const container = backend.running().find((c) => c.spec.labels.agentId === "sock-a")!;
      tokenA = container.spec.env.AGENTORCH_TOKEN!;
      // What the container is given: where the socket is (mounted read-only), who it is, its token.
      expect(container.spec.socketDir).toBe(path.join(server.dataDir, "run"));
      expect(container.spec.env).toMatchObject({ AGENTORCH_SOCKET: "/run/agentorch/agentorch.sock", AGENTORCH_AGENT_ID: "sock-a" });
    });

    it("is a socket every container uid can connect to, in a directory only its owner writes", () => {
      const sock = statSync(path.join(server.dataDir, "run", "agentorch.sock"));
      expect(sock.isSocket()).toBe(true);
      expect(sock.mode & 0o777).toBe(0o666);
      expect(statSync(path.join(server.dataDir, "run")).mode & 0o777).toBe(0o755);
    });

    it("lets an agent send as itself and nobody else, and refuses missing, wrong and operator tokens", async () => {
      const ok = await send("sock-a", "sock-b", tokenA);
      expect(ok.status).toBe(200);
      expect(ok.body.messageId).toEqual(expect.any(String));
      expect(await send("sock-b", "sock-a", tokenA)).toMatchObject({ status: 403, body: { code: "permission_denied" } });
      expect(await send("sock-a", "sock-b")).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
      expect(await send("sock-a", "sock-b", WRONG)).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
      expect(await send("sock-a", "sock-b", TOKENS.admin)).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
      expect(await socketPost("/agentorch.v1.AgentOrchestratorService/ListAgents", {}, bearer(tokenA))).toMatchObject({ status: 403 });
      expect(await socketPost("/agentorch.v1.AgentOrchestratorService/StopAgent", { agentId: "sock-a" }, bearer(tokenA))).toMatchObject({ status: 403 });
      // Its own mailbox, its activity, any card.
      const toA = { message: { fromAgentId: "sock-b", toAgentId: "sock-a", handshake: { agentId: "sock-b", name: "b" } } };
      expect(await admin("/agentorch.v1.LifecycleService/SendMessage", toA)).toMatchObject({ code: "ok" });
      expect(await socketPost("/agentorch.v1.LifecycleService/AckMessages", { agentId: "sock-a", upToSequence: "1" }, bearer(tokenA))).toMatchObject({
        status: 200,
        body: { acknowledgedCount: "1" },
      });
      expect(await socketPost("/agentorch.v1.LifecycleService/AckMessages", { agentId: "sock-b", upToSequence: "1" }, bearer(tokenA))).toMatchObject({ status: 403 });
      const before = (await socketPost("/agentorch.v1.AgentOrchestratorService/GetAgent", { agentId: "sock-a" }, bearer(tokenA))).body;
      const touched = await socketPost("/agentorch.v1.AgentOrchestratorService/ReportActivity", { agentId: "sock-a" }, bearer(tokenA));
      expect(touched.status).toBe(200);
      expect(Date.parse((touched.body.agent as { lastActivity: string }).lastActivity)).toBeGreaterThanOrEqual(
        Date.parse((before.agent as { lastActivity: string }).lastActivity),
      );
      const publish = (agentId: string) => socketPost("/agentorch.v1.LifecycleService/PublishAgentCard", { card: { agentId, capabilities: ["testing"] } }, bearer(tokenA));
      expect(await publish("sock-a")).toMatchObject({ status: 200 });
      expect(await publish("sock-b")).toMatchObject({ status: 403, body: { code: "permission_denied" } });
      expect(await socketPost("/agentorch.v1.LifecycleService/GetAgentCard", { agentId: "sock-a" }, bearer(tokenA))).toMatchObject({ status: 200 });
      expect(await socketPost("/agentorch.v1.LifecycleService/ListAgentCards", { capability: "testing" }, bearer(tokenA))).toMatchObject({
        status: 200,
        body: { cards: [expect.objectContaining({ agentId: "sock-a" })] },
      });
    });

    it("speaks gRPC (HTTP/2) on the socket too, with the same rules", async () => {
      const client = new grpc.Client(`unix://${path.join(server.dataDir, "run", "agentorch.sock")}`, grpc.credentials.createInsecure());
      try {
        const p = "/agentorch.v1.LifecycleService/SendMessage";
        const msg = (from: string) => ({ message: { fromAgentId: from, toAgentId: "sock-b", handshake: { agentId: from, name: from } } });
        expect(await grpcCall(client, p, msg("sock-a"), tokenA)).toEqual({ code: "ok", message: "" });
        expect(await grpcCall(client, p, msg("sock-b"), tokenA)).toMatchObject({ code: "permission_denied", message: expect.stringContaining("message.from_agent_id") });
        expect((await grpcCall(client, p, msg("sock-a"))).code).toBe("unauthenticated");
        // A server stream's request is checked too: its own mailbox, not another's.
        expect((await grpcCall(client, "/agentorch.v1.LifecycleService/StreamMessages", { agentId: "sock-b" }, tokenA)).code).toBe("permission_denied");
        expect((await grpcCall(client, "/grpc.health.v1.Health/Check", { service: "" })).code).toBe("ok");
      } finally {
        client.close();
      }
    });

    it("refuses the token once the agent is stopped", async () => {
      expect((await send("sock-a", "sock-b", tokenA)).status).toBe(200);
      expect(await admin("/agentorch.v1.AgentOrchestratorService/StopAgent", { agentId: "sock-a" })).toMatchObject({ code: "ok" });
      expect(await send("sock-a", "sock-b", tokenA)).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
    });
  });
});

describe("with no operator tokens configured", () => {
  it("serves loopback callers without a token and warns that it does", async () => {
    const server = await startTestServer({ overrides: { backend: new FakeBackend() } });
    try {
      expect(await connectCall(server.url, "/agentorch.v1.LifecycleService/GetLifecycleConfig", {}, false)).toEqual({ code: "ok", message: "" });
      expect(server.logs.find((l) => l.level === "warn" && String(l.msg).includes("no operator tokens configured"))).toBeDefined();
    } finally {
      await server.stop();
    }
  });

  it("refuses to listen on 0.0.0.0, in the process and in createApp", async () => {
    const dataDir = tempDir("agentorch-auth-open-");
    await expect(startTestServer({ dataDir, config: { listen: { host: "0.0.0.0", port: 0 } } })).rejects.toThrow(ConfigError);
    await expect(startTestServer({ dataDir, env: { AGENTORCH_LISTEN: "0.0.0.0:0" } })).rejects.toThrow(/AGENTORCH_LISTEN is 0\.0\.0\.0:0.*not a loopback address/);

    const child = spawn(process.execPath, ["--import", "tsx", "src/server/main.ts"], {
      cwd: REPO_ROOT,
      env: { ...process.env, AGENTORCH_LISTEN: "0.0.0.0:0", AGENTORCH_DATA_DIR: dataDir, AGENTORCH_TOKENS: "", AGENTORCH_TOKENS_FILE: "" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(2);
    expect(stderr).toContain("AGENTORCH_LISTEN is 0.0.0.0:0");
    expect(stderr).toContain("AGENTORCH_TOKENS");
  });

  it("listens on 0.0.0.0 once tokens are configured (and TLS, or cleartext asked for: test/e2e/tls.test.ts)", async () => {
    const token = randomBytes(16).toString("hex");
    const server = await startTestServer({
      env: { AGENTORCH_LISTEN: "0.0.0.0:0", AGENTORCH_TOKENS: `ops:operator:${hashToken(token)}`, AGENTORCH_INSECURE_LISTEN: "1" },
      overrides: { backend: new FakeBackend() },
    });
    try {
      const p = "/agentorch.v1.AgentOrchestratorService/ListAgents";
      expect((await connectCall(server.url, p, {}, false, bearer(token))).code).toBe("ok");
      expect((await connectCall(server.url, p, {}, false)).code).toBe("unauthenticated");
    } finally {
      await server.stop();
    }
  });
});
