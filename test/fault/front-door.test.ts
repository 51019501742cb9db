/**
 * The front door under churn and floods, on the real process (spawned with the GC probe,
 * operator tokens configured; its fds read from /proc):
 * - connection churn: HTTP/2 and HTTP/1.1 connections on the TCP port and on the agent
 *   socket, opened and closed (clean FIN, reset, half-open) by the thousand (long run:
 *   100,000 HTTP/2 and 20,000 HTTP/1.1): fds, heap and RSS back to their baseline plus a
 *   small constant, health answering throughout;
 * - floods: unauthenticated HTTP/2 streams declaring 4 MiB bodies and trickling them,
 *   HTTP/1.1 slowloris (headers, then bodies, a few bytes at a time), and authenticated
 *   slow bodies, all at once: RSS bounded by the in-flight body budget plus a constant,
 *   an authenticated client served meanwhile, nothing stored.
 * Figures go to AGENTORCH_FAULT_REPORT (docs/reliability.md).
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { CloseMode, Target } from "../support/raw-connections.js";
import { fdCount, healthz, inParallel, rssOf, settle, touchAndLeave } from "../support/raw-connections.js";
import { faultConfig, reportFigures } from "./support/fault-config.js";
import { type ServiceProcess, spawnService } from "./support/service.js";

const cfg = faultConfig();
const MiB = 1024 * 1024;
const TOKEN = "front-door-fault-token";
const BUDGET = 16 * MiB;
const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-fault-door-"));
let proc: ServiceProcess;
let tcp: Target & { port: number };
let agentSock: Target;

beforeAll(async () => {
  proc = spawnService({
    dataDir,
    gcProbe: true,
    env: {
      AGENTORCH_TOKENS: `fault:admin:${createHash("sha256").update(TOKEN).digest("hex")}`,
      AGENTORCH_MAX_INFLIGHT_BODY_BYTES: String(BUDGET),
      AGENTORCH_REQUEST_BODY_TIMEOUT_MS: "3000",
    },
  });
  const { port } = await proc.started;
  tcp = { port };
  agentSock = { socketPath: path.join(dataDir, "run", "agentorch.sock") };
}, 60_000);
afterAll(async () => {
  await proc?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Health probes every 200 ms while `work` runs; how many failed (no 200 within 5 s). */
async function withHealthProbes<T>(work: () => Promise<T>): Promise<{ result: T; probes: number; failed: number }> {
  let probes = 0;
  let failed = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      probes++;
      if ((await healthz(tcp, 5000)) !== 200) failed++;
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  try {
    const result = await work();
    return { result, probes, failed };
  } finally {
    running = false;
    await loop;
  }
}

const MODES: CloseMode[] = ["end", "reset", "half-open"];
const H1_REQUEST = "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";

it("connection churn leaves fds, heap and RSS at their baseline; health answers throughout", async () => {
  // Warm-up, then the baseline.
  await inParallel(300, 30, (i) => touchAndLeave(i % 2 ? tcp : agentSock, MODES[i % 3]!, i % 4 === 0 ? H1_REQUEST : undefined));
  await new Promise((r) => setTimeout(r, 500));
  const before = await proc.memory();
  const fdsBefore = fdCount(proc.pid);
  const started = Date.now();
  const { probes, failed } = await withHealthProbes(async () => {
    await inParallel(cfg.churnH2, 50, (i) => touchAndLeave(tcp, MODES[i % 3]!));
    await inParallel(cfg.churnH1, 50, (i) => touchAndLeave(tcp, MODES[i % 3]!, H1_REQUEST));
    await inParallel(cfg.churnAgent, 50, (i) => touchAndLeave(agentSock, MODES[i % 3]!, i % 2 ? H1_REQUEST : undefined));
  });
  const seconds = (Date.now() - started) / 1000;
  const fdsAfter = await settle(() => fdCount(proc.pid), (n) => n <= fdsBefore + 8, 10_000);
  // A half-open connection's HTTP/2 session is kept 5 s after its FIN for its streams to
  // finish (the listener's HALF_CLOSED_GRACE_MS), and 100,000 closed within a minute hold
  // tens of MiB until then: measured once that grace has passed (sampled until back, 15 s at most).
  let after = await proc.memory();
  for (const deadline = Date.now() + 15_000; after.heapUsed - before.heapUsed >= 16 * MiB && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 1000));
    after = await proc.memory();
  }
  const figures = {
    h2: cfg.churnH2,
    h1: cfg.churnH1,
    agentSocket: cfg.churnAgent,
    seconds: Math.round(seconds),
    fds: [fdsBefore, fdsAfter],
    heapMiB: [before.heapUsed / MiB, after.heapUsed / MiB].map((x) => Math.round(x * 10) / 10),
    rssMiB: [before.rss / MiB, after.rss / MiB].map((x) => Math.round(x)),
    healthProbes: probes,
    healthFailed: failed,
  };
  reportFigures("front-door-churn", figures);
  expect(failed).toBe(0);
  expect(fdsAfter).toBeLessThanOrEqual(fdsBefore + 8);
  expect(after.heapUsed - before.heapUsed).toBeLessThan(16 * MiB);
  expect(after.rss - before.rss).toBeLessThan(64 * MiB);
}, 3_600_000);

