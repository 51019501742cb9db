// Issue 12 item 4: env values are write-only. A viewer (gRPC, Connect JSON, the CLI, watch
// streams, replay after a restart) sees the names only; the database holds a value in one
// table alone (env_secrets); no log line carries one; containers still receive them, also
// at a start after a service restart, and a task template's values reach its container too.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeDocker, removeContainersOf, TEST_IMAGE } from "../support/docker.js";
import { type GrpcClients, grpcClients, rpc, serverStream, StreamReader } from "../support/grpc.js";
import { REPO_ROOT, startTestServer, type TestServer } from "../support/server.js";

const SECRET = `s3cr3t-${randomBytes(8).toString("hex")}`;
const run = randomBytes(3).toString("hex");
const BIN = path.join(REPO_ROOT, "bin/agentorch.js");
// Proves the container got the value without the value being in the command or the output (both are stored).
const CHECK = ["sh", "-c", 'printf %s "$API_KEY" | sha256sum | cut -c1-64'];
const MATCH = `${createHash("sha256").update(SECRET).digest("hex")}\n`;

interface AgentMsg {
  agent_id: string;
  status: string;
  config: { env: Record<string, string>; env_names: string[] };
}

let dataDir: string;
let server: TestServer;
let c: GrpcClients;
const instances = new Set<string>();

async function startServer(): Promise<void> {
  server = await startTestServer({ dataDir });
  instances.add(server.app.instanceId);
  c = grpcClients(server.address);
}

async function stopServer(): Promise<void> {
  c.close();
  await server.stop();
}

async function waitIdle(id: string, executions: number): Promise<AgentMsg> {
  for (let i = 0; i < 200; i++) {
    const { agent } = await rpc<{ agent: AgentMsg & { execution_count: number } }>(c.agents, "GetAgent", { agent_id: id });
    if (agent.status === "AGENT_STATUS_IDLE" && agent.execution_count >= executions) return agent;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`agent ${id} did not go back to IDLE`);
}

/** The output once there is some (the exit is written before the output tail is saved). */
async function output(id: string): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const out = (await rpc<{ output: string }>(c.agents, "GetAgentOutput", { agent_id: id, max_bytes: 4096 })).output;
    if (out !== "") return out;
    await new Promise((r) => setTimeout(r, 100));
  }
  return "";
}

function cli(args: string[]): Promise<string> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, AGENTORCH_ADDR: server.address, CI: "1", AGENTORCH_TOKEN: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", () => resolve(out));
  });
}

