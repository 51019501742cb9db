/**
 * Credentials: operator tokens (configuration, constant-time check, the secure default)
 * and agent tokens (made at each start, found by the index, revoked when the container
 * stops, exits, is lost or the agent is removed), on the real SQLite store and a fake backend.
 */
import * as crypto from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { AgentService } from "../../src/core/agent-service.js";
import { AgentTokenIndex, OperatorTokens } from "../../src/core/auth.js";
import { EventBus } from "../../src/core/event-bus.js";
import { hashToken } from "../../src/core/tokens.js";
import { ConfigError, isLoopbackHost, loadConfig, parseOperatorTokens } from "../../src/server/config.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { createTestLogger } from "../fakes/clock-and-logger.js";
import { ManualClock } from "../fakes/clock-and-logger.js";
import { FakeBackend } from "../fakes/fake-backend.js";
import { FakeWorkspaces } from "../fakes/fake-workspaces.js";

vi.mock("node:crypto", async (importOriginal) => {
  const real = await importOriginal<typeof crypto>();
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) };
});

const HEX = (s: string) => hashToken(s);

describe("OperatorTokens", () => {
  const tokens = new OperatorTokens([
    { name: "a", role: "admin", hash: HEX("tok-a") },
    { name: "o", role: "operator", hash: HEX("tok-o") },
    { name: "v", role: "viewer", hash: HEX("tok-v") },
  ]);

  it("finds the entry a token hashes to", () => {
    expect(tokens.find("tok-o")).toMatchObject({ name: "o", role: "operator" });
    expect(tokens.find("tok-v")?.role).toBe("viewer");
    expect(tokens.find("tok-x")).toBeUndefined();
    expect(tokens.find("")).toBeUndefined();
    expect(tokens.find(HEX("tok-a"))).toBeUndefined(); // the hash itself is not a token
  });

  it("compares with every configured hash in constant time, whether or not one matches", () => {
    const spy = vi.mocked(crypto.timingSafeEqual);
    for (const presented of ["tok-a", "tok-v", "unknown"]) {
      spy.mockClear();
      tokens.find(presented);
      expect(spy, presented).toHaveBeenCalledTimes(3);
    }
  });

  it("is open when none are configured", () => {
    expect(new OperatorTokens([]).open).toBe(true);
    expect(tokens.open).toBe(false);
  });
});

describe("token configuration", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "agentorch-tokens-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const h1 = HEX("one");
  const h2 = HEX("two");

  it("reads AGENTORCH_TOKENS and AGENTORCH_TOKENS_FILE (comments and blank lines skipped), hashes lowercased", () => {
    const file = path.join(dir, "tokens");
    writeFileSync(file, `# operators\n\n  bob:viewer:${h2.toUpperCase()}  \r\n`);
    expect(parseOperatorTokens({ AGENTORCH_TOKENS: ` alice:admin:${h1} ,`, AGENTORCH_TOKENS_FILE: file })).toEqual([
      { name: "alice", role: "admin", hash: h1 },
      { name: "bob", role: "viewer", hash: h2 },
    ]);
    expect(parseOperatorTokens({})).toEqual([]);
  });

  it.each([
    ["a raw token instead of a hash", "ci:operator:s3cr3t-raw-token", "SHA-256"],
    ["a bare token", "s3cr3t-raw-token", "three fields"],
    ["an unknown role", `ci:root:${HEX("x")}`, "admin, operator, viewer"],
    ["a bad name", `c i:admin:${HEX("x")}`, "name"],
    ["a duplicate name", `ci:admin:${h1},ci:viewer:${h2}`, "used twice"],
    ["a duplicate hash", `ci:admin:${h1},cd:viewer:${h1}`, "listed twice"],
  ])("refuses %s without echoing the entry", (_why, value, says) => {
    let caught: unknown;
    try {
      parseOperatorTokens({ AGENTORCH_TOKENS: value });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const err = caught as ConfigError;
    expect(err.variable).toBe("AGENTORCH_TOKENS");
    expect(err.message).toContain(says);
    expect(err.message).not.toContain("s3cr3t");
    expect(err.message).not.toContain(h1);
    expect(err.message).not.toContain(HEX("x"));
  });

  it("names the file and line of a bad entry, and an unreadable file", () => {
    const file = path.join(dir, "bad");
    writeFileSync(file, `ok:admin:${h1}\nbroken\n`);
    expect(() => parseOperatorTokens({ AGENTORCH_TOKENS_FILE: file })).toThrow(`AGENTORCH_TOKENS_FILE ${file} line 2`);
    expect(() => parseOperatorTokens({ AGENTORCH_TOKENS_FILE: path.join(dir, "missing") })).toThrow(/AGENTORCH_TOKENS_FILE cannot be read: ENOENT/);
  });
});

