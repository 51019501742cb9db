/**
 * The Docker ContainerBackend against the real engine: the hardening Docker reports and
 * what a process inside the container can and cannot do, exits and OOM seen by wait()
 * and by the event stream, capped and followed output, idempotent kill/remove, and the
 * errors a caller sees (missing image, unreachable engine). Every container carries this
 * run's instance label and is removed in afterAll.
 */
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:http";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDockerBackend } from "../../src/backends/docker/docker-backend.js";
import type { Engine } from "../../src/backends/docker/engine-call.js";
import { unixParam } from "../../src/backends/docker/docker-time.js";
import { LineSplitter } from "../../src/backends/docker/events.js";
import { LogDemuxer, TailBuffer } from "../../src/backends/docker/log-demux.js";
import { oomRecorded } from "../../src/backends/docker/oom.js";
import { createFsWorkspaces } from "../../src/backends/fs-workspaces.js";
import { isAgentorchError } from "../../src/core/errors.js";
import type { ContainerBackend, ContainerEvent, ContainerSpec, Workspaces } from "../../src/core/ports.js";
import { createTestLogger, type LogLine } from "../fakes/clock-and-logger.js";
import {
  containersOf,
  describeDocker,
  removeContainersOf,
  TEST_DOCKER_HOST,
  TEST_IMAGE,
  testDocker,
  uniqueInstanceId,
} from "../support/docker.js";

const MiB = 1024 * 1024;

/** The adapter's internals on the test's own client, for the one helper tested directly. */
const rawEngine = (): Engine => ({ docker: testDocker(), endpoint: "test", logger: createTestLogger() });

/** Polls until check() returns a value (not undefined), or fails after a generous timeout. */
async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
}

function kindOf(err: unknown): string {
  return isAgentorchError(err) ? err.kind : `not an AgentorchError: ${String(err)}`;
}

const text = (data: Uint8Array) => Buffer.from(data).toString("utf8");

