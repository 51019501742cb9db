/**
 * agentorch's own container image, run beside the engine it drives (README "Run it in a
 * container"). No registry is reachable, so the Dockerfile is built with BASE = a base image
 * made here (scripts/make-base-image.sh: Debian + this machine's Node), by the classic
 * builder. The image then runs as a user would run it: the Docker socket mounted with its
 * group added, the data directory mounted from a host path that differs from the one inside
 * (so the service must translate the bind sources it hands the engine), tokens, a published
 * port. Through @grpc/grpc-js: health, then an agent's whole life, its container writing into
 * its workspace and calling the service over the agent socket, both seen on the host; then
 * nothing is left in Docker, and SIGTERM exits 0. Also: without the socket's group, the log
 * names the group to add; deploy/compose.yaml runs; scripts/check-deploy.sh passes.
 *
 * Needs an engine and root (debootstrap, files owned by the image's uid): skipped loudly
 * without them, and failed under CI. The base image and the build's layers stay cached.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/core/tokens.js";
import { DOCKER_AVAILABLE, removeContainersOf, TEST_IMAGE, testDocker } from "../support/docker.js";
import { type GrpcClients, grpcClients, rpc } from "../support/grpc.js";
import { REPO_ROOT } from "../support/server.js";

const run = promisify(execFile);
const AS_ROOT = process.getuid?.() === 0;
const CAN_RUN = DOCKER_AVAILABLE && AS_ROOT;
const why = !DOCKER_AVAILABLE ? "no Docker engine answers" : "not root (debootstrap and the data directory's owner need root)";
if (!CAN_RUN) {
  const bar = "!".repeat(78);
  console.warn(`\n${bar}\n!!  image.test: SKIPPED: ${why}.\n!!  The container image, its compose file and the host-path translation are NOT checked.\n${bar}\n`);
}
const describeImage: typeof describe = CAN_RUN ? describe : (describe.skip as unknown as typeof describe);

const id = randomBytes(3).toString("hex");
const TAG = `agentorch/agentorch:e2e-${id}`;
const NAME = `agentorch-e2e-${id}`;
const PROJECT = `agentorch-e2e-${id}`;
const TOKEN = randomBytes(32).toString("base64url");
const TOKENS = `e2e:admin:${hashToken(TOKEN)}`;
/** The data directory inside the image (its ENV AGENTORCH_DATA_DIR). */
const INSIDE = "/var/lib/agentorch";
/** The image's user, who must own the data directory. */
const UID = 10001;

const work = mkdtempSync(path.join(tmpdir(), "agentorch-image-"));
let socketGid = 0;
let built = false;

async function docker(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  const { stdout } = await run("docker", args, {
    cwd: REPO_ROOT,
    env: { ...process.env, DOCKER_BUILDKIT: "0", ...options.env },
    maxBuffer: 1 << 26,
    timeout: options.timeoutMs ?? 60_000,
  });
  return stdout.trim();
}

/** A host directory for a data directory, owned by the image's user like the README says. */
function hostDataDir(name: string): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, UID, UID);
  return dir;
}

interface State {
  Status: string;
  ExitCode: number;
  Health?: { Status: string; Log: { ExitCode: number; Output: string }[] };
}
const state = async (container: string) => JSON.parse(await docker(["inspect", "--format", "{{json .State}}", container])) as State;
const logsOf = async (container: string) => {
  const { stdout, stderr } = await run("docker", ["logs", container], { maxBuffer: 1 << 26 });
  return stdout + stderr;
};

