/**
 * TLS and mutual TLS on the service's port, end to end, with certificates made here by
 * openssl and clients that share no code with the server: @grpc/grpc-js with ssl
 * credentials, `buf curl` over https, Python grpcio, HTTP/1.1 (Connect JSON, gRPC-Web,
 * /healthz) and HTTP/2 (Connect) from node:https and node:http2. What is checked is what a
 * user sees: answers, codes and messages that say what to fix (a client certificate that
 * is expired, from another CA, missing, or not mapped to an identity), the roles that
 * certificate identities get, a certificate renewed by SIGHUP without dropping an open
 * connection, and the rule that refuses cleartext beyond loopback.
 */
import { execFile, spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import tls from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/core/tokens.js";
import { FakeBackend } from "../fakes/fake-backend.js";
import { spawnService } from "../fault/support/service.js";
import type { ServiceProcess } from "../fault/support/service.js";
import { packageDefinition, rpc, rpcError } from "../support/grpc.js";
import type { ServiceName } from "../support/grpc.js";
import { PYTHON, pythonGrpcMissing } from "../support/python.js";
import { REPO_ROOT, startTestServer } from "../support/server.js";
import type { TestServer } from "../support/server.js";
import { makeTestPki } from "../support/tls-certs.js";
import type { CertFiles, TestPki } from "../support/tls-certs.js";

const ORCH = "/agentorch.v1.AgentOrchestratorService";
const BIN = path.join(REPO_ROOT, "bin/agentorch.js");
let pki: TestPki;
let good: CertFiles; // /O=Acme/CN=ci-bot: operator
let viewer: CertFiles; // /CN=viewer-bot: viewer
let stranger: CertFiles; // verified, but no identity
let expired: CertFiles;
let foreign: CertFiles; // /O=Acme/CN=ci-bot, issued by another CA
let tokensFile: string;
const TOKEN = "tls-test-token-0123456789";

beforeAll(() => {
  pki = makeTestPki();
  good = pki.client("ci-bot", "/O=Acme/CN=ci-bot");
  viewer = pki.client("viewer-bot", "/CN=viewer-bot");
  stranger = pki.client("stranger", "/O=Elsewhere/CN=stranger");
  expired = pki.client("expired-bot", "/CN=expired-bot", { expired: true });
  foreign = pki.client("foreign", "/O=Acme/CN=ci-bot", { issuer: pki.otherCa });
  tokensFile = path.join(pki.dir, "tokens");
  writeFileSync(tokensFile, ["ci-bot:operator:cert:/O=Acme/CN=ci-bot", "viewers:viewer:cert:CN=viewer-bot", `script:operator:${hashToken(TOKEN)}`, ""].join("\n"));
});
afterAll(() => pki?.remove());

function tlsEnv(clientAuth?: "require" | "optional"): Record<string, string> {
  return {
    AGENTORCH_TLS_CERT: pki.server.cert,
    AGENTORCH_TLS_KEY: pki.server.key,
    AGENTORCH_TLS_CLIENT_CA: pki.ca.cert,
    ...(clientAuth ? { AGENTORCH_TLS_CLIENT_AUTH: clientAuth } : {}),
    AGENTORCH_TOKENS_FILE: tokensFile,
  };
}

/** grpc-js over TLS: trusts `ca` (default: the test CA), presents `client` when given. */
function sslClient(server: { port: number }, service: ServiceName, opts: { ca?: string; client?: CertFiles } = {}): grpc.Client {
  const creds = grpc.credentials.createSsl(
    pki.read(opts.ca ?? pki.ca.cert),
    opts.client ? pki.read(opts.client.key) : null,
    opts.client ? pki.read(opts.client.cert) : null,
  );
  const Ctor = grpc.makeClientConstructor(packageDefinition("json")[service] as unknown as grpc.ServiceDefinition, service);
  return new Ctor(`127.0.0.1:${server.port}`, creds) as grpc.Client;
}

async function withClient<T>(client: grpc.Client, fn: (c: grpc.Client) => Promise<T>): Promise<T> {
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** An HTTP/1.1 request over TLS (node:https offers no h2 in ALPN, as a browser's HTTP/1.1 fetch). */
function httpsRequest(
  port: number,
  p: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string; client?: CertFiles; alpn?: string[] },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: "127.0.0.1",
        port,
        path: p,
        method: opts.method ?? "POST",
        headers: opts.headers,
        ca: pki.read(pki.ca.cert),
        ...(opts.client ? { cert: pki.read(opts.client.cert), key: pki.read(opts.client.key) } : {}),
        ...(opts.alpn ? { ALPNProtocols: opts.alpn } : {}),
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), alpn: (res.socket as tls.TLSSocket).alpnProtocol ?? false }),
        );
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: REPO_ROOT, timeout: 60_000, env }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const bufCurl = (args: string[]) => run(path.join(REPO_ROOT, "node_modules/.bin/buf"), ["curl", ...args]);

