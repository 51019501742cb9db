/**
 * AgentOrchestratorService end to end: the real server on a free port, the real Docker
 * engine, and clients that share no code with the server: @grpc/grpc-js loading the
 * .proto files, `buf curl` through reflection, and plain HTTP/1.1 Connect JSON. What is
 * checked is what those clients see (codes, states, bodies) and what is in Docker.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeDocker, removeContainersOf, TEST_IMAGE } from "../support/docker.js";
import { grpcClient, rpc, rpcError } from "../support/grpc.js";
import { REPO_ROOT, startTestServer } from "../support/server.js";
import type { TestServer } from "../support/server.js";

// ------------------------------------------------------------------ what the clients see, and helpers

interface AgentJson {
  agent_id: string;
  name: string;
  status: string;
  status_reason: string;
  exit_code?: number;
  container_id: string;
  workspace_path: string;
  created_at?: { seconds: string; nanos: number };
  started_at?: { seconds: string; nanos: number };
  restart_count: number;
  execution_count: number;
  config?: { agent_id: string; image: string; command: string[]; policy: string; lifecycle?: { max_restarts?: number } };
}

function execText(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // Asynchronous on purpose: the server runs in this process and must keep answering.
  return new Promise((resolve) => {
    execFile(file, args, { cwd: REPO_ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Ids of containers (running or not) that carry the agent's label. */
async function containersOfAgent(agentId: string, all = true): Promise<string[]> {
  const out = await execText("docker", ["ps", ...(all ? ["-a"] : []), "-q", "--filter", `label=agentorch.agent-id=${agentId}`]);
  if (out.code !== 0) throw new Error(`docker ps failed: ${out.stderr}`);
  return out.stdout.split("\n").filter((l) => l !== "");
}

