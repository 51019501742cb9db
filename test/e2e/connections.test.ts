/**
 * Connections at the front door, on the real process (spawned, its fds read from /proc):
 * every connection a client closes (FIN, reset, half-open; HTTP/2 and HTTP/1.1; TCP port
 * and agent socket) is closed by the server too; idle HTTP/2 sessions and HTTP/1.1
 * keep-alive connections are closed after their timeouts; the number of open connections
 * per listener is capped (the drop is logged naming the setting); HTTP/2 advertises
 * maxConcurrentStreams. Issue 12, item 1: before the fix every closed HTTP/2 connection
 * left its socket in CLOSE-WAIT and two fds in the server for good.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fdCount, healthz, inParallel, settle, touchAndLeave } from "../support/raw-connections.js";
import type { Target } from "../support/raw-connections.js";
import { REPO_ROOT } from "../support/server.js";
import { type ServiceProcess, spawnService } from "../fault/support/service.js";

/** fds the server may keep beyond its baseline (timers, a lazily opened file…). */
const FD_SLACK = 8;

function bufCurlHealth(url: string): Promise<number> {
  return new Promise((resolve) => {
    execFile(
      path.join(REPO_ROOT, "node_modules/.bin/buf"),
      ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", "{}", `${url}/grpc.health.v1.Health/Check`],
      { cwd: REPO_ROOT, timeout: 20_000 },
      (err) => resolve(err ? 1 : 0),
    );
  });
}

describe("closed connections are closed by the server", () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-conn-"));
  let proc: ServiceProcess;
  let tcp: Target;
  let sock: Target;
  let baseline: number;

  beforeAll(async () => {
    proc = spawnService({ dataDir });
    const started = await proc.started;
    tcp = { port: started.port };
    sock = { socketPath: path.join(dataDir, "run", "agentorch.sock") };
    expect(await healthz(tcp)).toBe(200);
    baseline = await settle(() => fdCount(proc.pid), () => false, 300);
  }, 60_000);
  afterAll(async () => {
    await proc?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const backToBaseline = () => settle(() => fdCount(proc.pid), (n) => n <= baseline + FD_SLACK, 5000);

  for (const mode of ["end", "reset", "half-open"] as const) {
    it(`HTTP/2 on the TCP port, client ${mode}: 200 connections leave no fd behind`, async () => {
      await inParallel(200, 20, () => touchAndLeave(tcp, mode));
      expect(await backToBaseline()).toBeLessThanOrEqual(baseline + FD_SLACK);
      expect(await healthz(tcp)).toBe(200);
    });
  }

  it("HTTP/2 on the agent socket, client end: 200 connections leave no fd behind", async () => {
    await inParallel(200, 20, () => touchAndLeave(sock, "end"));
    expect(await backToBaseline()).toBeLessThanOrEqual(baseline + FD_SLACK);
  });

  it("HTTP/1.1 keep-alive requests, client end: no fd behind", async () => {
    const req = "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
    await inParallel(200, 20, (i) => touchAndLeave(i % 2 ? tcp : sock, "end", req));
    expect(await backToBaseline()).toBeLessThanOrEqual(baseline + FD_SLACK);
  });

  it("buf curl x 10: no fd behind", async () => {
    for (let i = 0; i < 10; i++) expect(await bufCurlHealth(`http://127.0.0.1:${(tcp as { port: number }).port}`)).toBe(0);
    expect(await backToBaseline()).toBeLessThanOrEqual(baseline + FD_SLACK);
  }, 60_000);

  it("advertises maxConcurrentStreams 100", async () => {
    const session = http2.connect(`http://127.0.0.1:${(tcp as { port: number }).port}`);
    const settings = await new Promise<http2.Settings>((resolve) => session.once("remoteSettings", resolve));
    session.close();
    expect(settings.maxConcurrentStreams).toBe(100);
  });
});

describe("timeouts and the connection cap", () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-conn-"));
  let proc: ServiceProcess;
  let port: number;

  beforeAll(async () => {
    proc = spawnService({
      dataDir,
      env: { AGENTORCH_HTTP2_IDLE_TIMEOUT_MS: "300", AGENTORCH_HTTP1_KEEPALIVE_TIMEOUT_MS: "300", AGENTORCH_MAX_CONNECTIONS: "20" },
    });
    ({ port } = await proc.started);
  }, 60_000);
  afterAll(async () => {
    await proc?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("an idle HTTP/2 session gets GOAWAY and is closed after AGENTORCH_HTTP2_IDLE_TIMEOUT_MS", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => undefined);
    const started = Date.now();
    const goaway = new Promise<void>((resolve) => session.once("goaway", () => resolve()));
    await new Promise<void>((resolve) => session.once("close", () => resolve()));
    await goaway;
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it("an HTTP/2 session with an open stream is not idle", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => undefined);
    let closed = false;
    session.once("close", () => (closed = true));
    // A request whose body never ends keeps its stream open.
    const stream = session.request({ ":method": "POST", ":path": "/nothing-here" }, { endStream: false });
    stream.on("error", () => undefined);
    stream.on("response", () => undefined);
    await new Promise((r) => setTimeout(r, 900));
    expect(closed).toBe(false);
    session.destroy();
  });

  it("an idle HTTP/1.1 keep-alive connection is closed after AGENTORCH_HTTP1_KEEPALIVE_TIMEOUT_MS", async () => {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => undefined);
    socket.resume();
    socket.write("GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    const started = Date.now();
    await new Promise<void>((resolve) => socket.once("close", () => resolve()));
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("beyond AGENTORCH_MAX_CONNECTIONS new connections are dropped and logged; the service recovers", async () => {
    const held: net.Socket[] = [];
    // HTTP/1.1 requests whose headers never end hold their connections (headers timeout 20 s).
    for (let i = 0; i < 20; i++) {
      const s = net.connect(port, "127.0.0.1");
      s.on("error", () => undefined);
      s.write("GET /healthz HTTP/1.1\r\n");
      held.push(s);
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(await healthz({ port }, 2000)).toBe(0);
    await proc.waitForLog((l) => l.msg === "connection limit reached; dropping new connections" && l.setting === "AGENTORCH_MAX_CONNECTIONS", 5000);
    for (const s of held) s.destroy();
    expect(await settle(() => 0, () => true, 300)).toBe(0);
    expect(await healthz({ port })).toBe(200);
  });
});