/** Every row of every table, as text, by table name. */
function tablesHolding(value: string): string[] {
  const db = new Database(path.join(dataDir, "agentorch.db"), { readonly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
    return tables.filter((t) => (db.prepare(`SELECT * FROM "${t}"`).all() as object[]).some((row) => JSON.stringify(row).includes(value)));
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  dataDir = path.join(mkdtempSync(path.join(tmpdir(), "agentorch-secret-")), "data");
  await startServer();
});

afterAll(async () => {
  if (server) await stopServer().catch(() => undefined);
  for (const i of instances) await removeContainersOf(i).catch(() => undefined);
  rmSync(path.dirname(dataDir), { recursive: true, force: true });
});

describeDocker("env values are write-only", () => {
  const id = `secret-${run}`;

  it("no reader sees a value; the container gets it", async () => {
    const watch = new StreamReader<{ event: { agent?: AgentMsg } }>(serverStream(c.agents, "WatchAgents", { agent_ids: [id] }));
    const { agent } = await rpc<{ agent: AgentMsg }>(c.agents, "RegisterAgent", {
      agent: { agent_id: id, image: TEST_IMAGE, command: CHECK, env: { API_KEY: SECRET, OTHER: "" } },
    });
    expect(agent.config.env).toEqual({});
    expect(agent.config.env_names).toEqual(["API_KEY", "OTHER"]);

    await rpc(c.agents, "StartAgent", { agent_id: id });
    await waitIdle(id, 1);
    expect(await output(id)).toBe(MATCH);

    // gRPC reads and a live watch.
    const got = await rpc<{ agent: AgentMsg }>(c.agents, "GetAgent", { agent_id: id });
    expect(got.agent.config.env_names).toEqual(["API_KEY", "OTHER"]);
    expect(JSON.stringify(got)).not.toContain(SECRET);
    expect(JSON.stringify(await rpc(c.agents, "ListAgents", {}))).not.toContain(SECRET);
    await watch.until((w) => w.items.length >= 3, "watch events");
    await watch.cancel();
    expect(JSON.stringify(watch.items)).not.toContain(SECRET);

    // Connect JSON.
    const res = await fetch(`${server.url}/agentorch.v1.AgentOrchestratorService/GetAgent`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agentId: id }),
    });
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).not.toContain(SECRET);
    expect((JSON.parse(text) as { agent: { config: { envNames: string[] } } }).agent.config.envNames).toEqual(["API_KEY", "OTHER"]);

    // The CLI.
    const json = await cli(["agents", "get", id, "-o", "json"]);
    expect(json).toContain("API_KEY");
    expect(json).not.toContain(SECRET);
    const shown = await cli(["agents", "get", id]);
    expect(shown).toContain("API_KEY=<set>");
    expect(shown).not.toContain(SECRET);
    expect(await cli(["agents", "ls"])).not.toContain(SECRET);

    // Only env_secrets holds the value; no log line carries it.
    expect(tablesHolding(SECRET)).toEqual(["env_secrets"]);
    expect(JSON.stringify(server.logs)).not.toContain(SECRET);
  });

  it("after a service restart: replay carries no value, and a start still passes it to the container", async () => {
    await stopServer();
    await startServer();
    const replay = new StreamReader<{ event: { agent?: AgentMsg } }>(serverStream(c.agents, "WatchAgents", { agent_ids: [id], resume_after_revision: 0 }));
    await replay.until((w) => w.items.length >= 4, "replayed events");
    await replay.cancel();
    expect(JSON.stringify(replay.items)).toContain("API_KEY");
    expect(JSON.stringify(replay.items)).not.toContain(SECRET);

    await rpc(c.agents, "StartAgent", { agent_id: id });
    await waitIdle(id, 2);
    expect(await output(id)).toBe(MATCH);
    expect(tablesHolding(SECRET)).toEqual(["env_secrets"]);
    expect(JSON.stringify(server.logs)).not.toContain(SECRET);
  });

  it("a task template's values reach its container and nowhere else; a retry keeps them", async () => {
    const template = { image: TEST_IMAGE, command: [...CHECK.slice(0, 2), `${CHECK[2]}; exit 3`], env: { API_KEY: SECRET } };
    const { task } = await rpc<{ task: { task_id: string; template: { env: Record<string, string>; env_names: string[] } } }>(c.lifecycle, "SubmitTask", {
      directive: { goal: "check the env" },
      template,
    });
    expect(task.template.env).toEqual({});
    expect(task.template.env_names).toEqual(["API_KEY"]);
    const finished = async (taskId: string) => {
      for (let i = 0; i < 200; i++) {
        const t = await rpc<{ task: { state: string; result?: { output: string } } }>(c.lifecycle, "GetTask", { task_id: taskId });
        if (t.task.state === "TASK_STATE_FAILED") return t.task;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`task ${taskId} did not fail`);
    };
    expect((await finished(task.task_id)).result?.output).toBe(MATCH);
    const retry = await rpc<{ task: { task_id: string } }>(c.lifecycle, "RetryTask", { task_id: task.task_id });
    expect((await finished(retry.task.task_id)).result?.output).toBe(MATCH);
    expect(JSON.stringify(await rpc(c.lifecycle, "ListTasks", {}))).not.toContain(SECRET);
    expect(tablesHolding(SECRET)).toEqual(["env_secrets"]);
    expect(JSON.stringify(server.logs)).not.toContain(SECRET);
  });

  it("removing the agent removes its values", async () => {
    await rpc(c.agents, "RemoveAgent", { agent_id: id });
    const db = new Database(path.join(dataDir, "agentorch.db"), { readonly: true });
    try {
      expect(db.prepare("SELECT COUNT(*) FROM env_secrets WHERE owner = ?").pluck().get(`agent:${id}`)).toBe(0);
    } finally {
      db.close();
    }
  });
});
