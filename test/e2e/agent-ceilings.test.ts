// Issue 12 item 6: ceilings on what an operator may ask of a container. Before: no CPU limit
// by default (NanoCpus 0), 1 TiB of memory and 1,000,000 pids accepted, cpus 1e-12 rounded
// to "no limit", and any operator could give an agent a network. Checked with grpc-js
// (tokens: an admin and an operator) and Connect JSON; what Docker received is inspected.
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, it } from "vitest";
import { hashToken } from "../../src/core/tokens.js";
import { describeDocker, removeContainersOf, TEST_IMAGE, testDocker } from "../support/docker.js";
import { type GrpcClients, grpcClients, rpc, rpcError } from "../support/grpc.js";
import { startTestServer, type TestServer } from "../support/server.js";

const run = randomBytes(3).toString("hex");
const ADMIN = `admin-${randomBytes(8).toString("hex")}`;
const OPERATOR = `operator-${randomBytes(8).toString("hex")}`;
let server: TestServer;
let c: GrpcClients;

const as = (token: string) => {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return { metadata: md };
};
const agent = (id: string, extra: object = {}) => ({ agent: { agent_id: id, image: TEST_IMAGE, command: ["sleep", "30"], ...extra } });

beforeAll(async () => {
  server = await startTestServer({
    env: {
      AGENTORCH_TOKENS: `boss:admin:${hashToken(ADMIN)},ops:operator:${hashToken(OPERATOR)}`,
      AGENTORCH_NETWORK_ALLOWLIST: `net-ok-${run}`,
      AGENTORCH_MAX_AGENT_CPUS: "2",
    },
  });
  c = grpcClients(server.address);
});

afterAll(async () => {
  c?.close();
  if (!server) return;
  await server.stop();
  await removeContainersOf(server.app.instanceId).catch(() => undefined);
});

