// Issue 12 item 5: workspace mount points are normalised (posix) before they are checked,
// and must lie under an allowed prefix (AGENTORCH_WORKSPACE_MOUNT_PREFIXES). Before, "//etc"
// and "//sys" started RUNNING with the workspace over /etc and /sys, and "/.dockerenv" was
// INTERNAL. Checked with grpc-js and plain Connect JSON; what Docker mounted is inspected.
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeDocker, removeContainersOf, TEST_IMAGE, testDocker } from "../support/docker.js";
import { type GrpcClients, grpcClients, rpc, rpcError } from "../support/grpc.js";
import { startTestServer, type TestServer } from "../support/server.js";

const run = randomBytes(3).toString("hex");
const DEFAULT_PREFIXES = "/workspace, /home, /data, /mnt, /srv, /opt";
let server: TestServer;
let custom: TestServer;
let c: GrpcClients;

beforeAll(async () => {
  server = await startTestServer();
  custom = await startTestServer({ env: { AGENTORCH_WORKSPACE_MOUNT_PREFIXES: "/agent" } });
  c = grpcClients(server.address);
});

afterAll(async () => {
  c?.close();
  for (const s of [server, custom]) {
    if (!s) continue;
    await s.stop();
    await removeContainersOf(s.app.instanceId).catch(() => undefined);
  }
});

const register = (id: string, mountPoint: string, clients = c) =>
  rpc<{ agent: { config: { workspace: { mount_point: string } } } }>(clients.agents, "RegisterAgent", {
    agent: { agent_id: id, image: TEST_IMAGE, command: ["sleep", "30"], workspace: { mount_point: mountPoint } },
  });

describeDocker("workspace mount points", () => {
  it.each(["//etc", "//sys", "/workspace/../etc", "/.dockerenv", "/proc/x", "/", "/workspacex", "/usr/local"])(
    "refuses %s with INVALID_ARGUMENT naming the allowed prefixes, storing nothing",
    async (mountPoint) => {
      const id = `mnt-${run}-${randomBytes(2).toString("hex")}`;
      const err = await rpcError(register(id, mountPoint));
      expect(err.code, err.details).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toContain(DEFAULT_PREFIXES);
      expect(err.details).toContain("AGENTORCH_WORKSPACE_MOUNT_PREFIXES");
      expect((await rpcError(rpc(c.agents, "GetAgent", { agent_id: id }))).code).toBe(grpc.status.NOT_FOUND);
    },
  );

  it("Connect JSON gets the same answer", async () => {
    const res = await fetch(`${server.url}/agentorch.v1.AgentOrchestratorService/RegisterAgent`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent: { agentId: `mnt-json-${run}`, image: TEST_IMAGE, workspace: { mountPoint: "//etc" } } }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toContain(DEFAULT_PREFIXES);
  });

  it("stores and mounts the normalised path", async () => {
    const id = `mnt-ok-${run}`;
    const { agent } = await register(id, "//data/./x/../work/");
    expect(agent.config.workspace.mount_point).toBe("/data/work");
    const started = await rpc<{ agent: { container_id: string } }>(c.agents, "StartAgent", { agent_id: id });
    const info = await testDocker().getContainer(started.agent.container_id).inspect();
    expect(info.Mounts.map((m) => m.Destination)).toContain("/data/work");
    expect(info.Mounts.map((m) => m.Destination)).not.toContain("/etc");
    await rpc(c.agents, "RemoveAgent", { agent_id: id });
  });

  it("follows the admin's prefixes", async () => {
    const cc = grpcClients(custom.address);
    try {
      const err = await rpcError(register(`mnt-c1-${run}`, "/workspace", cc));
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toContain("allowed: /agent and paths under them");
      const { agent } = await register(`mnt-c2-${run}`, "/agent/ws", cc);
      expect(agent.config.workspace.mount_point).toBe("/agent/ws");
    } finally {
      cc.close();
    }
  });
});
