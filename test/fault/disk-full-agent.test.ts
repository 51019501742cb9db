/**
 * Disk full from inside an agent: the data directory is a small tmpfs, and an agent's
 * container fills it by writing into its workspace. The operator must still be able to
 * stop and remove agents: StopAgent and RemoveAgent kill the container (checked in Docker)
 * and answer OK, saying the record is pending; health reports the store NOT_SERVING; once
 * space is back (the file is deleted) the records are written by themselves, the store is
 * SERVING again, and nothing acknowledged before is lost (agents, messages).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { DOCKER_AVAILABLE, TEST_IMAGE } from "../support/docker.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { type FaultEngine, faultEngine } from "./support/engine.js";
import { reportFigures } from "./support/fault-config.js";
import { attempt, type Clients, connect, grpc, healthOf, STATUS_NAME, unary } from "./support/grpc.js";
import { type AgentView, status } from "./support/world.js";

const canMount = process.platform === "linux" && process.getuid?.() === 0;
if (!canMount) console.warn("\n!!! DISK-FULL-AGENT SUITE SKIPPED: mounting a small tmpfs needs root (CI runs it as root)\n");
const describeDiskFull = DOCKER_AVAILABLE && (canMount || process.env.CI) ? describe : describe.skip;

const dir = mkdtempSync(path.join(tmpdir(), "agentorch-fault-agentfill-"));
let mounted = false;
let server: TestServer | undefined;
let c: Clients;
let engine: FaultEngine | undefined;
const MESSAGES = 20;

beforeAll(async () => {
  if (!canMount) throw new Error("CI must run the disk-full-agent suite as root (it mounts a tmpfs)");
  const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=32m,mode=0755", "tmpfs", dir], { encoding: "utf8" });
  if (m.status !== 0) throw new Error(`cannot mount a tmpfs: ${m.stderr}`);
  mounted = true;
  engine = await faultEngine();
  server = await startTestServer({
    dataDir: dir,
    env: { AGENTORCH_REAP_INTERVAL_MS: "3600000", AGENTORCH_ENFORCE_INTERVAL_MS: "3600000", ...(engine.dockerHost ? { DOCKER_HOST: engine.dockerHost } : {}) },
  });
  c = connect(server.address);
}, 120_000);

afterAll(async () => {
  c?.close();
  const instance = server?.app.instanceId;
  await server?.stop();
  if (instance && engine) await engine.removeContainersOf(instance);
  await engine?.close();
  if (mounted) spawnSync("umount", ["-l", dir]);
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

const getAgent = async (id: string) => (await unary<{ agent: AgentView }>(c.orch, "GetAgent", { agent_id: id })).agent;
const containersOfAgent = (id: string) =>
  engine!.docker.listContainers({ all: true, filters: { label: [`agentorch.agent-id=${id}`, `agentorch.instance=${server!.app.instanceId}`] } });
const register = (id: string, command: string[]) =>
  unary(c.orch, "RegisterAgent", { agent: { agent_id: id, image: TEST_IMAGE, command, lifecycle: { max_idle: { seconds: "0" } } } });

/** The sequences of a mailbox's unacknowledged messages, read with StreamMessages. */
function mailboxSequences(agentId: string, expected: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const seen: number[] = [];
    const stream = (c.life as unknown as Record<string, (req: object) => grpc.ClientReadableStream<{ message?: { sequence: string } }>>).StreamMessages!({ agent_id: agentId });
    const timer = setTimeout(() => stream.cancel(), 10_000);
    stream.on("data", (d) => {
      if (d.message) seen.push(Number(d.message.sequence));
      if (seen.length >= expected) stream.cancel();
    });
    stream.on("error", (err: grpc.ServiceError) => {
      clearTimeout(timer);
      if (err.code === grpc.status.CANCELLED) resolve(seen);
      else reject(err);
    });
  });
}