/** An HTTP/2 gRPC call that declares `declared` bytes and trickles them; resolves with its grpc-status. */
function tricklingCall(session: http2.ClientHttp2Session, token: string | undefined, declared: number, untilMs: number): Promise<number> {
  return new Promise((resolve) => {
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": "/agentorch.v1.AgentOrchestratorService/RegisterAgent",
      "content-type": "application/grpc",
      te: "trailers",
    };
    if (token) headers.authorization = `Bearer ${token}`;
    const stream = session.request(headers, { endStream: false });
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(declared, 1);
    stream.write(prefix);
    const timer = setInterval(() => {
      if (Date.now() > untilMs || stream.closed) return clearInterval(timer);
      stream.write(Buffer.alloc(16 * 1024, 0x0a));
    }, 100);
    let code = -1;
    const see = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) code = Number(h["grpc-status"]);
    };
    stream.on("response", see);
    stream.on("trailers", see);
    stream.on("data", () => undefined);
    stream.on("error", () => undefined);
    stream.once("close", () => {
      clearInterval(timer);
      // Node refuses streams of a connection whose buffers passed maxSessionMemory (here, a
      // connection shared with the unauthenticated flood) with ENHANCE_YOUR_CALM, which gRPC
      // clients report as RESOURCE_EXHAUSTED (grpc-js: "Bandwidth exhausted or memory limit exceeded").
      if (code < 0 && stream.rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM) code = 8;
      resolve(code);
    });
  });
}

/** HTTP/1.1 slowloris: headers a few bytes at a time, then a declared body a few bytes at a time. */
function slowloris(target: Target, untilMs: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = "socketPath" in target ? net.connect({ path: target.socketPath }) : net.connect(target.port, "127.0.0.1");
    const text = `POST /agentorch.v1.AgentOrchestratorService/RegisterAgent HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${4 * MiB}\r\n\r\n{"agent":{"agentId":"slow","name":"`;
    let at = 0;
    socket.on("error", () => undefined);
    socket.resume();
    const timer = setInterval(() => {
      if (Date.now() > untilMs || socket.destroyed) {
        clearInterval(timer);
        socket.destroy();
        return;
      }
      socket.write(at < text.length ? text.slice(at, (at += 8)) : "xxxxxxxx");
    }, 50);
    socket.once("close", () => {
      clearInterval(timer);
      resolve();
    });
  });
}

it("unauthenticated and slow-body floods: RSS bounded by the budget, authenticated clients served, nothing stored", async () => {
  const before = rssOf(proc.pid);
  const until = Date.now() + cfg.floodSeconds * 1000;
  const sessions = Array.from({ length: 4 }, () => {
    const s = http2.connect(`http://127.0.0.1:${tcp.port}`);
    s.on("error", () => undefined);
    return s;
  });
  const agentSession = http2.connect("http://localhost", { createConnection: () => net.connect({ path: (agentSock as { socketPath: string }).socketPath }) });
  agentSession.on("error", () => undefined);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(proc.pid))), 100);
  const unauth = sessions.flatMap((s) => Array.from({ length: 100 }, () => tricklingCall(s, undefined, 4 * MiB - 5, until)));
  const unauthAgent = Array.from({ length: 100 }, () => tricklingCall(agentSession, undefined, 4 * MiB - 5, until));
  const slowAuth = Array.from({ length: 40 }, (_, i) => tricklingCall(sessions[i % 4]!, TOKEN, 4 * MiB - 5, until));
  const loris = [...Array.from({ length: 150 }, () => slowloris(tcp, until)), ...Array.from({ length: 50 }, () => slowloris(agentSock, until))];
  // An authenticated client meanwhile, on its own connection.
  const served = { ok: 0, failed: 0 };
  const client = http2.connect(`http://127.0.0.1:${tcp.port}`);
  client.on("error", () => undefined);
  while (Date.now() < until) {
    const code = await new Promise<number>((resolve) => {
      const st = client.request({ ":method": "POST", ":path": "/agentorch.v1.AgentOrchestratorService/ListAgents", "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${TOKEN}` });
      let c = -1;
      st.on("response", (h) => h["grpc-status"] !== undefined && (c = Number(h["grpc-status"])));
      st.on("trailers", (h) => (c = Number(h["grpc-status"])));
      st.on("data", () => undefined);
      st.on("error", () => undefined);
      st.once("close", () => resolve(c));
      st.end(Buffer.alloc(5));
    });
    if (code === 0) served.ok++;
    else served.failed++;
    await new Promise((r) => setTimeout(r, 100));
  }
  const codes = await Promise.all([...unauth, ...unauthAgent, ...slowAuth]);
  await Promise.all(loris);
  clearInterval(sampler);
  for (const s of [...sessions, agentSession, client]) s.destroy();
  const count = (xs: number[], c: number) => xs.filter((x) => x === c).length;
  const figures = {
    seconds: cfg.floodSeconds,
    unauthenticatedStreams: unauth.length + unauthAgent.length,
    unauthenticatedAnswered16: count(codes.slice(0, unauth.length + unauthAgent.length), 16),
    slowAuthenticated: slowAuth.length,
    slowAuthenticatedCodes: { deadlineExceeded: count(codes.slice(-slowAuth.length), 4), resourceExhausted: count(codes.slice(-slowAuth.length), 8) },
    slowloris: loris.length,
    budgetMiB: BUDGET / MiB,
    rssMiB: { before: Math.round(before / MiB), peak: Math.round(peak / MiB) },
    authenticatedCalls: served,
  };
  reportFigures("front-door-flood", figures);
  expect(codes.slice(0, unauth.length + unauthAgent.length).every((c) => c === 16)).toBe(true);
  expect(codes.slice(-slowAuth.length).filter((c) => c !== 4 && c !== 8)).toEqual([]);
  expect(served.failed).toBe(0);
  expect(served.ok).toBeGreaterThan(0);
  expect(peak - before).toBeLessThan(BUDGET + 96 * MiB);
  // Nothing stored: no agent was registered.
  expect(proc.logs.some((l) => l.msg === "agent registered")).toBe(false);
}, 3_600_000);
