/**
 * Workspace size limits and noexec (issue 12, items 3 and 12), on a real server, a real
 * engine and real containers, asked through @grpc/grpc-js. What is checked is what a user
 * observes: what the agent's own commands print inside its container (ENOSPC at the limit,
 * "Permission denied" for a binary in a noexec workspace), what the host keeps (the image
 * file, the mounts in /proc/self/mountinfo), and the codes of what cannot be enforced.
 *
 * Mounting needs root: where the tests do not run as root, this file is skipped, loudly.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DOCKER_AVAILABLE, describeDocker, removeContainersOf, TEST_IMAGE } from "../support/docker.js";
import { type GrpcClients, grpcClients, rpc, rpcError, serverStream } from "../support/grpc.js";
import { REPO_ROOT, startTestServer, type TestServer } from "../support/server.js";

const AS_ROOT = process.getuid?.() === 0;
if (DOCKER_AVAILABLE && !AS_ROOT) console.warn("workspace-limits: SKIPPED: mounting workspace images needs root (CI runs as root)");
const describeRoot: typeof describe = AS_ROOT ? describeDocker : (describe.skip as unknown as typeof describe);

const run = randomBytes(3).toString("hex");
const MiB = 1024 * 1024;
let server: TestServer;
let off: TestServer;
let all: TestServer;
let c: GrpcClients;

interface AgentView {
  status: string;
  workspace_path: string;
  config: { workspace: { noexec: boolean }; resources: { disk_bytes: string } };
}

/** The mount at exactly this path, from the test process's own mount table (same namespace as the server). */
function mountOptions(dir: string): string[] | undefined {
  let found: string[] | undefined;
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const f = line.split(" ");
    if (f[4] === dir) found = f[5]!.split(",");
  }
  return found;
}

/** Registers and starts an agent running `script`, waits for its exit and returns what it printed. */
async function runScript(id: string, script: string, extra: object = {}, clients = c): Promise<{ output: string; agent: AgentView }> {
  const { agent } = await rpc<{ agent: AgentView }>(clients.agents, "RegisterAgent", {
    agent: { agent_id: id, image: TEST_IMAGE, command: ["sh", "-c", script], ...extra },
  });
  expect(agent.status).toBe("AGENT_STATUS_IDLE");
  await rpc(clients.agents, "StartAgent", { agent_id: id });
  const deadline = Date.now() + 30_000;
  let now = agent;
  while (Date.now() < deadline) {
    now = (await rpc<{ agent: AgentView }>(clients.agents, "GetAgent", { agent_id: id })).agent;
    if (now.status !== "AGENT_STATUS_RUNNING" && now.status !== "AGENT_STATUS_STARTING") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const s = serverStream<{ data: Buffer }>(clients.agents, "StreamAgentOutput", { agent_id: id, follow: false, tail_bytes: String(64 * 1024) });
    s.on("data", (m) => chunks.push(m.data));
    s.on("end", () => resolve());
    s.on("error", reject);
  });
  return { output: Buffer.concat(chunks).toString("utf8"), agent: now };
}

beforeAll(async () => {
  if (!AS_ROOT || !DOCKER_AVAILABLE) return;
  server = await startTestServer();
  off = await startTestServer({ env: { AGENTORCH_WORKSPACE_QUOTA: "off" } });
  all = await startTestServer({ env: { AGENTORCH_WORKSPACE_QUOTA: "all", AGENTORCH_MAX_AGENT_DISK: "12MiB" } });
  c = grpcClients(server.address);
});

afterAll(async () => {
  c?.close();
  for (const s of [server, off, all]) {
    if (!s) continue;
    // Agents left by a failed test: removing them unmounts their workspaces, so the data dir can go.
    const cc = grpcClients(s.address);
    const { agents } = await rpc<{ agents: { agent_id: string }[] }>(cc.agents, "ListAgents", {}).catch(() => ({ agents: [] }));
    for (const a of agents) await rpc(cc.agents, "RemoveAgent", { agent_id: a.agent_id, delete_workspace: true }).catch(() => undefined);
    cc.close();
    await s.stop();
    await removeContainersOf(s.app.instanceId).catch(() => undefined);
  }
});

