/**
 * The transport end to end: a real server on a free port, real clients (grpc-js, buf
 * curl, fetch over HTTP/1.1, raw sockets), and the real process. What is checked is what
 * a client sees: statuses, codes, bodies, connections closed; and what the process does
 * on SIGTERM.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createListener } from "../../src/server/listener.js";
import { createLogger } from "../../src/server/logger.js";
import { FakeBackend } from "../fakes/fake-backend.js";
import { freePort } from "../support/free-port.js";
import { grpcClient, rpc, serverStream } from "../support/grpc.js";
import type { ServiceName } from "../support/grpc.js";
import { REPO_ROOT, startTestServer } from "../support/server.js";
import type { TestServer } from "../support/server.js";

// ------------------------------------------------------------------ clients

interface ReflectionResponse {
  messageResponse: "fileDescriptorResponse" | "listServicesResponse" | "errorResponse" | "allExtensionNumbersResponse";
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  listServicesResponse?: { service: { name: string }[] };
  errorResponse?: { errorCode: number; errorMessage: string };
  allExtensionNumbersResponse?: { baseTypeName: string; extensionNumber: number[] };
}
interface ReflectionClient extends grpc.Client {
  serverReflectionInfo(): grpc.ClientDuplexStream<Record<string, unknown>, ReflectionResponse>;
}

const clients: grpc.Client[] = [];
function openClient<C extends grpc.Client = grpc.Client>(server: TestServer, service: ServiceName): C {
  const c = grpcClient<C>(server.address, service, { fields: "json" });
  clients.push(c);
  return c;
}
const healthClient = (server: TestServer) => openClient(server, "grpc.health.v1.Health");
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

async function check(client: grpc.Client, service: string, metadata?: grpc.Metadata): Promise<string> {
  return (await rpc<{ status: string }>(client, "Check", { service }, { metadata })).status;
}

/** Polls until fn() is truthy (yields to I/O in between); fails the test by its own timeout otherwise. */
async function until(fn: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await fn())) await new Promise((r) => setTimeout(r, 10));
}