describe("mutual TLS, client certificates required", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { ...tlsEnv(), AGENTORCH_TLS_HANDSHAKE_TIMEOUT_MS: "1000" }, overrides: { backend: new FakeBackend() } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("serves grpc-js with ssl credentials; a certificate identity gets its role", async () => {
    await withClient(sslClient(server, "agentorch.v1.AgentOrchestratorService", { client: good }), async (c) => {
      const agent = { agentId: "tls-one", image: "busybox:latest", command: ["sleep", "1"] };
      await expect(rpc(c, "RegisterAgent", { agent })).resolves.toBeDefined();
      const list = await rpc<{ agents: { agentId: string }[] }>(c, "ListAgents", {});
      expect(list.agents.map((a) => a.agentId)).toContain("tls-one");
    });
    await withClient(sslClient(server, "agentorch.v1.AgentOrchestratorService", { client: viewer }), async (c) => {
      await expect(rpc(c, "ListAgents", {})).resolves.toBeDefined();
      const err = await rpcError(rpc(c, "RegisterAgent", { agent: { agentId: "tls-two", image: "busybox:latest" } }));
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(err.details).toContain("role viewer may not call agentorch.v1.AgentOrchestratorService/RegisterAgent");
    });
    // The log names the caller by its identity.
    expect(server.logs.some((l) => String(l.msg).startsWith("call refused") && String(l.caller).includes('operator "viewers" (role viewer)'))).toBe(true);
  });

  it("refuses an expired client certificate, one from another CA, a missing one, and an unmapped one, saying which", async () => {
    const cases: [CertFiles | undefined, RegExp][] = [
      [expired, /client certificate \/CN=expired-bot rejected: it has expired on .* \(CERT_HAS_EXPIRED\)/],
      [foreign, /client certificate \/O=Acme\/CN=ci-bot rejected: .*not issued by .*AGENTORCH_TLS_CLIENT_CA/],
      [undefined, /requires a client certificate \(mutual TLS\) and none was presented/],
      [stranger, /client certificate \/O=Elsewhere\/CN=stranger is verified but not mapped to an operator identity.*NAME:ROLE:cert:\/O=Elsewhere\/CN=stranger/],
    ];
    for (const [client, says] of cases) {
      await withClient(sslClient(server, "agentorch.v1.AgentOrchestratorService", { client }), async (c) => {
        const err = await rpcError(rpc(c, "ListAgents", {}));
        expect(err.code, client?.cert ?? "no certificate").toBe(grpc.status.UNAUTHENTICATED);
        expect(err.details).toMatch(says);
      });
    }
    // Health stays open, as it is to callers without a token.
    await withClient(sslClient(server, "grpc.health.v1.Health"), async (c) => {
      expect(await rpc<{ status: string }>(c, "Check", { service: "" })).toEqual({ status: "SERVING" });
    });
    // A token does not make up for a bad certificate.
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${TOKEN}`);
    await withClient(sslClient(server, "agentorch.v1.AgentOrchestratorService", { client: expired }), async (c) => {
      expect((await rpcError(rpc(c, "ListAgents", {}, { metadata: md }))).code).toBe(grpc.status.UNAUTHENTICATED);
    });
  });

  it("is refused by a client that does not trust the server's CA, with an error that names the certificate", async () => {
    await withClient(sslClient(server, "grpc.health.v1.Health", { ca: pki.otherCa.cert, client: good }), async (c) => {
      const err = await rpcError(rpc(c, "Check", { service: "" }, { deadlineMs: 10_000 }));
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
      expect(err.details).toMatch(/certificate/i);
    });
  });

  it("answers buf curl over https, with --cacert and --cert/--key", async () => {
    const url = `https://127.0.0.1:${server.port}`;
    const ok = await bufCurl(["--protocol", "grpc", "--cacert", pki.ca.cert, "--cert", good.cert, "--key", good.key, "-d", "{}", `${url}${ORCH}/ListAgents`]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toHaveProperty("agents");
    const missing = await bufCurl(["--protocol", "grpc", "--cacert", pki.ca.cert, "-d", "{}", `${url}${ORCH}/ListAgents`]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("unauthenticated");
    expect(missing.stderr).toContain("requires a client certificate");
    // With the schema from the repository: buf curl's reflection would hide the TLS error behind "failed to find service".
    const untrusted = await bufCurl(["--schema", ".", "--protocol", "grpc", "--cert", good.cert, "--key", good.key, "-d", "{}", `${url}${ORCH}/ListAgents`]);
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toMatch(/certificate signed by unknown authority/);
  });

  it.skipIf(pythonGrpcMissing() !== undefined)("answers Python grpcio with ssl_channel_credentials", async () => {
    const script = `
import grpc, json, sys
ca, cert, key, target = [sys.argv[i] for i in range(1, 5)]
def call(method, with_cert):
    creds = grpc.ssl_channel_credentials(root_certificates=open(ca, "rb").read(),
        private_key=open(key, "rb").read() if with_cert else None,
        certificate_chain=open(cert, "rb").read() if with_cert else None)
    with grpc.secure_channel(target, creds) as ch:
        try:
            return {"bytes": len(ch.unary_unary(method)(b"", timeout=20))}
        except grpc.RpcError as e:
            return {"code": e.code().name, "details": e.details()}
print(json.dumps({"health": call("/grpc.health.v1.Health/Check", False),
                  "list": call("${ORCH}/ListAgents", True),
                  "nocert": call("${ORCH}/ListAgents", False)}))
`;
    const out = await run(PYTHON, ["-c", script, pki.ca.cert, good.cert, good.key, `127.0.0.1:${server.port}`]);
    expect(out.stderr).toBe("");
    const seen = JSON.parse(out.stdout) as Record<string, { bytes?: number; code?: string; details?: string }>;
    expect(seen.health).toEqual({ bytes: 2 }); // status SERVING: field 1 = 1
    expect(seen.list!.bytes).toBeGreaterThan(0);
    expect(seen.nocert!.code).toBe("UNAUTHENTICATED");
    expect(seen.nocert!.details).toContain("requires a client certificate");
  });

  it("serves Connect JSON, gRPC-Web and /healthz over HTTP/1.1 TLS, and Connect over HTTP/2 TLS", async () => {
    const json = await httpsRequest(server.port, `${ORCH}/ListAgents`, {
      headers: { "content-type": "application/json", origin: `https://127.0.0.1:${server.port}` },
      body: "{}",
      client: good,
      alpn: ["http/1.1"],
    });
    expect(json.alpn).toBe("http/1.1");
    expect(json.status).toBe(200);
    expect(JSON.parse(json.body.toString())).toHaveProperty("agents");

    const web = await httpsRequest(server.port, `${ORCH}/ListAgents`, {
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: Buffer.from([0, 0, 0, 0, 0]),
      client: good,
    });
    expect(web.status).toBe(200);
    // The trailers frame (flag 0x80) ends the body with grpc-status 0.
    expect(web.body.toString("latin1")).toMatch(/grpc-status: ?0/);

    const refused = await httpsRequest(server.port, `${ORCH}/ListAgents`, { headers: { "content-type": "application/json" }, body: "{}" });
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body.toString())).toMatchObject({ code: "unauthenticated" });

    // No ALPN at all (node:https by default, many HTTP/1.1 clients): HTTP/1.1.
    const probe = await httpsRequest(server.port, "/healthz", { method: "GET" });
    expect(probe.alpn).toBe(false);
    expect(probe.status).toBe(200);
    expect(probe.body.toString()).toMatch(/^ok\n/);

    const session = http2.connect(`https://127.0.0.1:${server.port}`, { ca: pki.read(pki.ca.cert), cert: pki.read(good.cert), key: pki.read(good.key) });
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": `${ORCH}/ListAgents`, "content-type": "application/json" });
        let status = 0;
        let body = "";
        stream.on("response", (h) => (status = Number(h[":status"])));
        stream.on("data", (d: Buffer) => (body += d.toString()));
        stream.on("end", () => resolve({ status, body }));
        stream.on("error", reject);
        stream.end("{}");
      });
      expect((session.socket as tls.TLSSocket).alpnProtocol).toBe("h2");
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toHaveProperty("agents");
    } finally {
      session.close();
    }
  });

  it("tells cleartext clients (HTTP/1.1, and gRPC over h2c) to use TLS, and closes a stalled handshake", async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("this port speaks TLS only: connect with TLS");
    const Ctor = grpc.makeClientConstructor(packageDefinition("json")["grpc.health.v1.Health"] as unknown as grpc.ServiceDefinition, "grpc.health.v1.Health");
    await withClient(new Ctor(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as grpc.Client, async (c) => {
      const err = await rpcError(rpc(c, "Check", { service: "" }));
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
      expect(err.details).toContain("this port speaks TLS only");
    });
    const started = Date.now();
    const stalled = net.connect(server.port, "127.0.0.1");
    stalled.on("error", () => undefined);
    stalled.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello, never finished
    await new Promise((resolve) => stalled.once("close", resolve));
    // AGENTORCH_TLS_HANDSHAKE_TIMEOUT_MS is 1000 here.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(Date.now() - started).toBeLessThan(8000);
  });

  it("runs the CLI against the TLS server (flags and AGENTORCH_CLI_TLS_* variables)", async () => {
    const addr = `https://127.0.0.1:${server.port}`;
    const env = { ...process.env, CI: "1", AGENTORCH_TOKEN: "" };
    const ok = await run(process.execPath, [BIN, "--addr", addr, "--tls-ca", pki.ca.cert, "--tls-cert", good.cert, "--tls-key", good.key, "agents", "ls", "-o", "json"], env);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("tls-one");
    const viaEnv = await run(process.execPath, [BIN, "--addr", `127.0.0.1:${server.port}`, "agents", "ls", "-o", "json"], {
      ...env,
      AGENTORCH_CLI_TLS_CA: pki.ca.cert,
      AGENTORCH_CLI_TLS_CERT: good.cert,
      AGENTORCH_CLI_TLS_KEY: good.key,
    });
    expect(viaEnv.code).toBe(0);
    const noCert = await run(process.execPath, [BIN, "--addr", addr, "--tls-ca", pki.ca.cert, "agents", "ls"], env);
    expect(noCert.code).toBe(5);
    expect(noCert.stderr).toContain("requires a client certificate");
    const untrusted = await run(process.execPath, [BIN, "--addr", addr, "agents", "ls"], env);
    expect(untrusted.code).toBe(6);
    expect(untrusted.stderr).toMatch(/the server's certificate is not trusted.*--tls-ca/);
    const cleartext = await run(process.execPath, [BIN, "--addr", `127.0.0.1:${server.port}`, "health"], env);
    expect(cleartext.code).toBe(6);
    expect(cleartext.stderr).toContain("this port speaks TLS only");
  });
});

