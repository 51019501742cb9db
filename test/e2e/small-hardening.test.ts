// Small things an attacker on the same host or network would try: reading the database
// through a loose file mode, reading /metrics without a token, and serving metrics to
// the network without tokens configured.
import { chmodSync, mkdirSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/core/tokens.js";
import { ConfigError, loadConfig } from "../../src/server/config.js";
import { startTestServer, type TestServer } from "../support/server.js";

const servers: TestServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

describe("file modes of the data directory", () => {
  it("narrows an existing data directory to 0700 and creates the database 0600", async () => {
    const dataDir = path.join(mkdtempSync(path.join(tmpdir(), "agentorch-modes-")), "data");
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    const server = await startTestServer({ dataDir });
    servers.push(server);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    for (const file of ["agentorch.db", "agentorch.db-wal"]) {
      expect(statSync(path.join(dataDir, file)).mode & 0o777, file).toBe(0o600);
    }
  });
});

describe("/metrics with operator tokens configured", () => {
  const viewer = "viewer-token-0123456789";
  it("answers 401 without a valid token and the exposition with one", async () => {
    const server = await startTestServer({ env: { AGENTORCH_TOKENS: `scraper:viewer:${hashToken(viewer)}` } });
    servers.push(server);
    const none = await fetch(`${server.url}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe("Bearer");
    expect(await none.text()).not.toContain("agentorch_");
    expect((await fetch(`${server.url}/metrics`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    const ok = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${viewer}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("agentorch_");
  });

  it("guards the separate metrics port the same way", async () => {
    const server = await startTestServer({ env: { AGENTORCH_TOKENS: `scraper:viewer:${hashToken(viewer)}`, AGENTORCH_METRICS_LISTEN: "127.0.0.1:0" } });
    servers.push(server);
    const port = server.app.metricsAddress()!.port;
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${viewer}` } })).status).toBe(200);
  });

  it("refuses AGENTORCH_METRICS_LISTEN on a non-loopback address without tokens, naming it", () => {
    const load = () => loadConfig({ AGENTORCH_METRICS_LISTEN: "0.0.0.0:9464" });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/AGENTORCH_METRICS_LISTEN is 0\.0\.0\.0:9464, which is not a loopback address/);
    const withTokens = { AGENTORCH_METRICS_LISTEN: "0.0.0.0:9464", AGENTORCH_TOKENS: `s:viewer:${hashToken(viewer)}` };
    // Tokens, and TLS (or cleartext asked for): scrapers send tokens too.
    expect(() => loadConfig(withTokens)).toThrow(/AGENTORCH_METRICS_LISTEN is 0\.0\.0\.0:9464, which is not a loopback address, and TLS is not configured/);
    expect(() => loadConfig({ ...withTokens, AGENTORCH_INSECURE_LISTEN: "1" })).not.toThrow();
  });
});