describeRoot("workspace size limits", () => {
  it("an agent's writes stop at its disk_bytes with ENOSPC inside its container; the host keeps only a sparse image", async () => {
    const id = `wsq-${run}`;
    const { output, agent } = await runScript(
      id,
      "df -k /workspace | tail -1; dd if=/dev/zero of=/workspace/big bs=1M count=64 2>&1; ls -l /workspace/big; echo done",
      { resources: { disk_bytes: String(16 * MiB) } },
    );
    expect(agent.config.resources.disk_bytes).toBe(String(16 * MiB));
    expect(output).toContain("No space left on device");
    expect(output).toContain("done");
    // df inside: a filesystem of about 16 MiB (less its own overhead), not the host's disk.
    const size = Number(output.split("\n")[0]!.trim().split(/\s+/)[1]);
    expect(size).toBeGreaterThan(10 * 1024);
    expect(size).toBeLessThanOrEqual(16 * 1024);
    // The file stopped below the limit.
    const bigSize = Number(/\s(\d+)\s+\w{3}\s+\d+\s+[\d:]+\s+\/workspace\/big/.exec(output)?.[1]);
    expect(bigSize).toBeLessThanOrEqual(16 * MiB);
    // On the host: the workspace is a mount (nodev, nosuid), backed by an image that holds at most the limit.
    expect(mountOptions(agent.workspace_path)).toEqual(expect.arrayContaining(["nodev", "nosuid"]));
    const image = path.join(server.dataDir, "workspace-images", `${id}.img`);
    expect(statSync(image).size).toBe(16 * MiB);
    expect(statSync(image).blocks * 512).toBeLessThanOrEqual(17 * MiB);

    // Deleting the workspace unmounts it and deletes the image.
    await rpc(c.agents, "RemoveAgent", { agent_id: id, delete_workspace: true });
    expect(mountOptions(agent.workspace_path)).toBeUndefined();
    expect(existsSync(image)).toBe(false);
    expect(existsSync(agent.workspace_path)).toBe(false);
  });

  it("the files survive a lost mount (a reboot): StartAgent mounts the image again", async () => {
    const id = `wsr-${run}`;
    const first = await runScript(id, "echo kept > /workspace/note; echo wrote", { resources: { disk_bytes: String(8 * MiB) } });
    expect(first.output).toContain("wrote");
    const { execFileSync } = await import("node:child_process");
    execFileSync("umount", [first.agent.workspace_path]);
    expect(mountOptions(first.agent.workspace_path)).toBeUndefined();
    await rpc(c.agents, "StartAgent", { agent_id: id });
    expect(mountOptions(first.agent.workspace_path)).toBeDefined();
    expect(readFileSync(path.join(first.agent.workspace_path, "note"), "utf8")).toBe("kept\n");
    await rpc(c.agents, "StopAgent", { agent_id: id });

    // Removed without delete_workspace: the image is kept aside (loop-mount it to look inside), and unmounted.
    const removed = await rpc<{ kept_workspace_path: string }>(c.agents, "RemoveAgent", { agent_id: id });
    expect(removed.kept_workspace_path).toMatch(new RegExp(`/workspaces-removed/${id}-[\\w-]+\\.img$`));
    expect(statSync(removed.kept_workspace_path).size).toBe(8 * MiB);
    expect(mountOptions(first.agent.workspace_path)).toBeUndefined();
    rmSync(removed.kept_workspace_path);
  });

  it("AGENTORCH_WORKSPACE_QUOTA=all: an agent that asks for no size gets the admin's ceiling", async () => {
    const ac = grpcClients(all.address);
    try {
      const id = `wsa-${run}`;
      const { output, agent } = await runScript(id, "dd if=/dev/zero of=/workspace/big bs=1M count=64 2>&1; echo done", {}, ac);
      expect(agent.config.resources.disk_bytes).toBe("0");
      expect(output).toContain("No space left on device");
      expect(statSync(path.join(all.dataDir, "workspace-images", `${id}.img`)).size).toBe(12 * MiB);
      await rpc(ac.agents, "RemoveAgent", { agent_id: id, delete_workspace: true });
    } finally {
      ac.close();
    }
  });

  it("AGENTORCH_WORKSPACE_QUOTA=off: asking for disk_bytes is FAILED_PRECONDITION naming the setting, and nothing is stored", async () => {
    const oc = grpcClients(off.address);
    try {
      const id = `wso-${run}`;
      const err = await rpcError(
        rpc(oc.agents, "RegisterAgent", { agent: { agent_id: id, image: TEST_IMAGE, command: ["true"], resources: { disk_bytes: String(8 * MiB) } } }),
      );
      expect(err.code, err.details).toBe(grpc.status.FAILED_PRECONDITION);
      expect(err.details).toContain("AGENTORCH_WORKSPACE_QUOTA");
      expect((await rpcError(rpc(oc.agents, "GetAgent", { agent_id: id }))).code).toBe(grpc.status.NOT_FOUND);
      expect(existsSync(path.join(off.dataDir, "workspace-images", `${id}.img`))).toBe(false);
    } finally {
      oc.close();
    }
  });
});