describe("the secure default", () => {
  it.each(["127.0.0.1", "127.1.2.3", "::1", "localhost", "LOCALHOST", "::ffff:127.0.0.1"])("%s is loopback", (h) => expect(isLoopbackHost(h)).toBe(true));
  it.each(["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", "128.0.0.1", "::ffff:10.0.0.1"])("%s is not", (h) =>
    expect(isLoopbackHost(h)).toBe(false),
  );

  it("refuses to listen beyond loopback without tokens, naming the setting that asked for it", () => {
    for (const [env, argv, variable] of [
      [{ AGENTORCH_LISTEN: "0.0.0.0:50051" }, [], "AGENTORCH_LISTEN"],
      [{}, ["--listen", "[::]:80"], "--listen"],
    ] as const) {
      let caught: unknown;
      try {
        loadConfig(env, argv);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).variable).toBe(variable);
      expect((caught as ConfigError).message).toMatch(/not a loopback address.*no operator tokens.*AGENTORCH_TOKENS/);
    }
  });

  it("listens anywhere with tokens, and on loopback without", () => {
    const withTokens = loadConfig({ AGENTORCH_LISTEN: "0.0.0.0:1", AGENTORCH_TOKENS: `a:admin:${HEX("a")}`, AGENTORCH_INSECURE_LISTEN: "1" });
    expect(withTokens.listen.host).toBe("0.0.0.0");
    expect(withTokens.operatorTokens).toHaveLength(1);
    expect(loadConfig({ AGENTORCH_LISTEN: "[::1]:1" }).operatorTokens).toEqual([]);
  });

  it("refuses a data directory too long for the agent socket", () => {
    expect(() => loadConfig({ AGENTORCH_DATA_DIR: `/tmp/${"d".repeat(120)}` })).toThrow(/AGENTORCH_DATA_DIR is too long for the agent socket/);
  });
});

// ------------------------------------------------------------------ agent tokens

const stores: SqliteStore[] = [];
const services: AgentService[] = [];
afterEach(async () => {
  for (const s of services.splice(0)) await s.close();
  for (const s of stores.splice(0)) s.close();
});

async function agentWorld() {
  const logger = createTestLogger();
  const store = openSqliteStore({ path: ":memory:", logger });
  stores.push(store);
  const backend = new FakeBackend();
  const bus = new EventBus();
  const index = new AgentTokenIndex(store, bus);
  const service = new AgentService({
    store,
    backend,
    workspaces: new FakeWorkspaces(),
    clock: new ManualClock(),
    logger,
    bus,
    config: { instanceId: "auth-test", maxRunning: 10, imageAllowlist: [], enforceIntervalMs: 0, restartBackoffMs: 10 },
  });
  await service.open();
  services.push(service);
  const register = (id: string) => service.register({ agentId: id, image: "busybox:test", command: ["sleep", "1"] });
  /** The token the container of the agent's current start received. */
  const tokenOf = (id: string) => {
    const c = backend.running().find((x) => x.spec.labels.agentId === id);
    if (!c) throw new Error(`no running container for ${id}`);
    return c.spec.env.AGENTORCH_TOKEN!;
  };
  return { store, backend, bus, index, service, register, tokenOf };
}

describe("AgentTokenIndex", () => {
  it("knows each running agent by its token, and forgets it when the agent is stopped", async () => {
    const { index, service, register, tokenOf } = await agentWorld();
    await register("a");
    await register("b");
    await service.start("a");
    await service.start("b");
    const ta = tokenOf("a");
    const tb = tokenOf("b");
    expect(ta).not.toBe(tb);
    expect(index.agentFor(ta)).toBe("a");
    expect(index.agentFor(tb)).toBe("b");
    expect(index.agentFor("nope")).toBeUndefined();
    expect(index.agentFor(service.get("a").tokenHash)).toBeUndefined();

    await service.stop("a");
    expect(index.agentFor(ta)).toBeUndefined();
    expect(index.agentFor(tb)).toBe("b");
  });

  it("gives each start a new token; the old one stays revoked", async () => {
    const { index, service, register, tokenOf } = await agentWorld();
    await register("a");
    await service.start("a");
    const first = tokenOf("a");
    await service.stop("a");
    await service.start("a");
    const second = tokenOf("a");
    expect(second).not.toBe(first);
    expect(index.agentFor(first)).toBeUndefined();
    expect(index.agentFor(second)).toBe("a");
    expect(index.size).toBe(1);
  });

  it("revokes the token when the container exits by itself, is lost, or the agent is removed", async () => {
    const { index, service, register, tokenOf, backend } = await agentWorld();
    for (const id of ["exits", "lost", "removed"]) {
      await register(id);
      await service.start(id);
    }
    const t = { exits: tokenOf("exits"), lost: tokenOf("lost"), removed: tokenOf("removed") };
    backend.exit(service.get("exits").containerId, 3);
    await vi.waitFor(() => expect(service.get("exits").status).toBe("failed"));
    expect(service.get("exits").tokenHash).toBe("");
    expect(index.agentFor(t.exits)).toBeUndefined();

    backend.removeFromOutside(service.get("lost").containerId); // docker rm -f
    await vi.waitFor(() => expect(service.get("lost").statusReason).toBe("container lost"));
    expect(index.agentFor(t.lost)).toBeUndefined();

    expect(index.agentFor(t.removed)).toBe("removed");
    await service.remove("removed", { deleteWorkspace: false });
    expect(index.agentFor(t.removed)).toBeUndefined();
    expect(index.size).toBe(0);
  });

  it("is rebuilt from the store (a service restart keeps running agents' tokens valid)", async () => {
    const { store, bus, service, register, tokenOf } = await agentWorld();
    await register("a");
    await service.start("a");
    const token = tokenOf("a");
    const rebuilt = new AgentTokenIndex(store, bus);
    expect(rebuilt.agentFor(token)).toBe("a");
    rebuilt.close();
    await service.stop("a");
    expect(rebuilt.agentFor(token)).toBe("a"); // closed: no longer follows the bus
    expect(new AgentTokenIndex(store, new EventBus()).agentFor(token)).toBeUndefined();
  });
});