describe("client certificates optional", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: tlsEnv("optional"), overrides: { backend: new FakeBackend() } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("lets token-only clients in, still maps certificates, and still refuses a bad one", async () => {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${TOKEN}`);
    await withClient(sslClient(server, "agentorch.v1.AgentOrchestratorService"), async (c) => {
      await expect(rpc(c, "ListAgents", {}, { metadata: md })).resolves.toBeDefined();
      const err = await rpcError(rpc(c, "ListAgents", {}));
      expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(err.details).toContain("missing bearer token");
    });
    await withClient(sslClient(server, "agentorch.v1.AgentOrchestratorService", { client: good }), async (c) => {
      await expect(rpc(c, "ListAgents", {})).resolves.toBeDefined();
    });
    await withClient(sslClient(server, "agentorch.v1.AgentOrchestratorService", { client: expired }), async (c) => {
      const err = await rpcError(rpc(c, "ListAgents", {}, { metadata: md }));
      expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(err.details).toContain("CERT_HAS_EXPIRED");
    });
  });

  it("serves /metrics on its own port over TLS to a mapped certificate", async () => {
    const metricsServer = await startTestServer({ env: { ...tlsEnv("optional"), AGENTORCH_METRICS_LISTEN: "127.0.0.1:0" }, overrides: { backend: new FakeBackend() } });
    try {
      const port = metricsServer.app.metricsAddress()!.port;
      expect((await httpsRequest(port, "/metrics", { method: "GET" })).status).toBe(401);
      const ok = await httpsRequest(port, "/metrics", { method: "GET", client: good });
      expect(ok.status).toBe(200);
      expect(ok.body.toString()).toContain("agentorch_");
    } finally {
      await metricsServer.stop();
    }
  });
});

describe("the front door's bounds over TLS", () => {
  it("applies the HTTP/2 stream limit and idle timeout to TLS sessions, and closes them with GOAWAY at shutdown", async () => {
    const server = await startTestServer({
      env: { ...tlsEnv("optional"), AGENTORCH_MAX_CONCURRENT_STREAMS: "7", AGENTORCH_HTTP2_IDLE_TIMEOUT_MS: "300" },
      overrides: { backend: new FakeBackend() },
    });
    const connect = async () => {
      const session = http2.connect(`https://127.0.0.1:${server.port}`, { ca: pki.read(pki.ca.cert) });
      session.on("error", () => undefined);
      await new Promise((resolve) => session.once("remoteSettings", resolve));
      return session;
    };
    let stopped: Promise<void> | undefined;
    try {
      const idle = await connect();
      expect(idle.remoteSettings.maxConcurrentStreams).toBe(7);
      await new Promise((resolve) => idle.once("goaway", resolve)); // idle for 300 ms
      await new Promise((resolve) => idle.once("close", resolve));

      const open = await connect();
      const stream = open.request({ ":method": "GET", ":path": "/healthz" });
      stream.resume();
      await new Promise((resolve) => stream.once("end", resolve));
      const goaway = new Promise((resolve) => open.once("goaway", resolve));
      stopped = server.stop();
      await goaway;
      await stopped; // resolves only once every connection is closed
      expect(server.app.shutdownSignal.aborted).toBe(true);
    } finally {
      await (stopped ?? server.stop());
    }
  });
});