/** A plain HTTP/1.1 Connect unary call with a JSON body. */
function connectJson(server: TestServer, method: string, body: unknown): Promise<{ status: number; httpVersion: string; json: unknown }> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${server.url}/agentorch.v1.AgentOrchestratorService/${method}`,
      { method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(data) }, agent: false },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, httpVersion: res.httpVersion, json: JSON.parse(text) }));
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}

const runId = randomBytes(3).toString("hex");
const newId = (name: string) => `e2e-${name}-${runId}`;
const agentConfig = (agentId: string, command = ["sh", "-c", "echo hello; sleep 3600"]) => ({ agent_id: agentId, image: TEST_IMAGE, command });

let server: TestServer;
let client: grpc.Client;

beforeAll(async () => {
  server = await startTestServer();
  client = grpcClient(server.address, "agentorch.v1.AgentOrchestratorService");
});

afterAll(async () => {
  client?.close();
  await server?.stop();
  // Whatever a failed test left behind in Docker goes too.
  if (server) await removeContainersOf(server.app.instanceId).catch(() => undefined);
});

// ------------------------------------------------------------------ without containers

describe("AgentOrchestratorService over grpc-js: validation and lookups", () => {
  it.each(["", "a".repeat(65), "..", "a/b", "a\\b", "a_b", "a b", "a@b"])("answers INVALID_ARGUMENT for agent id %j", async (id) => {
    const reg = await rpcError(rpc(client, "RegisterAgent", { agent: agentConfig(id) }));
    expect(reg.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(reg.details).toContain("agent_id");
    expect((await rpcError(rpc(client, "GetAgent", { agent_id: id }))).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it("answers INVALID_ARGUMENT for a missing config and a reserved env name", async () => {
    const missing = await rpcError(rpc(client, "RegisterAgent", {}));
    expect([missing.code, missing.details]).toEqual([grpc.status.INVALID_ARGUMENT, "agent is required"]);
    const env = await rpcError(rpc(client, "RegisterAgent", { agent: { ...agentConfig(newId("env")), env: { LD_PRELOAD: "/x.so" } } }));
    expect(env.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(env.details).toContain("LD_PRELOAD");
  });

  it("answers ALREADY_EXISTS for a duplicate id and NOT_FOUND for an unknown one", async () => {
    const id = newId("dup");
    await rpc(client, "RegisterAgent", { agent: agentConfig(id) });
    try {
      const dup = await rpcError(rpc(client, "RegisterAgent", { agent: agentConfig(id) }));
      expect(dup.code).toBe(grpc.status.ALREADY_EXISTS);
      const unknown = newId("nobody");
      for (const method of ["GetAgent", "StartAgent", "StopAgent", "RemoveAgent", "GetAgentOutput"]) {
        const err = await rpcError(rpc(client, method, { agent_id: unknown }));
        expect(err.code, method).toBe(grpc.status.NOT_FOUND);
        expect(err.details, method).toContain(unknown);
      }
      const never = await rpcError(rpc(client, "GetAgentOutput", { agent_id: id }));
      expect(never.code).toBe(grpc.status.FAILED_PRECONDITION);
    } finally {
      await rpc(client, "RemoveAgent", { agent_id: id, delete_workspace: true });
    }
  });

  it("pages ListAgents with a token and an int64 revision", async () => {
    const ids = [newId("page-a"), newId("page-b"), newId("page-c")];
    for (const id of ids) await rpc(client, "RegisterAgent", { agent: agentConfig(id) });
    try {
      const seen: string[] = [];
      let token = "";
      let pages = 0;
      do {
        const page = await rpc<{ agents: AgentJson[]; next_page_token: string; revision: string }>(client, "ListAgents", {
          page_size: 1,
          page_token: token,
          status: "AGENT_STATUS_IDLE",
        });
        expect(page.agents.length).toBeLessThanOrEqual(1);
        expect(BigInt(page.revision)).toBeGreaterThan(0n);
        seen.push(...page.agents.map((a) => a.agent_id));
        token = page.next_page_token;
        pages++;
      } while (token !== "" && pages < 1000);
      expect(seen.filter((id) => ids.includes(id))).toEqual(ids);
      const bad = await rpcError(rpc(client, "ListAgents", { page_token: "not-a-token" }));
      expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect((await rpcError(rpc(client, "ListAgents", { page_size: -1 }))).code).toBe(grpc.status.INVALID_ARGUMENT);
    } finally {
      for (const id of ids) await rpc(client, "RemoveAgent", { agent_id: id, delete_workspace: true });
    }
  });
});

describe("other clients: buf curl and plain HTTP/1.1 Connect JSON", () => {
  it("registers with `buf curl` (reflection, no --schema) and reads the agent back over HTTP/1.1 Connect JSON", async () => {
    const id = newId("curl");
    const body = JSON.stringify({
      agent: { agent_id: id, image: TEST_IMAGE, command: ["sleep", "60"], lifecycle: { max_idle: "90s", max_restarts: 0 } },
    });
    const curl = await execText(path.join(REPO_ROOT, "node_modules/.bin/buf"), [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-d",
      body,
      `${server.url}/agentorch.v1.AgentOrchestratorService/RegisterAgent`,
    ]);
    try {
      expect(curl.stderr).toBe("");
      expect(curl.code).toBe(0);
      const registered = JSON.parse(curl.stdout) as { agent: { agentId: string; status: string } };
      expect(registered.agent).toMatchObject({ agentId: id, status: "AGENT_STATUS_IDLE" });

      const res = await connectJson(server, "GetAgent", { agentId: id });
      expect(res.httpVersion).toBe("1.1");
      expect(res.status).toBe(200);
      const agent = (res.json as { agent: Record<string, unknown> }).agent;
      expect(agent).toMatchObject({
        agentId: id,
        name: id,
        status: "AGENT_STATUS_IDLE",
        config: {
          agentId: id,
          image: TEST_IMAGE,
          command: ["sleep", "60"],
          policy: "SANDBOX_POLICY_CONTAINER",
          lifecycle: { maxIdle: "90s", maxRestarts: 0 },
        },
      });
      expect(typeof agent.createdAt).toBe("string");
      expect(agent.workspacePath).toEqual(expect.stringContaining(id));
      expect(JSON.stringify(res.json)).not.toMatch(/token/i);

      const missing = await connectJson(server, "GetAgent", { agentId: newId("none") });
      expect(missing.status).toBe(404);
      expect(missing.json).toMatchObject({ code: "not_found" });
      const invalid = await connectJson(server, "GetAgent", { agentId: "a_b" });
      expect(invalid.status).toBe(400);
      expect(invalid.json).toMatchObject({ code: "invalid_argument" });
    } finally {
      await rpc(client, "RemoveAgent", { agent_id: id, delete_workspace: true }).catch(() => undefined);
    }
  });
});

// ------------------------------------------------------------------ with containers

describeDocker("AgentOrchestratorService over grpc-js on a real Docker engine", () => {
  it("drives register -> get -> list -> start -> output -> stop -> remove, and leaves no container", async () => {
    const id = newId("life");
    try {
      const registered = await rpc<{ agent: AgentJson }>(client, "RegisterAgent", { agent: agentConfig(id) });
      expect(registered.agent).toMatchObject({ agent_id: id, status: "AGENT_STATUS_IDLE", container_id: "", execution_count: 0 });
      expect(registered.agent.config?.lifecycle?.max_restarts).toBe(3);

      const got = await rpc<{ agent: AgentJson }>(client, "GetAgent", { agent_id: id });
      expect(got.agent.status).toBe("AGENT_STATUS_IDLE");
      expect(got.agent.started_at).toBeNull();

      const idle = await rpc<{ agents: AgentJson[] }>(client, "ListAgents", { status: "AGENT_STATUS_IDLE" });
      expect(idle.agents.map((a) => a.agent_id)).toContain(id);

      const started = (await rpc<{ agent: AgentJson }>(client, "StartAgent", { agent_id: id })).agent;
      expect(started.status).toBe("AGENT_STATUS_RUNNING");
      expect(started.container_id).not.toBe("");
      expect(started.execution_count).toBe(1);
      expect(started.started_at).not.toBeNull();
      expect(await containersOfAgent(id, false)).toEqual([started.container_id.slice(0, 12)]);

      const running = await rpc<{ agents: AgentJson[] }>(client, "ListAgents", { status: "AGENT_STATUS_RUNNING" });
      expect(running.agents.map((a) => a.agent_id)).toContain(id);

      const again = await rpcError(rpc(client, "StartAgent", { agent_id: id }));
      expect(again.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(again.details).toContain("invalid state");

      let output = "";
      while (!output.includes("hello")) {
        output = (await rpc<{ output: string }>(client, "GetAgentOutput", { agent_id: id, max_bytes: "1024" })).output;
        if (!output.includes("hello")) await new Promise((r) => setTimeout(r, 50));
      }
      expect(output).toBe("hello\n");

      const stopped = (await rpc<{ agent: AgentJson }>(client, "StopAgent", { agent_id: id })).agent;
      expect(stopped.status).toBe("AGENT_STATUS_IDLE");
      expect(await containersOfAgent(id, false)).toEqual([]);
      const stopAgain = await rpcError(rpc(client, "StopAgent", { agent_id: id }));
      expect(stopAgain.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(stopAgain.details).toContain("invalid state");

      await rpc(client, "RemoveAgent", { agent_id: id, delete_workspace: true });
      expect((await rpcError(rpc(client, "GetAgent", { agent_id: id }))).code).toBe(grpc.status.NOT_FOUND);
      expect(await containersOfAgent(id)).toEqual([]);
    } finally {
      await rpc(client, "RemoveAgent", { agent_id: id, delete_workspace: true }).catch(() => undefined);
    }
  });

  it("removes a running agent's container with RemoveAgent", async () => {
    const id = newId("rm");
    try {
      await rpc(client, "RegisterAgent", { agent: agentConfig(id) });
      const started = (await rpc<{ agent: AgentJson }>(client, "StartAgent", { agent_id: id })).agent;
      expect(await containersOfAgent(id)).toEqual([started.container_id.slice(0, 12)]);
      await rpc(client, "RemoveAgent", { agent_id: id, delete_workspace: true });
      expect(await containersOfAgent(id)).toEqual([]);
    } finally {
      await rpc(client, "RemoveAgent", { agent_id: id, delete_workspace: true }).catch(() => undefined);
    }
  });

  it("answers FAILED_PRECONDITION for an image the engine does not have, and the agent stays IDLE", async () => {
    const id = newId("noimg");
    try {
      await rpc(client, "RegisterAgent", { agent: { ...agentConfig(id), image: `agentorch/no-such-image:${runId}` } });
      const err = await rpcError(rpc(client, "StartAgent", { agent_id: id }));
      expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(err.details).toContain("no-such-image");
      const agent = (await rpc<{ agent: AgentJson }>(client, "GetAgent", { agent_id: id })).agent;
      expect(agent.status).toBe("AGENT_STATUS_IDLE");
      expect(await containersOfAgent(id)).toEqual([]);
    } finally {
      await rpc(client, "RemoveAgent", { agent_id: id, delete_workspace: true }).catch(() => undefined);
    }
  });
});