function bufCurl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      path.join(REPO_ROOT, "node_modules/.bin/buf"),
      ["curl", ...args],
      { cwd: REPO_ROOT, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A PING answered proves the server has read every frame the session sent before it. */
async function pingRoundTrip(session: http2.ClientHttp2Session): Promise<void> {
  if (session.connecting) await new Promise((r) => session.once("connect", r));
  await new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
}

function postJson(url: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

/** Resolves once the socket is closed (by either side); reads (and drops) what is still unread. */
function closed(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  const done = new Promise<void>((r) => socket.once("close", () => r()));
  socket.resume();
  return done;
}

// ------------------------------------------------------------------ one server, many protocols

describe("one port serves gRPC, gRPC-Web and Connect", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { AGENTORCH_MAX_REQUEST_BYTES: "65536" } });
  });
  afterAll(() => server?.stop());

  it("answers grpc-js Health.Check: the server is SERVING, an unknown service is NOT_FOUND", async () => {
    const client = healthClient(server);
    expect(await check(client, "")).toBe("SERVING");
    await expect(check(client, "no.such.Service")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    // The agent API and "docker" follow the engine; either way they are known services.
    expect(["SERVING", "NOT_SERVING"]).toContain(await check(client, "agentorch.v1.AgentOrchestratorService"));
    expect(await check(client, "docker")).toBe(await check(client, "agentorch.v1.AgentOrchestratorService"));
  });

  it("streams SERVICE_UNKNOWN to a Watch of an unknown service and keeps the call open", async () => {
    const call = serverStream<{ status: string }>(healthClient(server), "Watch", { service: "no.such.Service" });
    const seen: string[] = [];
    call.on("data", (d: { status: string }) => seen.push(d.status));
    const ended = new Promise<number>((resolve) => {
      call.on("error", (e: grpc.ServiceError) => resolve(e.code));
      call.on("status", (s: grpc.StatusObject) => resolve(s.code));
    });
    await until(() => seen.length > 0);
    expect(seen).toEqual(["SERVICE_UNKNOWN"]);
    call.cancel();
    expect(await ended).toBe(grpc.status.CANCELLED);
  });

  it("answers plain HTTP/1.1 Connect JSON, GET /healthz, and 404 elsewhere", async () => {
    const res = await postJson(`${server.url}/grpc.health.v1.Health/Check`, {});
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "SERVING" });

    const notFound = await postJson(`${server.url}/grpc.health.v1.Health/Check`, { service: "nope" });
    expect(notFound.status).toBe(404);
    expect(await notFound.json()).toMatchObject({ code: "not_found" });

    const probe = await fetch(`${server.url}/healthz`);
    // "ok", then each part's state (GET /healthz detail).
    expect([probe.status, await probe.text()]).toEqual([200, expect.stringMatching(/^ok\n(.+ (NOT_)?SERVING\n)*store SERVING\n$/)]);
    const other = await fetch(`${server.url}/no/such/path`);
    expect(other.status).toBe(404);
    await other.arrayBuffer();
  });

  it("lets buf curl list every served method through reflection (v1 and v1alpha)", async () => {
    for (const reflect of ["grpc-v1", "grpc-v1alpha"]) {
      const out = await bufCurl(["--list-methods", "--reflect-protocol", reflect, "--http2-prior-knowledge", server.url]);
      expect(out.stderr).toBe("");
      const methods = out.stdout.trim().split("\n");
      expect(methods).toEqual(
        expect.arrayContaining([
          "agentorch.v1.AgentOrchestratorService/RegisterAgent",
          "agentorch.v1.AgentOrchestratorService/ListAgents",
          "agentorch.v1.AgentOrchestratorService/EnforceLifecycle",
          "grpc.health.v1.Health/Check",
          "grpc.health.v1.Health/Watch",
          "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
          "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ]),
      );
    }
  });

  it("lets buf curl call without --schema over gRPC (h2c), Connect (HTTP/1.1) and gRPC-Web", async () => {
    const grpcCall = await bufCurl([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      `${server.url}/agentorch.v1.AgentOrchestratorService/ListAgents`,
    ]);
    expect(grpcCall).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(grpcCall.stdout)).toEqual(expect.any(Object));

    const connectCall = await bufCurl(["--protocol", "connect", "-d", '{"service":""}', `${server.url}/grpc.health.v1.Health/Check`]);
    expect(connectCall).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(connectCall.stdout)).toEqual({ status: "SERVING" });

    const webCall = await bufCurl(["--protocol", "grpcweb", "-d", "{}", `${server.url}/grpc.health.v1.Health/Check`]);
    expect(webCall).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(webCall.stdout)).toEqual({ status: "SERVING" });

    const missing = await bufCurl([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-d",
      '{"agent_id":"no-such-agent"}',
      `${server.url}/agentorch.v1.AgentOrchestratorService/GetAgent`,
    ]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("not_found");
  });

  it("answers reflection requests one by one, each file's imports once per stream", async () => {
    const call = openClient<ReflectionClient>(server, "grpc.reflection.v1.ServerReflection").serverReflectionInfo();
    const responses: ReflectionResponse[] = [];
    call.on("data", (r: ReflectionResponse) => responses.push(r));
    const ask = async (req: Record<string, unknown>) => {
      const n = responses.length;
      call.write(req);
      await until(() => responses.length > n);
      return responses[n]!;
    };
    const fileNames = (r: ReflectionResponse) =>
      r.fileDescriptorResponse!.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);

    const list = await ask({ listServices: "" });
    expect(list.listServicesResponse!.service.map((s) => s.name).sort()).toEqual([
      "agentorch.v1.AgentOrchestratorService",
      "agentorch.v1.LifecycleService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);

    const first = fileNames(await ask({ fileContainingSymbol: "agentorch.v1.AgentOrchestratorService" }));
    expect(first[0]).toBe("agentorch/v1/orchestrator_service.proto");
    expect(first).toEqual(expect.arrayContaining(["agentorch/v1/agent.proto", "google/protobuf/timestamp.proto"]));
    expect(new Set(first).size).toBe(first.length);

    // Already sent on this stream: only the file itself comes again, not its imports.
    expect(fileNames(await ask({ fileContainingSymbol: "agentorch.v1.AgentConfig" }))).toEqual(["agentorch/v1/agent.proto"]);

    for (const [symbol, file] of [
      ["agentorch.v1.AgentOrchestratorService.GetAgent", "agentorch/v1/orchestrator_service.proto"],
      [".agentorch.v1.AgentConfig.image", "agentorch/v1/agent.proto"],
      ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
      ["grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"],
      ["grpc.reflection.v1alpha.ServerReflectionRequest", "grpc/reflection/v1alpha/reflection.proto"],
    ]) {
      expect(fileNames(await ask({ fileContainingSymbol: symbol }))[0]).toBe(file);
    }
    expect(fileNames(await ask({ fileByFilename: "grpc/health/v1/health.proto" }))).toEqual(["grpc/health/v1/health.proto"]);

    expect((await ask({ fileContainingSymbol: "agentorch.v1.Nope" })).errorResponse!.errorCode).toBe(grpc.status.NOT_FOUND);
    expect((await ask({ fileByFilename: "nope.proto" })).errorResponse!.errorCode).toBe(grpc.status.NOT_FOUND);
    const ext = await ask({ fileContainingExtension: { containingType: "agentorch.v1.Agent", extensionNumber: 100 } });
    expect(ext.errorResponse!.errorCode).toBe(grpc.status.NOT_FOUND);
    expect((await ask({ allExtensionNumbersOfType: "agentorch.v1.Agent" })).allExtensionNumbersResponse).toEqual({
      baseTypeName: "agentorch.v1.Agent",
      extensionNumber: [],
    });

    const ended = new Promise<number>((resolve) => call.on("status", (s: grpc.StatusObject) => resolve(s.code)));
    call.end();
    expect(await ended).toBe(grpc.status.OK);
  });

  it("serves v1alpha reflection over the same index", async () => {
    const call = openClient<ReflectionClient>(server, "grpc.reflection.v1alpha.ServerReflection").serverReflectionInfo();
    const got = new Promise<ReflectionResponse>((resolve) => call.once("data", resolve));
    call.write({ fileContainingSymbol: "grpc.health.v1.Health" });
    const res = await got;
    expect(fromBinary(FileDescriptorProtoSchema, res.fileDescriptorResponse!.fileDescriptorProto[0]!).name).toBe(
      "grpc/health/v1/health.proto",
    );
    const ended = new Promise<void>((resolve) => call.on("status", () => resolve()));
    call.end();
    await ended;
  });

  it("refuses a request over the size limit with RESOURCE_EXHAUSTED and keeps serving", async () => {
    const big = "x".repeat(100_000);
    const client = healthClient(server);
    await expect(check(client, big)).rejects.toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });

    const res = await postJson(`${server.url}/grpc.health.v1.Health/Check`, { service: big });
    expect(await res.json()).toMatchObject({ code: "resource_exhausted" });

    // A raw gRPC call whose body outgrows the flow-control window: the status arrives in the
    // trailers, then the server ends the stream instead of leaving the client blocked.
    const session = http2.connect(server.url);
    session.on("error", () => undefined);
    const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
    stream.on("error", () => undefined);
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("trailers", (t) => (trailers = t));
    const streamClosed = new Promise<void>((resolve) => stream.on("close", () => resolve()));
    const frame = Buffer.alloc(5 + 200_000);
    frame.writeUInt32BE(200_000, 1);
    stream.end(frame);
    stream.resume();
    await streamClosed;
    expect(trailers["grpc-status"]).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    session.close();

    expect(await check(client, "")).toBe("SERVING");
  });

  it("closes a connection that sends garbage, or too little, and keeps serving", async () => {
    const garbage = net.connect(server.port, "127.0.0.1");
    const reply: Buffer[] = [];
    garbage.on("data", (b: Buffer) => reply.push(b));
    garbage.on("error", () => undefined);
    garbage.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x0d, 0x0a, 0x0d, 0x0a]));
    await closed(garbage);
    expect(Buffer.concat(reply).toString()).toMatch(/^HTTP\/1\.1 400/);

    // Half a preface, then the client closes: nothing to answer, nothing to crash.
    const early = net.connect(server.port, "127.0.0.1");
    early.on("error", () => undefined);
    early.end("PR");
    await closed(early);

    // A wrong preface after "PRI " is an HTTP/2 protocol error for that connection alone.
    const badH2 = net.connect(server.port, "127.0.0.1");
    badH2.on("error", () => undefined);
    badH2.write("PRI * HTTP/9.9\r\n\r\nXX\r\n\r\n");
    await closed(badH2);

    expect(await check(healthClient(server), "")).toBe("SERVING");
    const res = await postJson(`${server.url}/grpc.health.v1.Health/Check`, {});
    expect(await res.json()).toEqual({ status: "SERVING" });
  });

  it("logs exactly one line per RPC with method, code, duration and protocol, and never a header", async () => {
    const secret = "s3cret-test-token-do-not-log";
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${secret}`);
    const auth = { authorization: `Bearer ${secret}` };
    const check_ = `${server.url}/grpc.health.v1.Health/Check`;
    const from = server.logs.length;
    const client = healthClient(server);

    await check(client, "", md);
    await expect(check(client, "no.such.Service", md)).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(check(client, "x".repeat(100_000), md)).rejects.toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    await (await postJson(check_, {}, auth)).arrayBuffer();
    // Refused before any handler ran: still one line each.
    await (await fetch(check_, { method: "POST", headers: { "content-type": "application/json", ...auth }, body: "{not json" })).arrayBuffer();
    await (await postJson(`${server.url}/agentorch.v1.AgentOrchestratorService/NoSuchMethod`, {}, auth)).arrayBuffer();
    const watch = serverStream(client, "Watch", { service: "" }, { metadata: md });
    watch.on("error", () => undefined);
    await new Promise((r) => watch.once("data", r));
    watch.cancel();

    const rpcLines = () => server.logs.slice(from).filter((l) => l.msg === "rpc");
    await until(() => rpcLines().length >= 7);
    // One more call, and its line, so a late duplicate of any line above would be seen.
    await check(client, "");
    await until(() => rpcLines().length >= 8);
    const summary = rpcLines().map((l) => `${String(l.method)} ${String(l.code)} ${String(l.protocol)}`);
    expect(summary.sort()).toEqual(
      [
        "grpc.health.v1.Health/Check ok grpc",
        "grpc.health.v1.Health/Check not_found grpc",
        "grpc.health.v1.Health/Check resource_exhausted grpc",
        "grpc.health.v1.Health/Check ok connect",
        "grpc.health.v1.Health/Check invalid_argument connect",
        "agentorch.v1.AgentOrchestratorService/NoSuchMethod unimplemented connect",
        "grpc.health.v1.Health/Watch canceled grpc",
        "grpc.health.v1.Health/Check ok grpc",
      ].sort(),
    );
    for (const line of rpcLines()) {
      expect(line).toMatchObject({ level: "info", component: "rpc", durationMs: expect.any(Number) });
    }
    expect(JSON.stringify(server.logs)).not.toContain(secret);
  });
});

// ------------------------------------------------------------------ the listener alone

describe("createListener", () => {
  const logger = createLogger("silent");
  const hello = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(`HTTP/${req.httpVersion}`);
  };

  it("drops a connection that sends less than a request line and stalls", async () => {
    const listener = createListener({ host: "127.0.0.1", port: 0, handler: hello, logger, sniffTimeoutMs: 50 });
    const addr = (await listener.listen()) as { port: number };
    try {
      const stalled = net.connect(addr.port, "127.0.0.1");
      stalled.on("error", () => undefined);
      stalled.write("PR");
      await closed(stalled); // by the server: the client never ends it
      const res = await fetch(`http://127.0.0.1:${addr.port}/`);
      expect(await res.text()).toBe("HTTP/1.1");
    } finally {
      await listener.close();
    }
  });

  it("serves HTTP/1.1 and HTTP/2 on a unix socket (mode 0660), replacing a stale socket file", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "agentorch-sock-"));
    const socketPath = path.join(dir, "run", "agentorch.sock");
    try {
      // A live socket is not taken over.
      mkdirSync(path.dirname(socketPath), { recursive: true });
      const other = net.createServer();
      await new Promise<void>((r) => other.listen(socketPath, r));
      await expect(createListener({ socketPath, handler: hello, logger }).listen()).rejects.toThrow(/in use/);
      await new Promise<void>((r) => other.close(() => r()));
      // Nor is a file that is not a socket.
      writeFileSync(path.join(dir, "not-a-socket"), "x");
      await expect(
        createListener({ socketPath: path.join(dir, "not-a-socket"), handler: hello, logger }).listen(),
      ).rejects.toThrow(/not a socket/);
      // A stale socket file, as a killed process leaves it, is replaced.
      spawnSync(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, "SIGKILL"))`]);
      expect(statSync(socketPath).isSocket()).toBe(true);

      const listener = createListener({ socketPath, handler: hello, logger });
      expect(await listener.listen()).toEqual({ socketPath });
      try {
        expect(statSync(socketPath).mode & 0o777).toBe(0o660);
        expect(statSync(path.dirname(socketPath)).mode & 0o777).toBe(0o755);
        const h1 = await new Promise<string>((resolve, reject) => {
          http
            .get({ socketPath, path: "/" }, (res) => {
              let body = "";
              res.on("data", (c: Buffer) => (body += c.toString()));
              res.on("end", () => resolve(body));
            })
            .on("error", reject);
        });
        expect(h1).toBe("HTTP/1.1");
        const session = http2.connect("http://localhost", { createConnection: () => net.connect(socketPath) });
        const h2 = await new Promise<string>((resolve, reject) => {
          const req = session.request({ ":path": "/" });
          let body = "";
          req.on("data", (c: Buffer) => (body += c.toString()));
          req.on("end", () => resolve(body));
          req.on("error", reject);
          req.end();
        });
        expect(h2).toBe("HTTP/2.0");
        session.close();
      } finally {
        await listener.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ------------------------------------------------------------------ engine health

describe("health follows the container engine", () => {
  it("starts and serves without a reachable engine, reporting the agent API and docker NOT_SERVING", async () => {
    const server = await startTestServer({ env: { DOCKER_HOST: "unix:///nonexistent/agentorch-test/docker.sock" } });
    try {
      const client = healthClient(server);
      expect(await check(client, "")).toBe("SERVING");
      expect(await check(client, "docker")).toBe("NOT_SERVING");
      expect(await check(client, "agentorch.v1.AgentOrchestratorService")).toBe("NOT_SERVING");
      // The registry still answers.
      const res = await postJson(`${server.url}/agentorch.v1.AgentOrchestratorService/ListAgents`, {});
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({});
    } finally {
      await server.stop();
    }
  });

  it("streams each change of the engine's reachability to a Watch", async () => {
    const backend = new FakeBackend();
    const server = await startTestServer({ overrides: { backend } });
    try {
      const watch = serverStream(healthClient(server), "Watch", { service: "docker" });
      const seen: string[] = [];
      watch.on("data", (d: { status: string }) => seen.push(d.status));
      const ended = new Promise<number>((resolve) => watch.on("status", (s: grpc.StatusObject) => resolve(s.code)));
      await until(() => seen.length === 1);
      backend.setDown(true);
      await until(() => seen.length === 2);
      backend.setDown(false);
      await until(() => seen.length === 3);
      expect(seen).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
      expect(await check(healthClient(server), "agentorch.v1.AgentOrchestratorService")).toBe("SERVING");
      await server.stop();
      expect(await ended).toBe(grpc.status.OK);
      expect(seen).toEqual(["SERVING", "NOT_SERVING", "SERVING", "NOT_SERVING"]);
    } finally {
      await server.stop();
    }
  });
});

// ------------------------------------------------------------------ shutdown

describe("graceful shutdown", () => {
  it("ends Watch streams, closes idle and stalled connections, and lets in-flight calls finish", async () => {
    // A grace period far beyond the test's timeout: if stop() waited for it, the test would fail.
    const server = await startTestServer({ env: { AGENTORCH_SHUTDOWN_GRACE_MS: "600000" } });
    try {
      // 1. A health Watch (grpc-js, HTTP/2).
      const watch = serverStream(healthClient(server), "Watch", { service: "" });
      const statuses: string[] = [];
      watch.on("data", (d: { status: string }) => statuses.push(d.status));
      const watchEnded = new Promise<number>((resolve) => {
        watch.on("status", (s: grpc.StatusObject) => resolve(s.code));
        watch.on("error", (e: grpc.ServiceError) => resolve(e.code));
      });
      await until(() => statuses.length === 1);
      expect(statuses).toEqual(["SERVING"]);

      // 2. An idle HTTP/1.1 keep-alive connection.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let idleSocket: net.Socket | undefined;
      const first = await new Promise<string>((resolve, reject) => {
        const req = http.request(
          `${server.url}/grpc.health.v1.Health/Check`,
          { method: "POST", agent, headers: { "content-type": "application/json" } },
          (res) => {
            let body = "";
            res.on("data", (c: Buffer) => (body += c.toString()));
            res.on("end", () => resolve(body));
          },
        );
        req.on("socket", (s) => (idleSocket = s));
        req.on("error", reject);
        req.end("{}");
      });
      expect(JSON.parse(first)).toEqual({ status: "SERVING" });

      // 3. A connection that sent two bytes and stalled (not yet HTTP/1.1 nor HTTP/2).
      const stalled = net.connect(server.port, "127.0.0.1");
      stalled.on("error", () => undefined);
      stalled.write("PR");

      // 4. An HTTP/1.1 call in flight: headers received (100-continue proves it), body half sent.
      const body = JSON.stringify({ service: "" });
      const h1 = net.connect(server.port, "127.0.0.1");
      let h1Reply = "";
      h1.on("data", (b: Buffer) => (h1Reply += b.toString()));
      h1.write(
        "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n" +
          `expect: 100-continue\r\ncontent-length: ${body.length}\r\n\r\n`,
      );
      await until(() => h1Reply.includes("100 Continue"));
      h1.write(body.slice(0, 5));

      // 5. An HTTP/2 call in flight: HEADERS and half the body, then a PING round trip proves the server read them.
      const session = http2.connect(server.url);
      session.on("error", () => undefined);
      let goaway = false;
      session.on("goaway", () => (goaway = true));
      const h2 = session.request({
        ":method": "POST",
        ":path": "/grpc.health.v1.Health/Check",
        "content-type": "application/json",
      });
      let h2Reply = "";
      let h2Status = 0;
      h2.on("response", (headers) => (h2Status = Number(headers[":status"])));
      h2.on("data", (b: Buffer) => (h2Reply += b.toString()));
      const h2Done = new Promise<void>((resolve) => h2.on("close", () => resolve()));
      h2.write(body.slice(0, 5));
      await pingRoundTrip(session);

      const stopping = server.stop();

      expect(await watchEnded).toBe(grpc.status.OK);
      expect(statuses).toEqual(["SERVING", "NOT_SERVING"]);
      await closed(idleSocket!);
      await closed(stalled);
      await until(() => goaway);

      // The in-flight calls still complete (the server is NOT_SERVING by now).
      h1.end(body.slice(5));
      await closed(h1);
      expect(h1Reply).toMatch(/HTTP\/1\.1 200 OK/);
      expect(h1Reply.toLowerCase()).toContain("connection: close");
      expect(h1Reply).toContain('{"status":"NOT_SERVING"}');
      h2.end(body.slice(5));
      await h2Done;
      expect(h2Status).toBe(200);
      expect(JSON.parse(h2Reply)).toEqual({ status: "NOT_SERVING" });

      await stopping;
      expect(server.logs.some((l) => l.msg === "shut down")).toBe(true);
      // New connections are refused.
      await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
      session.close();
      agent.destroy();
    } finally {
      await server.stop();
    }
  });

  it("cuts what is still open when the grace period ends", async () => {
    const server = await startTestServer({ env: { AGENTORCH_SHUTDOWN_GRACE_MS: "200" } });
    const session = http2.connect(server.url);
    session.on("error", () => undefined);
    const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/json" });
    stream.on("error", () => undefined);
    stream.write("{");
    await pingRoundTrip(session);
    const sessionClosed = new Promise<void>((resolve) => session.on("close", () => resolve()));
    await server.stop(); // never finished by the client: the grace period ends it
    await sessionClosed;
    expect(server.app.shutdownSignal.aborted).toBe(true);
    expect(server.logs.some((l) => l.msg === "grace period over; closing remaining connections")).toBe(true);
  });

  it("keeps the instance id of a data directory across restarts", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-e2e-"));
    try {
      const a = await startTestServer({ dataDir });
      const id = a.app.instanceId;
      await a.stop();
      const b = await startTestServer({ dataDir });
      expect(b.app.instanceId).toBe(id);
      await b.stop();
      const other = await startTestServer();
      expect(other.app.instanceId).not.toBe(id);
      await other.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

// ------------------------------------------------------------------ the process

interface Proc {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnService(env: Record<string, string>): Proc {
  const child = spawn(process.execPath, ["--import", "tsx", "src/server/main.ts"], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  let partial = "";
  child.stdout!.on("data", (b: Buffer) => {
    const parts = (partial + b.toString()).split("\n");
    partial = parts.pop()!;
    for (const p of parts) if (p.trim()) lines.push(JSON.parse(p) as Record<string, unknown>);
  });
  let err = "";
  child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, lines, stderr: () => err, exited };
}

describe("the agentorch process", () => {
  const procs: Proc[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.exited));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("runs two instances side by side, logs its start-up line, answers health, and exits 0 on SIGTERM", async () => {
    const started = await Promise.all(
      [0, 1].map(async () => {
        const port = await freePort();
        const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-proc-"));
        dirs.push(dataDir);
        const proc = spawnService({
          AGENTORCH_LISTEN: `127.0.0.1:${port}`,
          AGENTORCH_DATA_DIR: dataDir,
          AGENTORCH_SHUTDOWN_GRACE_MS: "5000",
        });
        procs.push(proc);
        await until(() => proc.lines.some((l) => l.msg === "agentorch started") || proc.child.exitCode !== null);
        return { port, dataDir, proc };
      }),
    );
    const ids = new Set<unknown>();
    for (const { port, dataDir, proc } of started) {
      const line = proc.lines.find((l) => l.msg === "agentorch started");
      expect(line, proc.stderr()).toMatchObject({ listen: `127.0.0.1:${port}`, dataDir, docker: expect.any(String) });
      ids.add(line!.instanceId);
      const res = await postJson(`http://127.0.0.1:${port}/grpc.health.v1.Health/Check`, {});
      expect(await res.json()).toEqual({ status: "SERVING" });
    }
    expect(ids.size).toBe(2);

    for (const { proc } of started) proc.child.kill("SIGTERM");
    for (const { proc } of started) {
      expect(await proc.exited).toEqual({ code: 0, signal: null });
      expect(proc.lines.map((l) => l.msg)).toEqual(expect.arrayContaining(["signal received; stopping", "shut down"]));
    }
  });

  it("refuses to start on an invalid setting, naming the variable", async () => {
    const proc = spawnService({ AGENTORCH_LISTEN: "127.0.0.1:0", AGENTORCH_MAX_RUNNING: "lots" });
    procs.push(proc);
    expect((await proc.exited).code).toBe(2);
    expect(proc.stderr()).toContain("AGENTORCH_MAX_RUNNING");
  });
});