describeDocker("agent ceilings", () => {
  it("gives an agent that asks for nothing one core, and Docker gets NanoCpus, Memory and PidsLimit", async () => {
    const id = `ceil-default-${run}`;
    const { agent: a } = await rpc<{ agent: { config: { resources: { cpus: number } } } }>(c.agents, "RegisterAgent", agent(id), as(OPERATOR));
    expect(a.config.resources.cpus).toBe(1);
    const started = await rpc<{ agent: { container_id: string } }>(c.agents, "StartAgent", { agent_id: id }, as(OPERATOR));
    const info = await testDocker().getContainer(started.agent.container_id).inspect();
    expect(info.HostConfig.NanoCpus).toBe(1e9);
    expect(info.HostConfig.Memory).toBe(512 * 1024 * 1024);
    expect(info.HostConfig.PidsLimit).toBe(256);
    await rpc(c.agents, "RemoveAgent", { agent_id: id }, as(OPERATOR));
  });

  it.each([
    ["memory 1 TiB", { memory_bytes: String(1024 ** 4) }, "resources.memory_bytes", /above the ceiling max_agent_memory_bytes \(8589934592; set by the admin: AGENTORCH_MAX_AGENT_MEMORY/],
    ["pids 1,000,000", { pids_limit: "1000000" }, "resources.pids_limit", /above the ceiling max_agent_pids \(4096/],
    ["cpus 3 over a ceiling of 2", { cpus: 3 }, "resources.cpus", /above the ceiling max_agent_cpus \(2;/],
    ["output 1 GiB", { max_output_bytes: String(1024 ** 3) }, "resources.max_output_bytes", /max_output_bytes/],
    ["disk 1 PiB", { disk_bytes: String(1024 ** 5) }, "resources.disk_bytes", /above the ceiling max_agent_disk_bytes/],
    ["cpus 1e-12", { cpus: 1e-12 }, "resources.cpus", /between 0\.01 and/],
    ["memory 1 MiB", { memory_bytes: String(1024 ** 2) }, "resources.memory_bytes", /between 6291456/],
  ])("refuses %s with INVALID_ARGUMENT naming the limit, storing nothing", async (_what, resources, field, message) => {
    const id = `ceil-bad-${run}-${randomBytes(2).toString("hex")}`;
    const err = await rpcError(rpc(c.agents, "RegisterAgent", agent(id, { resources }), as(ADMIN)));
    expect(err.code, err.details).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toContain(field);
    expect(err.details).toMatch(message);
    expect((await rpcError(rpc(c.agents, "GetAgent", { agent_id: id }, as(ADMIN)))).code).toBe(grpc.status.NOT_FOUND);
  });

  it("shows and changes the ceilings through the lifecycle config (admin only); a lowered ceiling stops a start", async () => {
    const id = `ceil-lower-${run}`;
    const { config } = await rpc<{ config: Record<string, unknown> }>(c.lifecycle, "GetLifecycleConfig", {}, as(OPERATOR));
    expect(config).toMatchObject({ max_agent_memory_bytes: String(8 * 1024 ** 3), max_agent_cpus: 2, max_agent_pids: "4096", default_agent_cpus: 1 });
    await rpc(c.agents, "RegisterAgent", agent(id, { resources: { memory_bytes: String(256 * 1024 ** 2) } }), as(OPERATOR));

    const update = { config: { max_agent_memory_bytes: String(128 * 1024 ** 2) }, update_mask: { paths: ["max_agent_memory_bytes"] } };
    expect((await rpcError(rpc(c.lifecycle, "UpdateLifecycleConfig", update, as(OPERATOR)))).code).toBe(grpc.status.PERMISSION_DENIED);
    const updated = await rpc<{ config: Record<string, unknown> }>(c.lifecycle, "UpdateLifecycleConfig", update, as(ADMIN));
    expect(updated.config.max_agent_memory_bytes).toBe(String(128 * 1024 ** 2));

    const err = await rpcError(rpc(c.agents, "StartAgent", { agent_id: id }, as(OPERATOR)));
    expect(err.code, err.details).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/resources\.memory_bytes 268435456 is above the ceiling max_agent_memory_bytes \(134217728/);
    // A new agent that asks for nothing gets the lower ceiling as its memory.
    const { agent: small } = await rpc<{ agent: { config: { resources: { memory_bytes: string } } } }>(c.agents, "RegisterAgent", agent(`${id}-2`), as(OPERATOR));
    expect(small.config.resources.memory_bytes).toBe(String(128 * 1024 ** 2));
    await rpc(c.lifecycle, "UpdateLifecycleConfig", { config: { max_agent_memory_bytes: String(8 * 1024 ** 3) }, update_mask: { paths: ["max_agent_memory_bytes"] } }, as(ADMIN));
  });

  it("SANDBOX_POLICY_CONTAINER_DIRECT needs the admin role or the allowlist, for agents and task templates", async () => {
    const direct = { policy: "SANDBOX_POLICY_CONTAINER_DIRECT" };
    const denied = await rpcError(rpc(c.agents, "RegisterAgent", agent(`net-no-${run}`, direct), as(OPERATOR)));
    expect(denied.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(denied.details).toMatch(/only the admin role may ask for it, or an agent id or image on AGENTORCH_NETWORK_ALLOWLIST/);

    const task = { directive: { goal: "g" }, template: { image: TEST_IMAGE, command: ["true"], ...direct } };
    const taskDenied = await rpcError(rpc(c.lifecycle, "SubmitTask", task, as(OPERATOR)));
    expect(taskDenied.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(taskDenied.details).toContain("template.policy");

    // Connect JSON: the same refusal.
    const res = await fetch(`${server.url}/agentorch.v1.AgentOrchestratorService/RegisterAgent`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${OPERATOR}` },
      body: JSON.stringify({ agent: { agentId: `net-json-${run}`, image: TEST_IMAGE, policy: "SANDBOX_POLICY_CONTAINER_DIRECT" } }),
    });
    expect(res.status).toBe(403);

    const byAdmin = `net-admin-${run}`;
    await rpc(c.agents, "RegisterAgent", agent(byAdmin, direct), as(ADMIN));
    const started = await rpc<{ agent: { container_id: string } }>(c.agents, "StartAgent", { agent_id: byAdmin }, as(ADMIN));
    expect((await testDocker().getContainer(started.agent.container_id).inspect()).HostConfig.NetworkMode).toBe("bridge");
    await rpc(c.agents, "RemoveAgent", { agent_id: byAdmin }, as(ADMIN));

    await rpc(c.agents, "RegisterAgent", agent(`net-ok-${run}`, direct), as(OPERATOR));
    await rpc(c.agents, "RegisterAgent", agent(`net-ok-${run}-2`, direct), as(OPERATOR));
    expect((await rpcError(rpc(c.agents, "RegisterAgent", agent(`net-ok-${run}x`, direct), as(OPERATOR)))).code).toBe(grpc.status.PERMISSION_DENIED);
  });
});