describeDiskFull("disk full from inside an agent", () => {
  it("stop/remove still work, nothing lost, health says so", async () => {
    const store = server!.app.store as SqliteStore;
    await register("af-filler", ["sh", "-c", "dd if=/dev/zero of=/workspace/fill bs=1M count=200 2>/dev/null; sleep 3600"]);
    for (const id of ["af-victim", "af-doomed"]) {
      await register(id, ["sleep", "3600"]);
      await unary(c.orch, "StartAgent", { agent_id: id });
    }
    for (let i = 0; i < MESSAGES; i++) {
      await unary(c.life, "SendMessage", { message: { from_agent_id: "af-doomed", to_agent_id: "af-victim", status_update: { task_id: `t${i}`, progress: i } } });
    }
    const victim = await getAgent("af-victim");
    const doomed = await getAgent("af-doomed");
    expect(await healthOf(c, "store")).toBe("SERVING");

    // The store's next write must grow a file (as on a busy service whose WAL grew): then the agent fills the disk.
    store.db.pragma("wal_checkpoint(TRUNCATE)");
    await unary(c.orch, "StartAgent", { agent_id: "af-filler" });
    const filler = await getAgent("af-filler");
    await vi.waitFor(() => expect(statfsSync(dir).bavail).toBe(0), { timeout: 30_000, interval: 200 });
    const fullAt = Date.now();

    // The store cannot write: a registration fails, and health says so.
    const refused = await attempt(c.orch, "RegisterAgent", { agent: { agent_id: "af-new", image: TEST_IMAGE, command: ["true"] } });
    expect(refused.ok ? "OK" : STATUS_NAME[refused.code]).toBe("UNAVAILABLE");
    expect(await healthOf(c, "store")).toBe("NOT_SERVING");
    expect(await healthOf(c, "")).toBe("SERVING");
    const healthz = await fetch(`${server!.url}/healthz`);
    expect([healthz.status, await healthz.text()]).toEqual([200, expect.stringContaining("store NOT_SERVING")]);

    // The operator stops the culprit and another agent, and removes a third: OK, containers gone.
    const answers: Record<string, string> = {};
    for (const id of ["af-filler", "af-victim"]) {
      const out = await attempt<{ agent: AgentView }>(c.orch, "StopAgent", { agent_id: id });
      answers[`StopAgent ${id}`] = out.ok ? "OK" : STATUS_NAME[out.code]!;
      expect([id, out.ok ? "OK" : `${STATUS_NAME[out.code]} ${out.details}`]).toEqual([id, "OK"]);
      if (out.ok) expect([out.value.agent.status, out.value.agent.status_reason]).toEqual([status("idle"), expect.stringContaining("not recorded yet")]);
      expect(await containersOfAgent(id), `${id}'s container is gone`).toEqual([]);
    }
    const removed = await attempt<{ record_pending: boolean }>(c.orch, "RemoveAgent", { agent_id: "af-doomed" });
    answers["RemoveAgent af-doomed"] = removed.ok ? "OK" : STATUS_NAME[removed.code]!;
    expect(removed.ok ? removed.value.record_pending : `${STATUS_NAME[removed.code]} ${removed.details}`).toBe(true);
    expect(await containersOfAgent("af-doomed")).toEqual([]);
    for (const cid of [filler.container_id, victim.container_id, doomed.container_id]) {
      await expect(engine!.docker.getContainer(cid).inspect()).rejects.toMatchObject({ statusCode: 404 });
    }
    const stoppedAfterMs = Date.now() - fullAt;

    // Space is back: the records follow by themselves, health turns SERVING.
    rmSync(path.join(dir, "workspaces", "af-filler", "fill"));
    const freedAt = Date.now();
    await vi.waitFor(async () => expect(await healthOf(c, "store")).toBe("SERVING"), { timeout: 15_000, interval: 100 });
    await vi.waitFor(async () => expect((await attempt(c.orch, "GetAgent", { agent_id: "af-doomed" })).ok).toBe(false), { timeout: 15_000, interval: 100 });
    const recordedAfterMs = Date.now() - freedAt;
    for (const id of ["af-filler", "af-victim"]) {
      const a = await getAgent(id);
      expect([id, a.status, a.status_reason]).toEqual([id, status("idle"), "stopped"]);
    }
    expect(server!.app.agents.busy.size).toBe(0);
    expect(server!.app.agents.unrecordedCount()).toBe(0);
    // Nothing acknowledged is lost: the messages sent before are all in the mailbox.
    expect(await mailboxSequences("af-victim", MESSAGES)).toEqual(Array.from({ length: MESSAGES }, (_, i) => i + 1));
    // And the agents work again.
    expect((await unary<{ agent: AgentView }>(c.orch, "StartAgent", { agent_id: "af-victim" })).agent.status).toBe(status("running"));
    await unary(c.orch, "StopAgent", { agent_id: "af-victim" });
    reportFigures("disk-full-agent", { answers, stoppedAfterMs, recordedAfterMs });
  }, 180_000);
});
