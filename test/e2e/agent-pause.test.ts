/**
 * Idle agents paused instead of stopped (lifecycle.idle_action PAUSE), end to end: the real
 * server, the real Docker engine, a @grpc/grpc-js client. What is checked is what a user
 * sees (status, reason, container id) and what Docker says (State.Paused), and that the
 * agent's processes are really frozen and really kept: a counter it writes into its
 * workspace stops while it is PAUSED and goes on from where it was when it is resumed.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { describeDocker, removeContainersOf, TEST_IMAGE } from "../support/docker.js";
import { type GrpcClients, grpcClients, rpc } from "../support/grpc.js";
import { startTestServer, type TestServer } from "../support/server.js";

interface AgentJson {
  agent_id: string;
  status: string;
  status_reason: string;
  container_id: string;
  workspace_path: string;
}

const ENV = { AGENTORCH_ENFORCE_INTERVAL_MS: "100" };
let server: TestServer;
let clients: GrpcClients;
let instanceId = "";

function docker(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("docker", args, { timeout: 20_000 }, (err, stdout, stderr) => (err ? reject(new Error(`docker ${args.join(" ")}: ${stderr}`)) : resolve(stdout.trim())));
  });
}

const getAgent = async (agentId: string) => (await rpc<{ agent: AgentJson }>(clients.agents, "GetAgent", { agent_id: agentId })).agent;

async function until(agentId: string, status: string, timeout = 10_000): Promise<AgentJson> {
  return vi.waitFor(
    async () => {
      const a = await getAgent(agentId);
      if (a.status !== status) throw new Error(`${agentId} is ${a.status} (${a.status_reason}), waiting for ${status}`);
      return a;
    },
    { timeout, interval: 50 },
  );
}

const counter = (a: AgentJson) => Number(readFileSync(path.join(a.workspace_path, "count"), "utf8").trim() || "0");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function open(dataDir: string): Promise<void> {
  server = await startTestServer({ env: ENV, dataDir });
  clients = grpcClients(server.address);
  instanceId = server.app.instanceId;
}

describeDocker("idle agents paused instead of stopped (real engine)", () => {
  // Kept across the restart below (a data directory of the test server's own is deleted when it stops).
  const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-pause-"));
  beforeAll(() => open(dataDir));
  afterAll(async () => {
    clients?.close();
    await server?.stop();
    await removeContainersOf(instanceId);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("pauses at max idle, keeps the processes frozen, and every kind of work resumes the same container", async () => {
    await rpc(clients.agents, "RegisterAgent", {
      agent: {
        agent_id: "napper",
        image: TEST_IMAGE,
        // Counts in its workspace every 50 ms: frozen while paused, from where it was after.
        command: ["sh", "-c", "n=0; while true; do n=$((n+1)); echo $n > /workspace/count; sleep 0.05; done"],
        lifecycle: { max_idle: { seconds: 1 }, idle_action: "IDLE_ACTION_PAUSE" },
      },
    });
    await rpc(clients.agents, "RegisterAgent", { agent: { agent_id: "caller", image: TEST_IMAGE, command: ["true"] } });
    const started = (await rpc<{ agent: AgentJson }>(clients.agents, "StartAgent", { agent_id: "napper" })).agent;
    expect((await getAgent("napper")).status).toBe("AGENT_STATUS_RUNNING");

    let paused = await until("napper", "AGENT_STATUS_PAUSED");
    expect(paused).toMatchObject({ status_reason: "idle timeout", container_id: started.container_id });
    expect(await docker(["inspect", "-f", "{{.State.Paused}}", started.container_id])).toBe("true");
    const frozenAt = counter(paused);
    await sleep(400);
    expect(counter(paused)).toBe(frozenAt);

    // ReportActivity
    let resumed = (await rpc<{ agent: AgentJson }>(clients.agents, "ReportActivity", { agent_id: "napper" })).agent;
    expect(resumed).toMatchObject({ status: "AGENT_STATUS_RUNNING", status_reason: "resumed by reported activity", container_id: started.container_id });
    expect(await docker(["inspect", "-f", "{{.State.Paused}}", started.container_id])).toBe("false");
    await vi.waitFor(() => expect(counter(resumed)).toBeGreaterThan(frozenAt + 2), { timeout: 3000 });

    // A message to its mailbox
    paused = await until("napper", "AGENT_STATUS_PAUSED");
    await rpc(clients.lifecycle, "SendMessage", { message: { from_agent_id: "caller", to_agent_id: "napper", status_update: { task_id: "t", progress: 1, message: "wake up" } } });
    resumed = await until("napper", "AGENT_STATUS_RUNNING", 3000);
    expect(resumed).toMatchObject({ status_reason: "resumed by a message", container_id: started.container_id });

    // StartAgent
    await until("napper", "AGENT_STATUS_PAUSED");
    resumed = (await rpc<{ agent: AgentJson }>(clients.agents, "StartAgent", { agent_id: "napper" })).agent;
    expect(resumed).toMatchObject({ status: "AGENT_STATUS_RUNNING", status_reason: "resumed by a start", container_id: started.container_id });

    // `docker unpause` behind the service's back is noticed
    await until("napper", "AGENT_STATUS_PAUSED");
    await docker(["unpause", started.container_id]);
    resumed = await until("napper", "AGENT_STATUS_RUNNING", 3000);
    expect(resumed.status_reason).toBe("unpaused outside agentorch");
    expect(await docker(["ps", "-aq", "--filter", `label=agentorch.agent-id=napper`, "--filter", `label=agentorch.instance=${instanceId}`])).toBe(
      started.container_id.slice(0, 12),
    );
  });

  it("a restart adopts the paused container as PAUSED; StopAgent from PAUSED removes it", async () => {
    const paused = await until("napper", "AGENT_STATUS_PAUSED");
    clients.close();
    await server.stop();
    await open(dataDir);
    expect(await getAgent("napper")).toMatchObject({ status: "AGENT_STATUS_PAUSED", container_id: paused.container_id });
    expect(await docker(["inspect", "-f", "{{.State.Paused}}", paused.container_id])).toBe("true");

    const stopped = (await rpc<{ agent: AgentJson }>(clients.agents, "StopAgent", { agent_id: "napper" })).agent;
    expect(stopped.status).toBe("AGENT_STATUS_IDLE");
    expect(await docker(["ps", "-aq", "--filter", `label=agentorch.agent-id=napper`, "--filter", `label=agentorch.instance=${instanceId}`])).toBe("");
    await rpc(clients.agents, "RemoveAgent", { agent_id: "napper", delete_workspace: true });
  });
});