describeRoot("workspace.noexec", () => {
  // Busybox picks its applet by the name it is run as.
  const tryExec = "cp /bin/busybox /workspace/echo && /workspace/echo ran-from-workspace; echo exit=$?";

  it("a binary copied into a noexec workspace does not run, with or without a size limit; elsewhere it does", async () => {
    const plain = await runScript(`wsx-plain-${run}`, tryExec);
    expect(plain.output).toContain("ran-from-workspace");
    expect(plain.agent.config.workspace.noexec).toBe(false);

    const limited = await runScript(`wsx-img-${run}`, tryExec, { workspace: { noexec: true }, resources: { disk_bytes: String(8 * MiB) } });
    expect(limited.agent.config.workspace.noexec).toBe(true);
    expect(limited.output).toContain("Permission denied");
    expect(limited.output).not.toContain("ran-from-workspace");

    const oc = grpcClients(off.address);
    try {
      const bind = await runScript(`wsx-bind-${run}`, tryExec, { workspace: { noexec: true } }, oc);
      expect(bind.output).toContain("Permission denied");
      expect(bind.output).not.toContain("ran-from-workspace");
      expect(mountOptions(bind.agent.workspace_path)).toContain("noexec");
      await rpc(oc.agents, "RemoveAgent", { agent_id: `wsx-bind-${run}`, delete_workspace: true });
      expect(mountOptions(bind.agent.workspace_path)).toBeUndefined();
    } finally {
      oc.close();
    }
    for (const id of [`wsx-plain-${run}`, `wsx-img-${run}`]) await rpc(c.agents, "RemoveAgent", { agent_id: id, delete_workspace: true });
  });
});

describeRoot("the CLI", () => {
  it("agents register --disk --noexec-workspace, and agents get shows both", async () => {
    const id = `wsc-${run}`;
    // Asynchronously: the server runs in this process.
    const cli = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [path.join(REPO_ROOT, "bin/agentorch.js"), ...args], { env: { ...process.env, AGENTORCH_ADDR: server.address } }, (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const reg = await cli("agents", "register", id, "--image", TEST_IMAGE, "--disk", "8m", "--noexec-workspace", "-o", "json", "--", "true");
    expect(reg.code, reg.stderr).toBe(0);
    const config = (JSON.parse(reg.stdout) as { config: { resources: { diskBytes: string }; workspace: { noexec: boolean } } }).config;
    expect(config.resources.diskBytes).toBe(String(8 * MiB));
    expect(config.workspace.noexec).toBe(true);
    const shown = await cli("agents", "get", id);
    expect(shown.stdout).toContain("disk 8MiB");
    expect(shown.stdout).toContain("(noexec)");
    expect((await cli("agents", "rm", id, "--delete-workspace")).code).toBe(0);
  });
});