describe("certificate reload on SIGHUP", () => {
  let service: ServiceProcess | undefined;
  let dir: string;
  afterAll(async () => {
    await service?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The subject CN of the certificate a new connection is shown. */
  function servedCn(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port, ca: pki.read(pki.ca.cert), ALPNProtocols: ["h2"] }, () => {
        resolve(String(s.getPeerCertificate().subject.CN));
        s.destroy();
      });
      s.on("error", reject);
    });
  }

  it("serves the renewed certificate to new connections; an open one goes on; a bad file keeps the current one", async () => {
    dir = mkdtempSync(path.join(tmpdir(), "agentorch-tls-hup-"));
    const cert = path.join(dir, "server.pem");
    const key = path.join(dir, "server.key");
    copyFileSync(pki.server.cert, cert);
    copyFileSync(pki.server.key, key);
    service = spawnService({
      dataDir: path.join(dir, "data"),
      env: { AGENTORCH_TLS_CERT: cert, AGENTORCH_TLS_KEY: key, AGENTORCH_TLS_CLIENT_CA: pki.ca.cert, AGENTORCH_TOKENS_FILE: tokensFile },
    });
    const { port } = await service.started;
    expect(await servedCn(port)).toBe("agentorch-test-server");

    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: pki.read(pki.ca.cert), cert: pki.read(good.cert), key: pki.read(good.key) });
    const call = () =>
      new Promise<number>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": `${ORCH}/ListAgents`, "content-type": "application/json" });
        let status = 0;
        stream.on("response", (h) => (status = Number(h[":status"])));
        stream.on("data", () => undefined);
        stream.on("end", () => resolve(status));
        stream.on("error", reject);
        stream.end("{}");
      });
    try {
      expect(await call()).toBe(200);
      copyFileSync(pki.serverRenewed.cert, cert);
      copyFileSync(pki.serverRenewed.key, key);
      let from = service.logs.length;
      service.kill("SIGHUP");
      const reloaded = await service.waitForLog((l) => l.msg === "TLS certificate reloaded; new connections use it", 10_000, from);
      expect(JSON.stringify(reloaded.certificate)).toContain("agentorch-test-server-renewed");
      expect(await servedCn(port)).toBe("agentorch-test-server-renewed");
      // The connection opened before the reload is the same one, still served.
      expect(await call()).toBe(200);
      expect((session.socket as tls.TLSSocket).getPeerCertificate().subject.CN).toBe("agentorch-test-server");

      // A key that does not match: logged, and the renewed certificate stays in use.
      copyFileSync(pki.server.key, key);
      from = service.logs.length;
      service.kill("SIGHUP");
      const failed = await service.waitForLog((l) => String(l.msg).startsWith("reloading the TLS certificate failed"), 10_000, from);
      expect(String(failed.err)).toContain("AGENTORCH_TLS_KEY");
      expect(String(failed.err)).toContain("is not the private key of the certificate");
      expect(await servedCn(port)).toBe("agentorch-test-server-renewed");
      expect(await call()).toBe(200);
      expect(service.hasExited).toBe(false);
    } finally {
      session.close();
    }
  });
});

