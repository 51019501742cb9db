/**
 * Disk full, for real: the data directory is a small tmpfs; once it is filled up, every
 * write RPC but StopAgent and RemoveAgent (which stop the container all the same: see
 * disk-full-agent.test.ts) must fail (UNAVAILABLE or INTERNAL, with the cause logged at error level) and
 * change nothing: not the store (a digest of every row), not the service's memory (what
 * the RPCs read back), not Docker (no container created, none stopped). When space is
 * back, the same calls work, without a restart.
 *
 * Then the one write that cannot be undone by a rollback: the start whose RUNNING record
 * fails after the container was created. The container must go, and the agent must be back
 * as it was (a store failure injected once, at exactly that write).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Agent } from "../../src/core/agent.js";
import { mapStoreError } from "../../src/store/sqlite/errors.js";
import type { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { DOCKER_AVAILABLE, TEST_IMAGE } from "../support/docker.js";
import { type FaultEngine, faultEngine } from "./support/engine.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { openStoreDigest, type StoreDigest } from "./support/db-digest.js";
import { reportFigures } from "./support/fault-config.js";
import { attempt, type Clients, connect, grpc, STATUS_NAME, unary } from "./support/grpc.js";
import { type AgentView, status } from "./support/world.js";

const canMount = process.platform === "linux" && process.getuid?.() === 0;
if (!canMount) console.warn("\n!!! STORE-ERROR SUITE SKIPPED: mounting a small tmpfs needs root (CI runs it as root)\n");
const describeDiskFull = DOCKER_AVAILABLE && (canMount || process.env.CI) ? describe : describe.skip;

const dir = mkdtempSync(path.join(tmpdir(), "agentorch-fault-diskfull-"));
let mounted = false;
let server: TestServer | undefined;
let c: Clients;
let store: SqliteStore;
let digest: StoreDigest;
let engine: FaultEngine | undefined;
const filler = path.join(dir, "filler");

beforeAll(async () => {
  if (!canMount) throw new Error("CI must run the store-error suite as root (it mounts a tmpfs)");
  const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", dir], { encoding: "utf8" });
  if (m.status !== 0) throw new Error(`cannot mount a tmpfs: ${m.stderr}`);
  mounted = true;
  engine = await faultEngine();
  server = await startTestServer({
    dataDir: dir,
    env: { AGENTORCH_REAP_INTERVAL_MS: "3600000", AGENTORCH_ENFORCE_INTERVAL_MS: "3600000", ...(engine.dockerHost ? { DOCKER_HOST: engine.dockerHost } : {}) },
  });
  c = connect(server.address);
  store = server.app.store as SqliteStore;
  for (const id of ["sf-run", "sf-idle", "sf-peer", "sf-inject"]) {
    await unary(c.orch, "RegisterAgent", { agent: { agent_id: id, image: TEST_IMAGE, command: ["sleep", "3600"], lifecycle: { max_idle: { seconds: "0" } } } });
  }
  await unary(c.orch, "StartAgent", { agent_id: "sf-run" });
  digest = openStoreDigest(dir);
}, 120_000);

afterAll(async () => {
  digest?.close();
  c?.close();
  const instance = server?.app.instanceId;
  await server?.stop();
  if (instance && engine) await engine?.removeContainersOf(instance);
  await engine?.close();
  if (mounted) spawnSync("umount", ["-l", dir]);
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

/** Fills the file system: the WAL is checkpointed and truncated first, so the next write must grow a file. */
function fillDisk(): void {
  store.db.pragma("wal_checkpoint(TRUNCATE)");
  const chunk = Buffer.alloc(256 * 1024);
  rmSync(filler, { force: true });
  try {
    for (;;) writeFileSync(filler, chunk, { flag: "a" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  }
  // Whatever is left below a chunk, in smaller bites.
  try {
    for (;;) writeFileSync(filler, Buffer.alloc(4096), { flag: "a" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  }
}

const getAgent = async (id: string) => (await unary<{ agent: AgentView }>(c.orch, "GetAgent", { agent_id: id })).agent;
const containersOfAgent = (id: string) => engine!.docker.listContainers({ all: true, filters: { label: [`agentorch.agent-id=${id}`, `agentorch.instance=${server!.app.instanceId}`] } });

describeDiskFull("disk full / store errors", () => {
  it("fails every write RPC on a full disk, changes nothing, logs the cause, and works again once space is back", async () => {
    const run = await getAgent("sf-run");
    const logFrom = server!.logs.length;
    fillDisk();
    const before = digest.digest();
    const writes: [string, grpc.Client, string, object][] = [
      ["RegisterAgent", c.orch, "RegisterAgent", { agent: { agent_id: "sf-new", image: TEST_IMAGE, command: ["sleep", "1"] } }],
      ["StartAgent", c.orch, "StartAgent", { agent_id: "sf-idle" }],
      ["ReportActivity", c.orch, "ReportActivity", { agent_id: "sf-run" }],
      ["SendMessage", c.life, "SendMessage", { message: { from_agent_id: "sf-peer", to_agent_id: "sf-idle", handshake: { agent_id: "sf-peer" } } }],
      ["SubmitTask", c.life, "SubmitTask", { directive: { goal: "never" }, agent_id: "sf-idle" }],
      ["PublishAgentCard", c.life, "PublishAgentCard", { card: { agent_id: "sf-peer", capabilities: ["x"] } }],
      ["UpdateLifecycleConfig", c.life, "UpdateLifecycleConfig", { config: { max_concurrent_tasks: 7 }, update_mask: { paths: ["max_concurrent_tasks"] } }],
    ];
    const codes: Record<string, string> = {};
    for (const [name, client, method, req] of writes) {
      const out = await attempt(client, method, req);
      codes[name] = out.ok ? "OK" : STATUS_NAME[out.code]!;
      expect([name, out.ok ? "OK" : out.code]).toEqual([name, expect.toSatisfy((code) => code === grpc.status.UNAVAILABLE || code === grpc.status.INTERNAL)]);
      expect(digest.digest(), `${name} changed the store`).toBe(before);
    }
    // Nothing changed as the API shows it, nor in Docker.
    const runNow = await getAgent("sf-run");
    expect([runNow.status, runNow.container_id]).toEqual([status("running"), run.container_id]);
    expect((await engine!.docker.getContainer(run.container_id).inspect()).State.Running).toBe(true);
    expect((await getAgent("sf-idle")).status).toBe(status("idle"));
    expect(await containersOfAgent("sf-idle")).toEqual([]);
    expect((await attempt(c.orch, "GetAgent", { agent_id: "sf-new" })).ok).toBe(false);
    expect(server!.app.agents.busy.size, "no agent is left marked busy").toBe(0);
    // The operator sees why, at error level, with SQLite's code.
    const logged = server!.logs.slice(logFrom).filter((l) => l.msg === "store write failed; nothing was changed");
    expect(logged.length).toBeGreaterThan(0);
    expect(logged[0]).toMatchObject({ level: "error", code: "SQLITE_FULL" });

    // Space is back: the same calls work, in the same process.
    rmSync(filler);
    await unary(c.orch, "RegisterAgent", writes[0]![3]);
    const started = (await unary<{ agent: AgentView }>(c.orch, "StartAgent", { agent_id: "sf-idle" })).agent;
    expect(started.status).toBe(status("running"));
    expect((await unary<{ agent: AgentView }>(c.orch, "StopAgent", { agent_id: "sf-run" })).agent.status).toBe(status("idle"));
    await unary(c.life, "SendMessage", writes.find(([name]) => name === "SendMessage")![3]);
    await unary(c.orch, "StopAgent", { agent_id: "sf-idle" });
    reportFigures("store-error", { diskFull: codes, recoveredWithoutRestart: true });
  });

  it("removes the container and restores the agent when the RUNNING record of a start cannot be written", async () => {
    rmSync(filler, { force: true }); // should an earlier case have failed with the disk full
    const realUpdate = store.updateAgent.bind(store);
    let injected = 0;
    store.updateAgent = (agent: Agent) => {
      if (agent.config.agentId === "sf-inject" && agent.status === "running" && injected === 0) {
        injected++;
        throw mapStoreError(new Database.SqliteError("database or disk is full", "SQLITE_FULL"), "write");
      }
      return realUpdate(agent);
    };
    try {
      const out = await attempt(c.orch, "StartAgent", { agent_id: "sf-inject" });
      expect(injected).toBe(1);
      expect(out.ok ? "OK" : STATUS_NAME[out.code]).toBe("UNAVAILABLE");
      // The container was created and started, then removed: nothing of it is left.
      await vi.waitFor(async () => expect(await containersOfAgent("sf-inject")).toEqual([]), { timeout: 15_000, interval: 100 });
      const agent = await getAgent("sf-inject");
      expect([agent.status, agent.container_id]).toEqual([status("idle"), ""]);
      expect(agent.status_reason).toContain("start failed");
      expect(server!.app.agents.busy.size).toBe(0);
    } finally {
      store.updateAgent = realUpdate;
    }
    // And the next start works.
    expect((await unary<{ agent: AgentView }>(c.orch, "StartAgent", { agent_id: "sf-inject" })).agent.status).toBe(status("running"));
    await unary(c.orch, "StopAgent", { agent_id: "sf-inject" });
  });
});