describeDocker.concurrent("docker backend (real engine)", () => {
  const instanceId = uniqueInstanceId("dockerbe");
  const listInstanceId = uniqueInstanceId("dockerbe-list");
  const watchInstanceId = uniqueInstanceId("dockerbe-watch");
  const logLines: LogLine[] = [];
  const logger = createTestLogger(logLines);
  const events: ContainerEvent[] = [];
  const watchAbort = new AbortController();
  let connected = 0;
  let backend: ContainerBackend;
  let workspaces: Workspaces;
  let base: string;
  let socketDir: string;

  function spec(agentId: string, command: string[], overrides: Partial<ContainerSpec> = {}): ContainerSpec {
    return {
      image: TEST_IMAGE,
      command,
      env: {},
      policy: "container",
      resources: { memoryBytes: 64 * MiB, cpus: 0, pidsLimit: 64, maxOutputBytes: 64 * 1024 },
      workspace: { hostPath: join(base, "ws", agentId), mountPoint: "/workspace", readOnly: false },
      labels: { agentId, instanceId },
      ...overrides,
    };
  }

  /** Spawns with a fresh workspace, waits for the exit, and returns exit and output. */
  async function runToExit(s: ContainerSpec) {
    await workspaces.create(s.labels.agentId);
    const { containerId } = await backend.spawn(s);
    const exit = await backend.wait(containerId);
    const output = await backend.output(containerId, 1 * MiB);
    return { containerId, exit, output: text(output.data) };
  }

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), "agentorch-docker-"));
    socketDir = await mkdtemp(join(tmpdir(), "agentorch-sock-"));
    // World-writable on the host: only the read-only mount keeps the container out.
    await chmod(socketDir, 0o777);
    backend = createDockerBackend({ dockerHost: TEST_DOCKER_HOST, logger });
    workspaces = createFsWorkspaces({ root: join(base, "ws"), containerUser: "65534:65534", logger });
    backend.watch(
      instanceId,
      {
        onEvent: (e) => events.push(e),
        onConnected: () => connected++,
        onDisconnected: () => undefined,
      },
      watchAbort.signal,
    );
    await eventually(() => (connected > 0 ? true : undefined), "the event stream to connect");
  });

  afterAll(async () => {
    watchAbort.abort();
    for (const id of [instanceId, listInstanceId, watchInstanceId]) await removeContainersOf(id);
    for (const id of [instanceId, listInstanceId, watchInstanceId]) expect(await containersOf(id)).toEqual([]);
    await rm(base, { recursive: true, force: true });
    await rm(socketDir, { recursive: true, force: true });
  });

  it("pings the engine and knows which images exist", async () => {
    await backend.ping();
    expect(backend.endpoint).toMatch(/^(unix|tcp):\/\//);
    expect(await backend.imageExists(TEST_IMAGE)).toBe(true);
    expect(await backend.imageExists("agentorch/does-not-exist:never")).toBe(false);
  });

  it("creates the container with every hardening option, as Docker reports it", async () => {
    const hostPath = await workspaces.create("harden");
    const s = spec("harden", ["sleep", "30"], {
      resources: { memoryBytes: 48 * MiB, cpus: 0.5, pidsLimit: 32, maxOutputBytes: 16 * 1024 },
      socketDir,
      labels: { agentId: "harden", instanceId, taskId: "task-1" },
      env: { GREETING: "hi" },
    });
    const { containerId, startedAt } = await backend.spawn(s);
    expect(startedAt).toBeGreaterThan(Date.now() - 60_000);
    const raw = await testDocker().getContainer(containerId).inspect();
    const hc = raw.HostConfig;
    expect(raw.Name).toMatch(/^\/agentorch-harden-[0-9a-f]{6}$/);
    expect(hc.CapDrop).toEqual(["ALL"]);
    expect(hc.CapAdd ?? []).toEqual([]);
    expect(hc.SecurityOpt).toEqual(["no-new-privileges"]);
    expect(hc.ReadonlyRootfs).toBe(true);
    expect(hc.Tmpfs).toEqual({ "/tmp": "rw,noexec,nosuid,nodev,size=64m" });
    expect(hc.NetworkMode).toBe("none");
    expect(hc.PidsLimit).toBe(32);
    expect(hc.Memory).toBe(48 * MiB);
    expect(hc.MemorySwap).toBe(48 * MiB);
    expect(hc.NanoCpus).toBe(500_000_000);
    expect(hc.Init).toBe(true);
    expect(hc.Privileged).toBe(false);
    expect(hc.AutoRemove).toBe(false);
    expect(hc.Binds).toEqual([`${hostPath}:/workspace:rw`, `${socketDir}:/run/agentorch:ro`]);
    expect(hc.LogConfig).toEqual({ Type: "json-file", Config: { "max-size": String(1 * MiB), "max-file": "2" } });
    expect(raw.Config.User).toBe("65534:65534");
    expect(raw.Config.WorkingDir).toBe("/workspace");
    expect(raw.Config.Env).toContain("GREETING=hi");
    expect(raw.Config.Labels).toMatchObject({
      "agentorch.managed": "true",
      "agentorch.agent-id": "harden",
      "agentorch.instance": instanceId,
      "agentorch.task-id": "task-1",
    });

    const info = await backend.inspect(containerId);
    expect(info).toMatchObject({ containerId, running: true, oomKilled: false, labels: { agentId: "harden", instanceId, taskId: "task-1" } });
    expect(info?.exitCode).toBeUndefined();
    expect(info?.finishedAt).toBeUndefined();
    expect(Math.abs(info!.startedAt! - startedAt)).toBeLessThan(1000);
    await backend.remove(containerId);
  });

  it("leaves the process unprivileged: nobody, read-only root, noexec /tmp, writable workspace, no network", async () => {
    const script = [
      "echo uid=$(id -u) gid=$(id -g)",
      "echo root=$(touch /rootfile 2>&1 && echo writable)",
      "echo data > /tmp/f && echo tmp=writable || echo tmp=readonly",
      "printf '#!/bin/sh\\necho ran\\n' > /tmp/s && chmod +x /tmp/s",
      "/tmp/s 2>/dev/null && echo tmpexec=yes || echo tmpexec=no",
      "echo from-container > /workspace/hello.txt && echo ws=writable || echo ws=readonly",
      "echo sock=$(touch /run/agentorch/x 2>&1 && echo writable)",
      "echo net=$(ls /sys/class/net | tr '\\n' ' ')",
      "echo pwd=$(pwd) env=$SECRET_ISH",
    ].join("\n");
    const s = spec("inside", ["sh", "-c", script], { socketDir, env: { SECRET_ISH: "s3cr3t-value-4711" } });
    const { exit, output } = await runToExit(s);
    expect(exit).toEqual({ exitCode: 0, oomKilled: false });
    expect(output).toContain("uid=65534 gid=65534");
    expect(output).toMatch(/root=.*Read-only file system/);
    expect(output).toContain("tmp=writable");
    expect(output).toContain("tmpexec=no");
    expect(output).not.toContain("ran");
    expect(output).toContain("ws=writable");
    expect(output).toMatch(/sock=.*Read-only file system/);
    expect(output).toContain("net=lo\n");
    expect(output).toContain("pwd=/workspace env=s3cr3t-value-4711");
    // The host sees what the container wrote, owned by the container's user.
    const written = join(base, "ws", "inside", "hello.txt");
    expect(await readFile(written, "utf8")).toBe("from-container\n");
    expect((await stat(written)).uid).toBe(65534);
    // Env values never reach the logs (they carry the agent's token).
    expect(JSON.stringify(logLines)).not.toContain("s3cr3t-value-4711");
  });

  it("mounts a read-only workspace read-only, at any mount point", async () => {
    const hostPath = await workspaces.create("readonly");
    const s = spec("readonly", ["sh", "-c", "pwd; touch /data/work/x 2>/dev/null && echo ws=writable || echo ws=readonly"], {
      workspace: { hostPath, mountPoint: "/data/work", readOnly: true },
    });
    const { exit, output } = await runToExit(s);
    expect(exit.exitCode).toBe(0);
    expect(output).toBe("/data/work\nws=readonly\n");
    await expect(stat(join(hostPath, "x"))).rejects.toThrow();
  });

  it("gives container_direct a bridge network (eth0)", async () => {
    const { output } = await runToExit(spec("direct", ["ls", "/sys/class/net"], { policy: "container_direct" }));
    expect(output.split("\n")).toContain("eth0");
    expect(output.split("\n")).toContain("lo");
  });

  it("reports exit codes through wait(), inspect() and the event stream", async () => {
    const ok = await runToExit(spec("exit-0", ["true"]));
    const three = await runToExit(spec("exit-3", ["sh", "-c", "exit 3"]));
    expect(ok.exit).toEqual({ exitCode: 0, oomKilled: false });
    expect(three.exit).toEqual({ exitCode: 3, oomKilled: false });
    const info = await backend.inspect(three.containerId);
    expect(info).toMatchObject({ running: false, exitCode: 3, oomKilled: false });
    expect(info?.startedAt).toBeTypeOf("number");
    expect(info?.finishedAt).toBeTypeOf("number");
    const die = await eventually(
      () => events.find((e) => e.containerId === three.containerId && e.type === "die"),
      "the die event of the exit-3 container",
    );
    expect(die).toMatchObject({ exitCode: 3, labels: { agentId: "exit-3", instanceId } });
    expect(events.some((e) => e.containerId === three.containerId && e.type === "start")).toBe(true);
    await eventually(() => events.find((e) => e.containerId === ok.containerId && e.type === "die" && e.exitCode === 0), "die 0");
  });

  it("reports an OOM kill: wait(), inspect() and the oom + die 137 events", async () => {
    // The sleep matters: an OOM in the first milliseconds, before the engine watches the
    // container's memory events, goes unreported (seen here under load: no oom event,
    // OOMKilled false, FinishedAt before StartedAt). Real agents run a while before they OOM.
    const s = spec("oom", ["sh", "-c", "sleep 0.5; head -c 64m /dev/zero | tail"], {
      resources: { memoryBytes: 8 * MiB, cpus: 0, pidsLimit: 64, maxOutputBytes: 64 * 1024 },
    });
    const { containerId, exit } = await runToExit(s);
    expect(exit).toEqual({ exitCode: 137, oomKilled: true });
    expect(await backend.inspect(containerId)).toMatchObject({ running: false, exitCode: 137, oomKilled: true });
    await eventually(() => events.find((e) => e.containerId === containerId && e.type === "oom"), "the oom event");
    const die = await eventually(() => events.find((e) => e.containerId === containerId && e.type === "die"), "the die event");
    expect(die.exitCode).toBe(137);
    // The engine's event log agrees (wait() consults it when State.OOMKilled is missing).
    const startedAt = (await testDocker().getContainer(containerId).inspect()).State.StartedAt;
    expect(await oomRecorded(rawEngine(), containerId, startedAt, Date.now(), undefined)).toBe(true);
  });

  it("does not take a SIGKILL from outside for an OOM", async () => {
    await workspaces.create("external-kill");
    const { containerId } = await backend.spawn(spec("external-kill", ["sleep", "300"]));
    await testDocker().getContainer(containerId).kill({ signal: "SIGKILL" });
    expect(await backend.wait(containerId)).toEqual({ exitCode: 137, oomKilled: false });
    expect(await backend.inspect(containerId)).toMatchObject({ exitCode: 137, oomKilled: false });
  });

  it("pauses and unpauses: inspect, list and events say so; repeats are no-ops; kill and remove work on a paused container", async () => {
    await workspaces.create("pausing");
    const { containerId } = await backend.spawn(spec("pausing", ["sleep", "300"]));
    await backend.pause(containerId);
    await backend.pause(containerId); // already paused: success
    expect(await backend.inspect(containerId)).toMatchObject({ running: true, paused: true });
    expect((await backend.list(instanceId)).find((c) => c.containerId === containerId)?.paused).toBe(true);
    await backend.unpause(containerId);
    await backend.unpause(containerId); // not paused: success
    expect((await backend.inspect(containerId))?.paused).toBeUndefined();
    await eventually(() => (["pause", "unpause"].every((t) => events.some((e) => e.containerId === containerId && e.type === t)) ? true : undefined), "pause and unpause events");
    await backend.pause(containerId);
    await backend.kill(containerId); // SIGKILL reaches a frozen container
    expect(await backend.wait(containerId)).toEqual({ exitCode: 137, oomKilled: false });
    expect(kindOf(await errorOf(backend.pause(containerId)))).toBe("failed_precondition");
    await backend.remove(containerId);
    expect(kindOf(await errorOf(backend.unpause(containerId)))).toBe("not_found");
  });

  it("caps output: the last maxBytes of stdout and stderr, truncated, and the engine keeps a bounded log", async () => {
    // ~5 MB of bulk output, then interleaved stdout/stderr lines. stdout and stderr are
    // separate pipes that the engine drains separately (a backlog on one lets lines of the
    // other overtake it): the sleeps keep the order of the last lines defined.
    const script =
      'yes "bulk line ................................................................................" | head -n 50000; sleep 0.3;' +
      ' i=0; while [ $i -lt 200 ]; do echo "out line $i"; echo "err line $i" >&2; i=$((i+1)); done;' +
      " sleep 0.3; echo on-stderr >&2; sleep 0.3; echo LAST-LINE";
    const s = spec("output", ["sh", "-c", script], {
      resources: { memoryBytes: 64 * MiB, cpus: 0, pidsLimit: 64, maxOutputBytes: 2048 },
    });
    await workspaces.create("output");
    const { containerId } = await backend.spawn(s);
    expect((await backend.wait(containerId)).exitCode).toBe(0);

    const capped = await backend.output(containerId, 2048);
    expect(capped.data.length).toBe(2048);
    expect(capped.truncated).toBe(true);
    const tail = text(capped.data);
    // (Which of "out line 199" and "err line 199" comes last is up to the engine.)
    expect(tail).toMatch(/\n(out|err) line 199\non-stderr\nLAST-LINE\n$/);
    expect(tail).not.toContain("bulk");

    // The engine keeps a bounded log: two json files of 1 MiB, far less than the ~5 MB written.
    const all = await backend.output(containerId, 16 * MiB);
    expect(all.data.length).toBeGreaterThan(100 * 1024);
    expect(all.data.length).toBeLessThan(2 * MiB);
    expect(text(all.data).slice(-10)).toBe("LAST-LINE\n");
    expect(text(all.data)).toContain("err line 199\n");

    const small = await backend.output(containerId, 10);
    expect(text(small.data)).toBe("LAST-LINE\n");
    expect(small.truncated).toBe(true);
  });

  it("returns the whole output untruncated when it fits", async () => {
    const { containerId } = await runToExit(spec("short-output", ["sh", "-c", "echo one; echo two >&2; echo three"]));
    const out = await backend.output(containerId, 1024);
    expect(out.truncated).toBe(false);
    expect(text(out.data).split("\n").sort()).toEqual(["", "one", "three", "two"]);
  });

  it("follows output: the tail first, then live chunks, without gaps or repeats, until the container stops", async () => {
    await workspaces.create("follow");
    const script = "i=0; while [ $i -lt 40 ]; do echo line $i; i=$((i+1)); sleep 0.03; done";
    const { containerId } = await backend.spawn(spec("follow", ["sh", "-c", script]));
    // Join while it is writing, so the hand-over from tail to live is exercised.
    await eventually(async () => (text((await backend.output(containerId, 4096)).data).includes("line 5\n") ? true : undefined), "some output");
    const chunks: string[] = [];
    for await (const chunk of backend.followOutput(containerId, 1 * MiB, new AbortController().signal)) chunks.push(text(chunk));
    expect(chunks.length).toBeGreaterThan(1);
    const expected = Array.from({ length: 40 }, (_, i) => `line ${i}\n`).join("");
    expect(chunks.join("")).toBe(expected);
  });

  it("follows output from a tail of tailBytes and ends when the signal aborts", async () => {
    await workspaces.create("follow-abort");
    const { containerId } = await backend.spawn(
      spec("follow-abort", ["sh", "-c", "echo 0123456789abcdef; while true; do echo tick; sleep 0.1; done"]),
    );
    await eventually(async () => ((await backend.output(containerId, 100)).data.length > 20 ? true : undefined), "output");
    const abort = new AbortController();
    const chunks: string[] = [];
    for await (const chunk of backend.followOutput(containerId, 5, abort.signal)) {
      chunks.push(text(chunk));
      if (chunks.length === 3) abort.abort();
    }
    expect(chunks).toHaveLength(3);
    expect(chunks[0]).toBe("tick\n");
    expect(chunks[1]).toBe("tick\n");
    expect((await backend.inspect(containerId))?.running).toBe(true);
    await backend.remove(containerId);
  });

  it("kills and removes idempotently; unknown containers are fine to kill/remove, not_found to wait/output", async () => {
    await workspaces.create("killme");
    const { containerId } = await backend.spawn(spec("killme", ["sleep", "300"]));
    await backend.kill(containerId);
    expect(await backend.wait(containerId)).toEqual({ exitCode: 137, oomKilled: false });
    await backend.kill(containerId);
    expect(await backend.inspect(containerId)).toMatchObject({ running: false, exitCode: 137 });
    await backend.remove(containerId);
    await backend.remove(containerId);
    await backend.kill(containerId);
    expect(await backend.inspect(containerId)).toBeUndefined();
    expect(kindOf(await errorOf(backend.wait(containerId)))).toBe("not_found");
    expect(kindOf(await errorOf(backend.output(containerId, 100)))).toBe("not_found");
    await backend.remove("no-such-container-agentorch");
    await backend.kill("no-such-container-agentorch");

    // remove() of a running container kills it.
    const running = await backend.spawn(spec("killme", ["sleep", "300"]));
    await backend.remove(running.containerId);
    expect(await backend.inspect(running.containerId)).toBeUndefined();
  });

  it("refuses a missing image with failed_precondition and leaves nothing behind", async () => {
    await workspaces.create("noimage");
    const err = await errorOf(backend.spawn(spec("noimage", ["true"], { image: "agentorch/not-here:nope" })));
    expect(kindOf(err)).toBe("failed_precondition");
    expect((err as Error).message).toContain('image "agentorch/not-here:nope" is not present');
    const left = await containersOf(instanceId);
    expect(left.filter((c) => c.Labels["agentorch.agent-id"] === "noimage")).toEqual([]);
  });

  it("removes the created container when start fails", async () => {
    // A file bind-mounted onto a directory: create succeeds, start fails.
    const file = join(base, "not-a-directory");
    await writeFile(file, "x");
    const s = spec("nostart", ["true"], { workspace: { hostPath: file, mountPoint: "/workspace", readOnly: false } });
    const err = await errorOf(backend.spawn(s));
    expect((err as Error).message).toContain("container did not start");
    expect(kindOf(err)).toBe("failed_precondition");
    const left = await containersOf(instanceId);
    expect(left.filter((c) => c.Labels["agentorch.agent-id"] === "nostart")).toEqual([]);
  });

  it("honours an abort: an aborted spawn leaves no container", async () => {
    await workspaces.create("aborted");
    const abort = new AbortController();
    const pending = backend.spawn(spec("aborted", ["sleep", "300"]), abort.signal);
    setTimeout(() => abort.abort(), 5);
    const err = await pending.then(
      (r) => r,
      (e: unknown) => e,
    );
    if (isAgentorchError(err)) expect(err.kind).toBe("canceled");
    else throw new Error("spawn finished although it was aborted within 5 ms: cannot check the abort path");
    const left = await eventually(async () => {
      const l = (await containersOf(instanceId)).filter((c) => c.Labels["agentorch.agent-id"] === "aborted");
      return l.length === 0 ? l : undefined;
    }, "the aborted spawn's container to be removed");
    expect(left).toEqual([]);
    expect(kindOf(await errorOf(backend.spawn(spec("aborted", ["true"]), AbortSignal.abort())))).toBe("canceled");
  });

  it("refuses a configuration the engine rejects with invalid_argument", async () => {
    await workspaces.create("tiny");
    const err = await errorOf(
      backend.spawn(spec("tiny", ["true"], { resources: { memoryBytes: 4 * MiB, cpus: 0, pidsLimit: 8, maxOutputBytes: 1024 } })),
    );
    expect(kindOf(err)).toBe("invalid_argument");
    expect((err as Error).message).toMatch(/memory/i);
  });

  it("lists exactly one instance's containers, running or not", async () => {
    const mine = [
      await backend.spawn(spec("list-a", ["sleep", "300"], { labels: { agentId: "list-a", instanceId: listInstanceId } })),
      await backend.spawn(spec("list-b", ["true"], { labels: { agentId: "list-b", instanceId: listInstanceId, taskId: "t-9" } })),
    ];
    await backend.wait(mine[1]!.containerId);
    const listed = await backend.list(listInstanceId);
    expect(listed.map((c) => c.containerId).sort()).toEqual(mine.map((m) => m.containerId).sort());
    const a = listed.find((c) => c.labels.agentId === "list-a");
    const b = listed.find((c) => c.labels.agentId === "list-b");
    expect(a).toMatchObject({ running: true, labels: { instanceId: listInstanceId } });
    expect(b).toMatchObject({ running: false, exitCode: 0, labels: { instanceId: listInstanceId, taskId: "t-9" } });
    expect(await backend.list(uniqueInstanceId("nobody"))).toEqual([]);
  });

  it("stops watching cleanly when the signal aborts", async () => {
    const seenByAborted: ContainerEvent[] = [];
    const seenByLive: ContainerEvent[] = [];
    let abortedConnected = 0;
    let liveConnected = 0;
    const abort = new AbortController();
    const live = new AbortController();
    backend.watch(
      watchInstanceId,
      { onEvent: (e) => seenByAborted.push(e), onConnected: () => abortedConnected++, onDisconnected: () => undefined },
      abort.signal,
    );
    backend.watch(
      watchInstanceId,
      { onEvent: (e) => seenByLive.push(e), onConnected: () => liveConnected++, onDisconnected: () => undefined },
      live.signal,
    );
    await eventually(() => (abortedConnected > 0 && liveConnected > 0 ? true : undefined), "both watchers to connect");
    abort.abort();
    const { containerId } = await backend.spawn(
      spec("watched", ["sh", "-c", "exit 5"], { labels: { agentId: "watched", instanceId: watchInstanceId } }),
    );
    // The live watcher is the barrier: once it has the die event, the aborted one would have it too.
    const die = await eventually(() => seenByLive.find((e) => e.containerId === containerId && e.type === "die"), "die");
    live.abort();
    expect(die.exitCode).toBe(5);
    expect(seenByAborted).toEqual([]);
    expect(abortedConnected).toBe(1);
    // This run's own watcher never saw the other instance's container.
    expect(events.some((e) => e.containerId === containerId)).toBe(false);
  });

  it("answers unavailable, naming the socket, when the engine cannot be reached", async () => {
    const missing = "unix:///tmp/nonexistent-docker.sock";
    const offline = createDockerBackend({ dockerHost: missing, logger });
    expect(offline.endpoint).toBe(missing);
    for (const call of [
      () => offline.ping(),
      () => offline.imageExists(TEST_IMAGE),
      () => offline.spawn(spec("offline", ["true"])),
      () => offline.list(instanceId),
      () => offline.inspect("abc"),
      () => offline.kill("abc"),
      () => offline.remove("abc"),
      () => offline.wait("abc"),
      () => offline.output("abc", 10),
    ]) {
      const err = await errorOf(call());
      expect(kindOf(err)).toBe("unavailable");
      expect((err as Error).message).toContain("/tmp/nonexistent-docker.sock");
    }
    const followErr = await errorOf(
      (async () => {
        for await (const _ of offline.followOutput("abc", 10, new AbortController().signal)) void _;
      })(),
    );
    expect(kindOf(followErr)).toBe("unavailable");

    // watch keeps retrying, reporting each failure, and stops when aborted.
    const failures: Error[] = [];
    const abort = new AbortController();
    offline.watch(
      instanceId,
      { onEvent: () => undefined, onConnected: () => undefined, onDisconnected: (e) => failures.push(e) },
      abort.signal,
    );
    await eventually(() => (failures.length >= 2 ? true : undefined), "two failed connection attempts");
    abort.abort();
    expect(kindOf(failures[0])).toBe("unavailable");
    expect(failures[0]!.message).toContain("/tmp/nonexistent-docker.sock");
  });
});

