/**
 * Browsers at the front door (issue 12, items 7 and 10), against a real server:
 * - DNS rebinding: with no operator tokens only loopback Host names are accepted, so a
 *   page whose host name was rebound to 127.0.0.1 cannot call the API; a cross-origin
 *   request is refused unless its origin is in AGENTORCH_CORS_ORIGINS (before: any Host
 *   and any Origin were served);
 * - CORS: in a real headless Chromium (Debian's chromium), a page on an allowed origin
 *   calls the API with gRPC-Web and Connect and reads grpc-status; a page on another
 *   origin is refused; a page served from the service's own origin (behind a proxy) works
 *   without any allowlist (before: preflight answered 405, "Failed to fetch").
 * Without chromium the browser part skips loudly; under CI it fails.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer } from "../support/server.js";
import type { TestServer } from "../support/server.js";

const GET_AGENT = "/agentorch.v1.AgentOrchestratorService/GetAgent";
const LIST_AGENTS = "/agentorch.v1.AgentOrchestratorService/ListAgents";

/** One raw HTTP/1.1 request; status, headers and body. */
function h1(port: number, method: string, url: string, headers: Record<string, string>, body = ""): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path: url, headers: { ...headers, "content-length": String(Buffer.byteLength(body)) }, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A gRPC call over HTTP/2 with the given :authority; its grpc-status. */
function grpcStatusWithAuthority(port: number, authority: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": LIST_AGENTS, ":authority": authority, "content-type": "application/grpc", te: "trailers" });
    let status = -1;
    const see = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = Number(h["grpc-status"]);
    };
    stream.on("response", see);
    stream.on("trailers", see);
    stream.on("data", () => undefined);
    stream.on("close", () => {
      session.close();
      resolve(status);
    });
    stream.end(Buffer.alloc(5));
  });
}

describe("no-token mode: Host and Origin", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.stop());

  it("accepts loopback Host names with any port", async () => {
    for (const host of [`127.0.0.1:${server.port}`, "localhost:1234", "[::1]:80", "localhost"]) {
      const r = await h1(server.port, "POST", LIST_AGENTS, { host, "content-type": "application/json" }, "{}");
      expect(r.status, host).toBe(200);
    }
    expect(await grpcStatusWithAuthority(server.port, `localhost:${server.port}`)).toBe(0);
  });

  it("refuses other Host names (DNS rebinding) with PERMISSION_DENIED naming AGENTORCH_TOKENS; /healthz stays open", async () => {
    const r = await h1(server.port, "POST", LIST_AGENTS, { host: `evil.example:${server.port}`, "content-type": "application/json" }, "{}");
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toMatchObject({ code: "permission_denied" });
    expect(r.body).toContain("AGENTORCH_TOKENS");
    expect(await grpcStatusWithAuthority(server.port, `rebound.example:${server.port}`)).toBe(7);
    expect((await h1(server.port, "GET", "/healthz", { host: "evil.example" })).status).toBe(200);
  });

  it("refuses a cross-origin request whose origin is not allowed, and its preflight", async () => {
    const host = `127.0.0.1:${server.port}`;
    const r = await h1(server.port, "POST", LIST_AGENTS, { host, origin: "http://evil.example", "content-type": "application/json" }, "{}");
    expect(r.status).toBe(403);
    expect(r.body).toContain("AGENTORCH_CORS_ORIGINS");
    expect(r.headers["access-control-allow-origin"]).toBeUndefined();
    const pre = await h1(server.port, "OPTIONS", LIST_AGENTS, { host, origin: "http://evil.example", "access-control-request-method": "POST" });
    expect(pre.headers["access-control-allow-origin"]).toBeUndefined();
    // Same origin is not cross-origin.
    const same = await h1(server.port, "POST", LIST_AGENTS, { host, origin: `http://${host}`, "content-type": "application/json" }, "{}");
    expect(same.status).toBe(200);
  });
});

describe("CORS allowlist", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { AGENTORCH_CORS_ORIGINS: "https://app.example.com" } });
  });
  afterAll(() => server?.stop());

  it("answers an allowed origin's preflight and exposes the gRPC and Connect headers", async () => {
    const host = `127.0.0.1:${server.port}`;
    const pre = await h1(server.port, "OPTIONS", GET_AGENT, {
      host,
      origin: "https://app.example.com",
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,x-grpc-web,authorization",
    });
    expect(pre.status).toBe(204);
    expect(pre.headers["access-control-allow-origin"]).toBe("https://app.example.com");
    expect(pre.headers["access-control-allow-methods"]).toContain("POST");
    expect(pre.headers["access-control-allow-headers"]).toContain("x-grpc-web");
    expect(pre.headers["access-control-allow-headers"]).toContain("authorization");
    const r = await h1(server.port, "POST", GET_AGENT, { host, origin: "https://app.example.com", "content-type": "application/grpc-web+proto", "x-grpc-web": "1" }, "\0\0\0\0\0");
    expect(r.headers["access-control-allow-origin"]).toBe("https://app.example.com");
    for (const h of ["grpc-status", "grpc-message", "grpc-status-details-bin", "connect-content-encoding"]) {
      expect(r.headers["access-control-expose-headers"]).toContain(h);
    }
  });
});

// ------------------------------------------------------------------ a real browser