describe("listening beyond loopback", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "agentorch-tls-listen-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses 0.0.0.0 without TLS (exit 2, naming the settings), unless AGENTORCH_INSECURE_LISTEN=1, which warns", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/server/main.ts"], {
      cwd: REPO_ROOT,
      env: { ...process.env, AGENTORCH_LISTEN: "0.0.0.0:0", AGENTORCH_DATA_DIR: path.join(dir, "a"), AGENTORCH_TOKENS: `ops:operator:${hashToken(TOKEN)}` },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    expect(await new Promise<number | null>((resolve) => child.on("exit", resolve))).toBe(2);
    expect(stderr).toContain("AGENTORCH_LISTEN is 0.0.0.0:0, which is not a loopback address, and TLS is not configured");
    expect(stderr).toContain("AGENTORCH_TLS_CERT and AGENTORCH_TLS_KEY");
    expect(stderr).toContain("AGENTORCH_INSECURE_LISTEN=1");

    const insecure = await startTestServer({
      env: { AGENTORCH_LISTEN: "0.0.0.0:0", AGENTORCH_TOKENS: `ops:operator:${hashToken(TOKEN)}`, AGENTORCH_INSECURE_LISTEN: "1" },
      overrides: { backend: new FakeBackend() },
    });
    try {
      const warning = insecure.logs.find((l) => l.level === "warn" && String(l.msg).includes("WITHOUT TLS (AGENTORCH_INSECURE_LISTEN=1)"));
      expect(warning).toMatchObject({ setting: "AGENTORCH_LISTEN" });
    } finally {
      await insecure.stop();
    }
  });

  it("listens on 0.0.0.0 with TLS and certificate identities as the only credentials", async () => {
    const idsOnly = path.join(dir, "ids");
    writeFileSync(idsOnly, "ci-bot:operator:cert:/O=Acme/CN=ci-bot\n");
    const server = await startTestServer({
      env: { ...tlsEnv(), AGENTORCH_TOKENS_FILE: idsOnly, AGENTORCH_LISTEN: "0.0.0.0:0" },
      overrides: { backend: new FakeBackend() },
    });
    try {
      await withClient(sslClient(server, "agentorch.v1.AgentOrchestratorService", { client: good }), async (c) => {
        await expect(rpc(c, "ListAgents", {})).resolves.toBeDefined();
      });
      expect(server.logs.some((l) => l.msg === "TLS enabled (ALPN h2, http/1.1)" && l.clientAuth === "require")).toBe(true);
    } finally {
      await server.stop();
    }
  });
});
