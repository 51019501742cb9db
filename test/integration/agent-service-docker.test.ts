/**
 * AgentService on a real Docker engine, the real SQLite store and real workspaces:
 * what the foundation issue promises about containers, checked in Docker itself.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { createDockerBackend } from "../../src/backends/docker/docker-backend.js";
import { createFsWorkspaces } from "../../src/backends/fs-workspaces.js";
import { AgentService } from "../../src/core/agent-service.js";
import type { AgentConfigInput } from "../../src/core/agent-config.js";
import { EventBus } from "../../src/core/event-bus.js";
import { systemClock } from "../../src/core/ports.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { createTestLogger } from "../fakes/clock-and-logger.js";
import { containersOf, describeDocker, removeContainersOf, TEST_DOCKER_HOST, TEST_IMAGE, testDocker, uniqueInstanceId } from "../support/docker.js";

const instanceId = uniqueInstanceId("agents");
const dataDir = mkdtempSync(join(tmpdir(), "agentorch-agents-"));
const logger = createTestLogger();
let store: SqliteStore;
let service: AgentService;

function open(): AgentService {
  const s = new AgentService({
    store,
    backend: createDockerBackend({ dockerHost: TEST_DOCKER_HOST, logger }),
    workspaces: createFsWorkspaces({ root: join(dataDir, "workspaces"), containerUser: "65534:65534", logger }),
    clock: systemClock,
    logger,
    bus: new EventBus(),
    config: { instanceId, maxRunning: 50, imageAllowlist: [], enforceIntervalMs: 0, restartBackoffMs: 100 },
  });
  return s;
}

const cfg = (agentId: string, script: string, extra: Partial<AgentConfigInput> = {}): AgentConfigInput => ({
  agentId: `${instanceId}-${agentId}`.slice(0, 64),
  image: TEST_IMAGE,
  command: ["sh", "-c", script],
  ...extra,
});

describeDocker("AgentService on a real engine", () => {
  beforeAll(async () => {
    store = openSqliteStore({ path: join(dataDir, "agentorch.db"), logger });
    service = open();
    await service.open();
  });

  afterAll(async () => {
    await service?.close();
    store?.close();
    await removeContainersOf(instanceId);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("starts a hardened container with a writable workspace, and stop removes it", async () => {
    const a = await service.register(cfg("hard", "echo hello > /workspace/greeting; sleep 300"));
    const started = await service.start(a.config.agentId);
    const info = await testDocker().getContainer(started.containerId).inspect();
    expect(info.HostConfig.CapDrop).toEqual(["ALL"]);
    expect(info.HostConfig.SecurityOpt).toContain("no-new-privileges");
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(info.HostConfig.NetworkMode).toBe("none");
    expect(info.HostConfig.PidsLimit).toBe(256);
    expect(info.HostConfig.Memory).toBe(512 * 1024 * 1024);
    expect(info.HostConfig.Init).toBe(true);
    expect(info.Config.User).toBe("65534:65534");
    expect(info.Config.Labels["agentorch.agent-id"]).toBe(a.config.agentId);
    expect(info.Config.Labels["agentorch.instance"]).toBe(instanceId);
    expect(info.Config.Env.some((e) => e.startsWith("AGENTORCH_TOKEN="))).toBe(true);
    await vi.waitFor(() => expect(readFileSync(join(a.workspacePath, "greeting"), "utf8")).toBe("hello\n"), { timeout: 5000 });
    const stopped = await service.stop(a.config.agentId);
    expect(stopped.status).toBe("idle");
    await expect(testDocker().getContainer(started.containerId).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it("notices containers that exit by themselves: exit 0 -> IDLE, exit 3 -> FAILED, OOM -> FAILED saying OOM", async () => {
    const ok = await service.register(cfg("exit0", "echo done"));
    const bad = await service.register(cfg("exit3", "echo failing >&2; exit 3"));
    const oom = await service.register(
      cfg("oom", 'sleep 0.5; x=a; while true; do x="$x$x"; done', { resources: { memoryBytes: 8 * 1024 * 1024 } }),
    );
    await Promise.all([ok, bad, oom].map((a) => service.start(a.config.agentId)));
    await vi.waitFor(
      () => {
        expect(service.get(ok.config.agentId)).toMatchObject({ status: "idle", exitCode: 0 });
        expect(service.get(bad.config.agentId)).toMatchObject({ status: "failed", exitCode: 3, statusReason: "exited with code 3" });
        expect(service.get(oom.config.agentId).status).toBe("failed");
      },
      { timeout: 15_000, interval: 100 },
    );
    expect(service.get(oom.config.agentId).statusReason).toContain("OOM");
    const out = await service.output(bad.config.agentId, 0);
    expect(Buffer.from(out.data).toString()).toContain("failing");
    // Exited containers are saved (output) and removed: nothing is left in Docker.
    await vi.waitFor(async () => {
      const left = (await containersOf(instanceId)).filter((c) => [ok, bad, oom].some((a) => c.Labels["agentorch.agent-id"] === a.config.agentId));
      expect(left).toEqual([]);
    });
  });

  it("restarts a crashed agent when restart_on_crash is set, up to max_restarts", async () => {
    const a = await service.register(cfg("crashy", "sleep 0.3; exit 1", { lifecycle: { restartOnCrash: true, maxRestarts: 2 } }));
    await service.start(a.config.agentId);
    await vi.waitFor(
      () => {
        const now = service.get(a.config.agentId);
        expect(now.status).toBe("failed");
        expect(now.crashRestarts).toBe(2);
      },
      { timeout: 20_000, interval: 100 },
    );
    expect(service.get(a.config.agentId).executionCount).toBe(3);
  });

  it("caps output at max_output_bytes", async () => {
    const a = await service.register(
      cfg("chatty", "i=0; while [ $i -lt 3000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; echo LAST; sleep 300", {
        resources: { maxOutputBytes: 4096 },
      }),
    );
    await service.start(a.config.agentId);
    await vi.waitFor(async () => {
      const out = await service.output(a.config.agentId, 0);
      expect(Buffer.from(out.data).toString()).toContain("LAST");
    }, { timeout: 10_000 });
    const out = await service.output(a.config.agentId, 0);
    expect(out.data.byteLength).toBeLessThanOrEqual(4096);
    expect(out.truncated).toBe(true);
    await service.stop(a.config.agentId);
  });

  it("after a restart of the service: adopts running containers, removes orphans, marks lost ones", async () => {
    const keep = await service.register(cfg("keep", "sleep 300"));
    const lose = await service.register(cfg("lose", "sleep 300"));
    const kept = await service.start(keep.config.agentId);
    const lost = await service.start(lose.config.agentId);
    await service.close();
    // While the service is down: one container is removed, an orphan of ours appears.
    await testDocker().getContainer(lost.containerId).remove({ force: true });
    const orphan = await testDocker().createContainer({
      Image: TEST_IMAGE,
      Cmd: ["sleep", "300"],
      Labels: { "agentorch.managed": "true", "agentorch.instance": instanceId, "agentorch.agent-id": "no-such-agent" },
    });
    await orphan.start();

    service = open();
    await service.open();
    expect(service.get(keep.config.agentId)).toMatchObject({ status: "running", containerId: kept.containerId });
    expect(service.get(lose.config.agentId)).toMatchObject({ status: "failed", statusReason: "container lost" });
    await expect(orphan.inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect((await testDocker().getContainer(kept.containerId).inspect()).State.Running).toBe(true);
    // The adopted container is still supervised.
    await testDocker().getContainer(kept.containerId).kill();
    await vi.waitFor(() => expect(service.get(keep.config.agentId).status).toBe("failed"), { timeout: 5000 });
  });
});