/**
 * The event-stream follower against a scripted engine on a unix socket: the real engine
 * cannot be made to drop the stream on demand without stopping it for everyone.
 */
describe("docker backend watch (scripted engine)", () => {
  it("parses events split across chunks, reconnects after the stream ends, and closes it on abort", async () => {
    const dir = await mkdtemp(join(tmpdir(), "agentorch-fake-engine-"));
    const socketPath = join(dir, "docker.sock");
    const requests: string[] = [];
    let openStreams = 0;
    let closedStreams = 0;
    const labels = { "agentorch.agent-id": "a1", "agentorch.instance": "inst-1", "agentorch.task-id": "t1" };
    const event = (action: string, extra: Record<string, string> = {}) =>
      JSON.stringify({ Type: "container", Action: action, Actor: { ID: `c-${action}`, Attributes: { ...labels, ...extra } }, time: 1, timeNano: 1_700_000_000_123_000_000 }) + "\n";
    const server = createServer((req, res) => {
      requests.push(req.url ?? "");
      openStreams++;
      req.socket.on("close", () => closedStreams++);
      res.writeHead(200, { "Content-Type": "application/json" });
      res.flushHeaders();
      if (openStreams === 1) {
        const die = event("die", { exitCode: "3" });
        res.write(die.slice(0, 17));
        setTimeout(() => {
          res.write(die.slice(17) + "not json\n" + event("exec_start"));
          // A multi-byte character split across chunks must survive too.
          const start = Buffer.from(event("start", { name: "ünïcode" }));
          res.write(start.subarray(0, start.indexOf(0xc3) + 1));
          setTimeout(() => res.end(start.subarray(start.indexOf(0xc3) + 1)), 20);
        }, 20);
      } else {
        res.write(event("oom"));
      }
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
    try {
      const lines: LogLine[] = [];
      const backend = createDockerBackend({ dockerHost: `unix://${socketPath}`, logger: createTestLogger(lines) });
      const got: ContainerEvent[] = [];
      const calls: string[] = [];
      const abort = new AbortController();
      backend.watch(
        "inst-1",
        {
          onEvent: (e) => {
            got.push(e);
            if (e.type === "start") throw new Error("a handler bug must not stop the watch");
          },
          onConnected: () => calls.push("connected"),
          onDisconnected: (err) => calls.push(`disconnected:${kindOf(err)}`),
        },
        abort.signal,
      );
      await eventually(() => (got.some((e) => e.type === "oom") ? true : undefined), "the event from the second connection");
      expect(calls).toEqual(["connected", "disconnected:unavailable", "connected"]);
      expect(got).toEqual([
        { type: "die", containerId: "c-die", exitCode: 3, labels: { agentId: "a1", instanceId: "inst-1", taskId: "t1" }, time: 1_700_000_000_123 },
        { type: "start", containerId: "c-start", labels: { agentId: "a1", instanceId: "inst-1", taskId: "t1" }, time: 1_700_000_000_123 },
        { type: "oom", containerId: "c-oom", labels: { agentId: "a1", instanceId: "inst-1", taskId: "t1" }, time: 1_700_000_000_123 },
      ]);
      const filters = JSON.parse(new URL(requests[0]!, "http://x").searchParams.get("filters")!) as Record<string, string[]>;
      expect(filters).toEqual({ type: ["container"], event: ["start", "die", "oom", "destroy", "pause", "unpause"], label: ["agentorch.instance=inst-1"] });
      expect(lines.some((l) => l.level === "error" && l.msg?.includes("onEvent handler threw"))).toBe(true);

      abort.abort();
      await eventually(() => (closedStreams === 2 ? true : undefined), "the aborted stream to be closed");
      expect(calls).toEqual(["connected", "disconnected:unavailable", "connected"]);
      expect(openStreams).toBe(2);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** The pure decoding pieces, under any chunking the engine's HTTP stream may produce. */
describe("docker log and event stream decoding", () => {
  const frame = (stream: 1 | 2, payload: Buffer) => {
    const head = Buffer.alloc(8);
    head[0] = stream;
    head.writeUInt32BE(payload.length, 4);
    return Buffer.concat([head, payload]);
  };
  const chunked = (all: Buffer, cuts: number[]) => {
    const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
    const out: Buffer[] = [];
    let at = 0;
    for (const p of [...points, all.length]) {
      out.push(all.subarray(at, p));
      at = p;
    }
    return out;
  };

  it("demultiplexes frames in order whatever the chunk boundaries, and keeps a bounded tail", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(1 as const, 2 as const), fc.uint8Array({ maxLength: 40 })), { maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.nat({ max: 200 }),
        (frames, cuts, max) => {
          const wire = Buffer.concat(frames.map(([s, p]) => frame(s, Buffer.from(p))));
          const demux = new LogDemuxer();
          const tail = new TailBuffer(max);
          const seen: { stream: string; payload: Buffer }[] = [];
          for (const chunk of chunked(wire, cuts)) {
            for (const f of demux.push(chunk)) {
              seen.push(f);
              tail.push(f.payload);
            }
          }
          expect(seen.map((f) => [f.stream === "stdout" ? 1 : 2, [...f.payload]])).toEqual(
            frames.map(([s, p]) => [s, [...p]]),
          );
          const all = Buffer.concat(frames.map(([, p]) => Buffer.from(p)));
          const result = tail.result();
          expect(Buffer.from(result.data).equals(all.subarray(Math.max(0, all.length - max)))).toBe(true);
          expect(result.truncated).toBe(all.length > max);
        },
      ),
    );
  });

  it("splits NDJSON into lines across chunks, multi-byte characters included", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }), { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 15 }), (texts, cuts) => {
        const lines = texts.map((t) => t.replace(/\s/g, "x"));
        const splitter = new LineSplitter();
        const got: string[] = [];
        for (const chunk of chunked(Buffer.from(lines.map((l) => `${l}\n`).join("")), cuts)) got.push(...splitter.push(chunk));
        expect(got).toEqual(lines);
      }),
    );
  });

  it("maps engine time stamps to since parameters exactly", () => {
    expect(unixParam("2026-11-21T16:35:29.613580549Z")).toBe(`${Date.UTC(2026, 10, 21, 16, 35, 29) / 1000}.613580549`);
    expect(unixParam("2026-11-21T16:35:29Z")).toBe(`${Date.UTC(2026, 10, 21, 16, 35, 29) / 1000}.000000000`);
    expect(unixParam("garbage")).toBeUndefined();
  });
});