const CHROMIUM = ["chromium", "chromium-browser"].find((b) => spawnSync("sh", ["-c", `command -v ${b}`]).status === 0);
if (!CHROMIUM) {
  const why = "browser tests: no chromium found (install Debian's chromium: scripts/ensure-chromium.sh)";
  if (process.env.CI === "true") throw new Error(`${why}; CI must run them`);
  console.warn(`SKIPPING ${why}`);
}

/** The page: runs the calls and writes their outcomes into #out, which --dump-dom prints. */
function page(api: string): string {
  return `<!doctype html><html><body><pre id="out">pending</pre><script>
(async () => {
  const out = {};
  try {
    const r = await fetch(${JSON.stringify(api)} + "${GET_AGENT}", { method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" }, body: new Uint8Array(5) });
    // gRPC-Web: the status is in the headers (trailers-only) or in the trailer frame of the body.
    const body = new TextDecoder("latin1").decode(await r.arrayBuffer());
    const trailer = /grpc-status:\\s*(\\d+)/i.exec(body);
    out.grpcWeb = { http: r.status, grpcStatus: r.headers.get("grpc-status") ?? (trailer && trailer[1]) };
  } catch (e) { out.grpcWeb = { error: String(e) }; }
  try {
    const r = await fetch(${JSON.stringify(api)} + "${LIST_AGENTS}", { method: "POST",
      headers: { "content-type": "application/json" }, body: "{}" });
    out.connect = { http: r.status, body: await r.json() };
  } catch (e) { out.connect = { error: String(e) }; }
  document.getElementById("out").textContent = "RESULT" + JSON.stringify(out) + "END";
})();
</script></body></html>`;
}

async function runChromium(url: string, profile: string): Promise<Record<string, Record<string, unknown>>> {
  const args = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", `--user-data-dir=${profile}`, "--virtual-time-budget=10000", "--dump-dom", url,
  ];
  const child = spawn(CHROMIUM!, args, { stdio: ["ignore", "pipe", "pipe"] });
  let dom = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (dom += d));
  child.stderr.resume();
  const timer = setTimeout(() => child.kill("SIGKILL"), 45_000);
  await new Promise((r) => child.once("exit", r));
  clearTimeout(timer);
  const m = /<pre id="out">RESULT(.*?)END<\/pre>/s.exec(dom.replace(/&quot;/g, '"').replace(/&amp;/g, "&"));
  if (!m) throw new Error(`no result in the page: ${dom.slice(0, 2000)}`);
  return JSON.parse(m[1]!) as Record<string, Record<string, unknown>>;
}

describe.skipIf(!CHROMIUM)("in headless Chromium", () => {
  let server: TestServer;
  let pages: http.Server;
  let pagePort: number;
  const profileRoot = mkdtempSync(path.join(tmpdir(), "agentorch-chromium-"));
  let profiles = 0;

  beforeAll(async () => {
    // Pages on http://127.0.0.1:PAGES (allowed) and http://localhost:PAGES (not allowed);
    // /same.html calls its own origin, which forwards the API to the service (same origin).
    const ready = new Promise<number>((resolve) => {
      pages = http.createServer((req, res) => {
        if (req.url === "/cross.html") {
          res.writeHead(200, { "content-type": "text/html" }).end(page(`http://127.0.0.1:${server.port}`));
        } else if (req.url === "/same.html") {
          res.writeHead(200, { "content-type": "text/html" }).end(page(""));
        } else if (req.url?.startsWith("/agentorch.v1.")) {
          const up = http.request({ host: "127.0.0.1", port: server.port, method: req.method, path: req.url, headers: req.headers, agent: false }, (ur) => {
            res.writeHead(ur.statusCode ?? 502, ur.headers);
            ur.pipe(res);
          });
          up.on("error", () => res.destroy());
          req.pipe(up);
        } else {
          res.writeHead(404).end();
        }
      });
      pages.listen(0, "127.0.0.1", () => resolve((pages.address() as net.AddressInfo).port));
    });
    pagePort = await ready;
    server = await startTestServer({ env: { AGENTORCH_CORS_ORIGINS: `http://127.0.0.1:${pagePort}` } });
  });
  afterAll(async () => {
    await new Promise((r) => pages?.close(r));
    await server?.stop();
    rmSync(profileRoot, { recursive: true, force: true });
  });
  const profile = () => path.join(profileRoot, `p${profiles++}`);

  it("a page on an allowed origin calls gRPC-Web and Connect and reads grpc-status", async () => {
    const out = await runChromium(`http://127.0.0.1:${pagePort}/cross.html`, profile());
    expect(out.grpcWeb).toMatchObject({ http: 200, grpcStatus: "3" });
    expect(out.connect).toMatchObject({ http: 200 });
  }, 60_000);

  it("a page on another origin is refused (the browser sees a failed fetch)", async () => {
    const out = await runChromium(`http://localhost:${pagePort}/cross.html`, profile());
    expect(out.grpcWeb!.error).toMatch(/Failed to fetch/);
    expect(out.connect!.error).toMatch(/Failed to fetch/);
    expect(server.logs.some((l) => l.msg === "request refused: origin not in AGENTORCH_CORS_ORIGINS")).toBe(true);
  }, 60_000);

  it("a page served from the API's own origin needs no allowlist", async () => {
    const out = await runChromium(`http://localhost:${pagePort}/same.html`, profile());
    expect(out.grpcWeb).toMatchObject({ http: 200, grpcStatus: "3" });
    expect(out.connect).toMatchObject({ http: 200 });
  }, 60_000);
});