/** Waits until the container's health check passed (docker run --health-interval 1s). */
async function healthy(container: string): Promise<State> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const s = await state(container);
    if (s.Health?.Status === "healthy") return s;
    if (s.Status !== "running" || Date.now() > deadline) {
      throw new Error(`${container} is ${s.Status}, health ${s.Health?.Status}:\n${await logsOf(container)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The host address docker published the API on ("127.0.0.1:49153"). */
async function published(container: string): Promise<string> {
  return (await docker(["port", container, "50051/tcp"])).split("\n")[0]!;
}

/** The service's instance id, from its start-up log line (it labels its containers with it). */
async function instanceIdOf(container: string): Promise<string> {
  for (const line of (await logsOf(container)).split("\n")) {
    if (line.includes('"agentorch started"')) return (JSON.parse(line) as { instanceId: string }).instanceId;
  }
  throw new Error(`no start-up line in the logs of ${container}`);
}

function md(): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set("authorization", `Bearer ${TOKEN}`);
  return m;
}

/** Polls until the file exists on the host and holds `text`; returns its content. */
async function hostFile(file: string, text: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const content = existsSync(file) ? readFileSync(file, "utf8") : "";
    if (content.includes(text)) return content;
    if (Date.now() > deadline) throw new Error(`${file} never held "${text}" (has: ${JSON.stringify(content)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * What the agent runs: files and directories in its workspace, then its own record fetched
 * over the agent socket with its own token (Connect JSON, curl from the test image), saved there.
 */
const AGENT_SCRIPT = [
  'echo "hello from $AGENTORCH_AGENT_ID" > /workspace/hello.txt',
  "mkdir -p /workspace/made/by && echo agent > /workspace/made/by/agent.txt",
  "for i in 1 2 3 4 5 6 7 8 9 10; do",
  '  curl -sS --unix-socket "$AGENTORCH_SOCKET" -H "authorization: Bearer $AGENTORCH_TOKEN" -H "content-type: application/json"' +
    ' -d "{\\"agentId\\":\\"$AGENTORCH_AGENT_ID\\"}" http://localhost/agentorch.v1.AgentOrchestratorService/GetAgent > /workspace/self.json 2>>/workspace/curl.err',
  "  grep -q AGENT_STATUS_RUNNING /workspace/self.json && break",
  "  sleep 1",
  "done",
  "echo agent done",
  "sleep 600",
].join("\n");

const timings: string[] = [];
let clients: GrpcClients | undefined;
let instanceId = "";
let dataDir = "";

beforeAll(async () => {
  if (!CAN_RUN) return;
  socketGid = statSync("/var/run/docker.sock").gid;
  let t = Date.now();
  const { stdout } = await run("bash", ["scripts/make-base-image.sh"], { cwd: REPO_ROOT, timeout: 15 * 60_000, maxBuffer: 1 << 26 });
  const base = stdout.trim().split("\n").pop()!;
  timings.push(`base image ${base}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
  t = Date.now();
  try {
    await docker(["build", "--build-arg", `BASE=${base}`, "--label", `agentorch.e2e=${id}`, "-t", TAG, "."], { timeoutMs: 20 * 60_000 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`docker build failed:\n${(e.stdout ?? "").slice(-4000)}\n${e.stderr ?? ""}`);
  }
  built = true;
  timings.push(`docker build: ${((Date.now() - t) / 1000).toFixed(1)} s`);
}, 35 * 60_000);

afterAll(async () => {
  clients?.close();
  if (CAN_RUN) {
    if (instanceId) await removeContainersOf(instanceId).catch(() => undefined);
    const composeTool = await composeCommand();
    if (composeTool) await run(composeTool[0]!, [...composeTool.slice(1), "-f", "deploy/compose.yaml", "-p", PROJECT, "down", "--remove-orphans"], { cwd: REPO_ROOT, env: composeEnv("/nonexistent") }).catch(() => undefined);
    const left = await docker(["ps", "-aq", "--filter", `label=agentorch.e2e=${id}`]).catch(() => "");
    for (const c of left.split("\n").filter(Boolean)) await docker(["rm", "-f", c]).catch(() => undefined);
    // The tag goes; its layers stay (no-prune), so the next build is a cache hit.
    if (built) await testDocker().getImage(TAG).remove({ noprune: true }).catch(() => undefined);
  }
  rmSync(work, { recursive: true, force: true });
  if (timings.length > 0) console.log(`image.test timings: ${timings.join("; ")}`);
}, 120_000);

describeImage("the agentorch image beside the engine", () => {
  it("runs as its non-root user with the socket's group, and turns healthy with the engine reachable", async () => {
    dataDir = hostDataDir("data");
    await docker([
      "run", "-d", "--name", NAME, "--label", `agentorch.e2e=${id}`,
      "--group-add", String(socketGid),
      "-v", "/var/run/docker.sock:/var/run/docker.sock",
      "-v", `${dataDir}:${INSIDE}`,
      "-e", `AGENTORCH_TOKENS=${TOKENS}`,
      "-e", "AGENTORCH_INSECURE_LISTEN=1", // published on 127.0.0.1 only
      "-p", "127.0.0.1::50051",
      "--health-interval", "1s",
      TAG,
    ]);
    const s = await healthy(NAME);
    const last = s.Health!.Log.at(-1)!;
    expect(last.ExitCode).toBe(0);
    expect(last.Output).toContain("docker SERVING");
    expect(await docker(["exec", NAME, "id", "-u"])).toBe(String(UID));
    instanceId = await instanceIdOf(NAME);
    clients = grpcClients(await published(NAME));
    const health = await rpc<{ status: string }>(clients.health, "Check", { service: "docker" });
    expect(health.status).toBe("SERVING");
  }, 120_000);

  it("drives an agent's whole life: its workspace and the agent socket work from inside its container, seen at the host path", async () => {
    const c = clients!;
    const agentId = `img-${id}`;
    const { agent } = await rpc<{ agent: { status: string; workspace_path: string } }>(
      c.agents,
      "RegisterAgent",
      { agent: { agent_id: agentId, image: TEST_IMAGE, command: ["sh", "-c", AGENT_SCRIPT] } },
      { metadata: md() },
    );
    expect(agent.status).toBe("AGENT_STATUS_IDLE");
    // The service names its own path; the engine was given the host's.
    expect(agent.workspace_path).toBe(`${INSIDE}/workspaces/${agentId}`);
    const started = await rpc<{ agent: { status: string; container_id: string } }>(c.agents, "StartAgent", { agent_id: agentId }, { metadata: md() });
    expect(started.agent.status).toBe("AGENT_STATUS_RUNNING");

    const hostWorkspace = path.join(dataDir, "workspaces", agentId);
    expect(await hostFile(path.join(hostWorkspace, "hello.txt"), `hello from ${agentId}`)).toBe(`hello from ${agentId}\n`);
    const self = JSON.parse(await hostFile(path.join(hostWorkspace, "self.json"), "AGENT_STATUS_RUNNING")) as { agent: { agentId: string; status: string } };
    expect(self.agent).toMatchObject({ agentId, status: "AGENT_STATUS_RUNNING" });

    // Agents run as the image's user (its AGENTORCH_CONTAINER_USER): their files are the service's to delete.
    expect(statSync(path.join(hostWorkspace, "made", "by", "agent.txt"))).toMatchObject({ uid: UID, gid: UID });
    expect(statSync(hostWorkspace)).toMatchObject({ uid: UID, mode: 0o40750 });

    const mounts = (await testDocker().getContainer(started.agent.container_id).inspect()).Mounts;
    expect(mounts.find((m) => m.Destination === "/workspace")?.Source).toBe(hostWorkspace);
    expect(mounts.find((m) => m.Destination === "/run/agentorch")?.Source).toBe(path.join(dataDir, "run"));

    const stopped = await rpc<{ agent: { status: string } }>(c.agents, "StopAgent", { agent_id: agentId }, { metadata: md() });
    expect(stopped.agent.status).toBe("AGENT_STATUS_IDLE");
    // Deleting the workspace deletes what the agent made in it, directories too.
    await rpc(c.agents, "RemoveAgent", { agent_id: agentId, delete_workspace: true }, { metadata: md() });
    expect(existsSync(hostWorkspace)).toBe(false);
    const left = await testDocker().listContainers({ all: true, filters: { label: [`agentorch.instance=${instanceId}`] } });
    expect(left).toEqual([]);
  }, 120_000);

  it("stops on SIGTERM with exit 0", async () => {
    clients?.close();
    clients = undefined;
    await docker(["stop", "-t", "30", NAME]);
    const s = await state(NAME);
    expect(s.ExitCode, await logsOf(NAME)).toBe(0);
    await docker(["rm", NAME]);
  }, 60_000);

  it("without the socket's group, stays up and its log names the group to add", async () => {
    const name = `${NAME}-nogroup`;
    await docker([
      "run", "-d", "--name", name, "--label", `agentorch.e2e=${id}`,
      "-v", "/var/run/docker.sock:/var/run/docker.sock",
      "-v", `${hostDataDir("data-nogroup")}:${INSIDE}`,
      "-e", `AGENTORCH_TOKENS=${TOKENS}`,
      "-e", "AGENTORCH_INSECURE_LISTEN=1", // published on 127.0.0.1 only
      "--health-interval", "1s",
      TAG,
    ]);
    const s = await healthy(name);
    expect(s.Health!.Log.at(-1)!.Output).toContain("docker NOT_SERVING");
    const logs = await logsOf(name);
    expect(logs).toContain(`Docker engine unreachable at unix:///var/run/docker.sock: EACCES (permission denied: /var/run/docker.sock is owned by uid 0, group ${socketGid}`);
    expect(logs).toContain(`docker run --group-add ${socketGid}`);
    await docker(["rm", "-f", name]);
  }, 120_000);

  it("runs from deploy/compose.yaml: an agent's workspace appears at the host path", async (ctx) => {
    const tool = await composeCommand();
    if (!tool) {
      if (process.env.CI) throw new Error("CI: neither `docker compose` nor docker-compose is installed (scripts/ensure-test-tools.sh installs it)");
      console.warn("image.test: the compose run is SKIPPED: neither `docker compose` nor docker-compose is installed");
      ctx.skip();
      return;
    }
    const dir = hostDataDir("data-compose");
    const compose = (...args: string[]) =>
      run(tool[0]!, [...tool.slice(1), "-f", "deploy/compose.yaml", "-p", PROJECT, ...args], { cwd: REPO_ROOT, env: composeEnv(dir), maxBuffer: 1 << 26 });
    await compose("up", "-d", "--no-build");
    const container = (await compose("ps", "-q", "agentorch")).stdout.trim();
    expect(container).not.toBe("");
    // The image's own health check is in force (15 s apart: not waited for here).
    expect((await state(container)).Health).toBeDefined();
    const address = await published(container);
    const deadline = Date.now() + 60_000;
    while (!(await fetch(`http://${address}/healthz`).then((r) => r.ok, () => false))) {
      if (Date.now() > deadline) throw new Error(`compose service never answered /healthz:\n${await logsOf(container)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const c = grpcClients(address);
    const composeInstance = await instanceIdOf(container);
    try {
      const agentId = `img-compose-${id}`;
      await rpc(c.agents, "RegisterAgent", { agent: { agent_id: agentId, image: TEST_IMAGE, command: ["sh", "-c", AGENT_SCRIPT] } }, { metadata: md() });
      await rpc(c.agents, "StartAgent", { agent_id: agentId }, { metadata: md() });
      await hostFile(path.join(dir, "workspaces", agentId, "self.json"), "AGENT_STATUS_RUNNING");
      await rpc(c.agents, "RemoveAgent", { agent_id: agentId, delete_workspace: true }, { metadata: md() });
    } finally {
      c.close();
      await removeContainersOf(composeInstance).catch(() => undefined);
    }
    await compose("stop");
    expect((await state(container)).ExitCode).toBe(0);
    await compose("down");
  }, 180_000);
});

/** The compose file's variables for this run. */
function composeEnv(dir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    AGENTORCH_IMAGE: TAG,
    DOCKER_GID: String(socketGid),
    AGENTORCH_TOKENS: TOKENS,
    AGENTORCH_HOST_DATA_DIR: dir,
    AGENTORCH_PUBLISH: "127.0.0.1:",
  };
}

let composeTool: Promise<string[] | undefined> | undefined;
/** `docker compose` (the plugin) or docker-compose, whichever is installed. */
function composeCommand(): Promise<string[] | undefined> {
  composeTool ??= run("docker", ["compose", "version"]).then(
    () => ["docker", "compose"],
    () => run("docker-compose", ["version"]).then(() => ["docker-compose"], () => undefined),
  );
  return composeTool;
}

if (!CAN_RUN && process.env.CI) {
  it("runs under CI", () => {
    throw new Error(`CI is set but the image test cannot run: ${why}`);
  });
}

describe("the deployment examples", () => {
  it("agree with the Dockerfile and pass their tools' checks (scripts/check-deploy.sh)", async () => {
    const { stderr } = await run("bash", ["scripts/check-deploy.sh"], { cwd: REPO_ROOT, env: { ...process.env, DOCKER_GID: String(socketGid) } });
    expect(stderr).toContain("agree");
  }, 60_000);
});
