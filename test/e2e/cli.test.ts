/**
 * The `agentorch` command line as a user runs it: the real executable (`node
 * bin/agentorch.js …`) spawned against a real server on a free port, with the real Docker
 * engine behind it. What is checked is what a user sees: stdout (aligned tables, -o json),
 * the one-line error on stderr, and exit codes. stdout is a pipe here, so it must carry no
 * ANSI escape codes (CI=1 is set to make sure that does not switch colour on).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import YAML from "yaml";
import { describeDocker, removeContainersOf, TEST_IMAGE, testDocker } from "../support/docker.js";
import { freePort } from "../support/free-port.js";
import { REPO_ROOT, startTestServer } from "../support/server.js";
import type { TestServer } from "../support/server.js";

const BIN = path.join(REPO_ROOT, "bin/agentorch.js");
/** The start of an ANSI escape sequence (ESC [). */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[`);
const run = randomBytes(3).toString("hex");
const uid = (name: string) => `cli-${name}-${run}`;

let server: TestServer;
let tmp: string;

beforeAll(async () => {
  server = await startTestServer();
  tmp = mkdtempSync(path.join(tmpdir(), "agentorch-cli-"));
});

afterAll(async () => {
  if (!server) return;
  const instance = server.app.instanceId;
  await server.stop();
  await removeContainersOf(instance).catch(() => undefined);
  rmSync(tmp, { recursive: true, force: true });
});

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment a user's shell would give: the address in AGENTORCH_ADDR, no colour forced. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, AGENTORCH_ADDR: server.address, CI: "1" };
  delete env.FORCE_COLOR;
  delete env.NO_COLOR;
  delete env.AGENTORCH_TOKEN;
  return { ...env, ...extra };
}

/** A running `agentorch …` process whose output can be watched as it comes. */
function start(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: userEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  const out = { stdout: "", stderr: "" };
  child.stdout.on("data", (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out.stderr += d.toString()));
  // Generous: on a loaded machine, a few CLI processes at once take several seconds each.
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const done = new Promise<Result>((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, ...out });
    }),
  );
  return { child, out, done };
}

/** Runs `agentorch …` to its end. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return start(args, env).done;
}

/** Runs `agentorch …` and expects exit 0 and a plain stdout. */
async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: "" });
  expect(r.stdout).not.toMatch(ANSI);
  return r.stdout;
}

/** The lines of a table, and the column where each header starts. */
function table(stdout: string) {
  const lines = stdout.trimEnd().split("\n");
  const header = lines[0]!;
  const col = (name: string) => header.search(new RegExp(`\\b${name}\\b`));
  return { header, rows: lines.slice(1), col };
}

describe("agentorch CLI without Docker", () => {
  it("prints help at every level and its version, exiting 0", async () => {
    const [root, leaf, version] = await Promise.all([cli(["--help"]), cli(["tasks", "submit", "--help"]), cli(["--version"])]);
    expect(root.code).toBe(0);
    for (const c of ["serve", "agents", "tasks", "cards", "messages", "config", "health", "version", "completion"]) expect(root.stdout).toMatch(new RegExp(`^  ${c}\\b`, "m"));
    expect(root.stdout).toContain("Exit codes:");
    expect(root.stdout).toMatch(/^ {2}3 +NOT_FOUND/m);
    expect(leaf.code).toBe(0);
    expect(leaf.stdout).toContain("--image <image>");
    expect(leaf.stdout).toMatch(/0 COMPLETED, 10 FAILED .*11 CANCELED, 12 REJECTED/);
    expect(leaf.stdout).toContain("--addr <address>"); // global options shown on every level
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    for (const r of [root, leaf, version]) expect(r.stdout).not.toMatch(ANSI);
  });

  it("version prints the client's and the server's versions; without a server, the client's and exit 6", async () => {
    const port = await freePort();
    const [both, json, alone] = await Promise.all([cli(["version"]), cli(["version", "-o", "json"]), cli(["version", "--addr", `127.0.0.1:${port}`])]);
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
    expect(both).toMatchObject({ code: 0, stdout: `client: ${pkg.version}\nserver: ${pkg.version} at ${server.address}\n`, stderr: "" });
    expect(JSON.parse(json.stdout)).toEqual({ client: pkg.version, server: pkg.version, address: server.address });
    expect(alone).toMatchObject({ code: 6, stdout: `client: ${pkg.version}\n` });
    expect(alone.stderr).toMatch(/^agentorch: no agentorch at 127\.0\.0\.1:\d+: is `agentorch serve` running\?.*\n$/);
  });

  it("completion bash, zsh and fish complete commands and flags from the command tree", async () => {
    const [bash, zsh, fish, bad] = await Promise.all([cli(["completion", "bash"]), cli(["completion", "zsh"]), cli(["completion", "fish"]), cli(["completion", "tcsh"])]);
    for (const r of [bash, zsh, fish]) expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(bad).toMatchObject({ code: 2, stderr: "agentorch: completion tcsh: expected bash, zsh or fish\n" });
    const script = path.join(tmp, "agentorch.bash");
    writeFileSync(script, bash.stdout);
    // What bash does on TAB: COMP_WORDS and COMP_CWORD set, the completion function called.
    const complete = (...words: string[]) => {
      const line = `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _agentorch; echo "\${COMPREPLY[*]}"`;
      return spawnSync("bash", ["--norc", "-c", line], { encoding: "utf8" }).stdout.trim();
    };
    expect(complete("agentorch", "ag")).toBe("agents");
    expect(complete("agentorch", "agents", "st")).toBe("start stop");
    expect(complete("agentorch", "--addr", "h:1", "agent", "lo")).toBe("logs");
    expect(complete("agentorch", "tasks", "ls", "--l")).toBe("--limit");
    expect(complete("agentorch", "agents", "ls", "-o", "")).toBe("table wide json yaml");
    expect(zsh.stdout).toMatch(/^#compdef agentorch\n/);
    expect(zsh.stdout).toContain('"agentorch messages ack") cmd="agentorch messages ack"');
    expect(fish.stdout).toContain("complete -c agentorch -n '__fish_use_subcommand' -a agents");
  });

  it("says in one line that no server runs at the address, and exits 6", async () => {
    const port = await freePort();
    const [byFlag, byEnv] = await Promise.all([
      cli(["agents", "ls", "--addr", `127.0.0.1:${port}`]),
      cli(["tasks", "ls"], { AGENTORCH_ADDR: `127.0.0.1:${port}` }),
    ]);
    for (const r of [byFlag, byEnv]) {
      expect(r.code).toBe(6);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(new RegExp(`^agentorch: no agentorch at 127\\.0\\.0\\.1:${port}: is \`agentorch serve\` running\\?.*\\n$`));
      expect(r.stderr.split("\n")).toHaveLength(2); // one line and its newline
    }
  });

  it("reports a usage error in one line with exit 2, before connecting anywhere", async () => {
    const [missing, unknown, format] = await Promise.all([
      cli(["agents", "get"]),
      cli(["agents", "ls", "--no-such-flag"]),
      cli(["agents", "ls", "-o", "xml"]),
    ]);
    expect(missing).toMatchObject({ code: 2, stdout: "" });
    expect(missing.stderr).toBe("agentorch: missing required argument 'id': see `agentorch agents get --help`\n");
    expect(unknown).toMatchObject({ code: 2, stdout: "" });
    expect(unknown.stderr).toMatch(/^agentorch: unknown option '--no-such-flag'.*\n$/);
    expect(format).toMatchObject({ code: 2, stderr: "agentorch: -o xml: expected table, wide, json or yaml\n" });
  });

  it("maps NOT_FOUND and INVALID_ARGUMENT to their messages and exits 3 and 2", async () => {
    const id = uid("missing");
    const [r, image] = await Promise.all([cli(["agents", "get", id]), cli(["agents", "register", id, "--image", "agentorch/BusyBox:test"])]);
    expect(r).toMatchObject({ code: 3, stdout: "", stderr: `agentorch: agent "${id}" not found\n` });
    expect(image).toMatchObject({
      code: 2,
      stdout: "",
      stderr: 'agentorch: image "agentorch/BusyBox:test" is not a valid image reference: the repository path must be lowercase\n',
    });
  });

  it("serve runs the service until SIGTERM, then exits 0", async () => {
    const port = await freePort();
    const serve = start(["serve"], { AGENTORCH_LISTEN: `127.0.0.1:${port}`, AGENTORCH_DATA_DIR: path.join(tmp, "serve"), AGENTORCH_LOG_LEVEL: "warn" });
    try {
      await vi.waitFor(async () => expect((await cli(["health", "--addr", `127.0.0.1:${port}`])).code).toBe(0), { timeout: 20_000, interval: 250 });
    } finally {
      serve.child.kill("SIGTERM");
    }
    expect((await serve.done).code).toBe(0);
  });

  it("health prints SERVING and exits 0; -o json and -o yaml are the health response", async () => {
    const [human, json, yaml] = await Promise.all([ok(["health"]), ok(["health", "-o", "json"]), ok(["health", "-o", "yaml"])]);
    expect(human.split("\n")[0]).toBe(`agentorch at ${server.address}: SERVING`);
    expect(JSON.parse(json)).toMatchObject({ statuses: { "": { status: "SERVING" } } });
    expect(YAML.parse(yaml)).toEqual(JSON.parse(json));
    expect(yaml).toMatch(/^statuses:\n/);
  });
});

describeDocker("agentorch CLI with Docker", () => {
  it("registers, lists (table and JSON), starts, shows logs, stops and removes an agent", async () => {
    const id = uid("agent");
    const registered = await ok(["agents", "register", id, "--image", TEST_IMAGE, "--memory", "64m", "--max-idle", "10m", "--env", "GREETING=hi", "--", "sh", "-c", "echo $GREETING; echo two; echo three; sleep 300"]);
    expect(registered).toContain(`registered agent ${id} (IDLE)`);

    const [list, json, forced] = await Promise.all([ok(["agents", "ls"]), ok(["agents", "ls", "-o", "json"]), cli(["agents", "ls"], { FORCE_COLOR: "1" })]);
    expect(forced.stdout).toMatch(ANSI); // colour can be asked for, so its absence elsewhere means something
    const t = table(list);
    expect(t.header).toMatch(/^ID +STATUS +IMAGE +RESTARTS +STARTED +AGE/);
    const row = t.rows.find((r) => r.startsWith(id + " "));
    expect(row, list).toBeDefined();
    // Aligned: each value starts under its header.
    expect(row!.indexOf("IDLE")).toBe(t.col("STATUS"));
    expect(row!.indexOf(TEST_IMAGE)).toBe(t.col("IMAGE"));
    const agent = (JSON.parse(json) as { agents: Record<string, unknown>[] }).agents.find((a) => a.agentId === id);
    expect(agent).toMatchObject({
      agentId: id,
      status: "AGENT_STATUS_IDLE",
      restartCount: 0,
      config: { image: TEST_IMAGE, command: ["sh", "-c", "echo $GREETING; echo two; echo three; sleep 300"], envNames: ["GREETING"], resources: { memoryBytes: String(64 * 1024 * 1024) }, lifecycle: { maxIdle: "600s" } },
    });

    // env values are write-only: the names are shown, never a value (the map is absent or empty).
    expect((agent as { config: { env?: Record<string, string> } }).config.env ?? {}).toEqual({});
    expect(JSON.stringify(agent)).not.toContain('"hi"');

    const started = await ok(["agents", "start", id]);
    expect(started).toMatch(new RegExp(`^agent ${id} RUNNING \\(container [0-9a-f]{12}\\)`));
    const running = JSON.parse(await ok(["agents", "get", id, "-o", "json"])) as { status: string; containerId: string };
    expect(running.status).toBe("AGENT_STATUS_RUNNING");
    const inspect = await testDocker().getContainer(running.containerId).inspect();
    expect(inspect.State.Running).toBe(true);
    await vi.waitFor(async () => expect(await ok(["agents", "logs", id])).toBe("hi\ntwo\nthree\n"), { timeout: 10_000, interval: 200 });
    // --tail counts lines; with -f the tail comes first and the command follows until Ctrl-C.
    const follow = start(["agents", "logs", id, "-f", "--tail", "1"]);
    expect(await ok(["agents", "logs", id, "--tail", "2"])).toBe("two\nthree\n");
    await vi.waitFor(() => expect(follow.out.stdout).toBe("three\n"), { timeout: 10_000, interval: 100 });
    follow.child.kill("SIGINT");
    expect(await follow.done).toMatchObject({ code: 130, stdout: "three\n", stderr: "" });

    expect(await ok(["agents", "stop", id])).toMatch(new RegExp(`^agent ${id} IDLE`));
    expect(await ok(["agents", "rm", id])).toBe(`removed agent ${id}\n`);
    expect((await cli(["agents", "get", id])).code).toBe(3);
  }, 90_000);

  it("registers from a YAML file and refuses a duplicate id with exit 4", async () => {
    const id = uid("file");
    const file = path.join(tmp, "agent.yaml");
    writeFileSync(file, [`agentId: ${id}`, `image: ${TEST_IMAGE}`, "command: [sh, -c, 'sleep 300']", "lifecycle:", "  maxLifetime: 1h", ""].join("\n"));
    const got = JSON.parse(await ok(["agents", "register", "-f", file, "-o", "json"])) as { agentId: string; config: { lifecycle: { maxLifetime: string } } };
    expect(got.agentId).toBe(id);
    expect(got.config.lifecycle.maxLifetime).toBe("3600s");
    const again = await cli(["agents", "register", "-f", file]);
    expect(again.code).toBe(4);
    expect(again.stderr.split("\n")).toHaveLength(2);
    expect(again.stderr).toContain(id);
    await ok(["agents", "rm", id]);
  });

  it("agents register --idle-action pause: stored and shown by agents get; an unknown action is a usage error", async () => {
    const id = uid("nap");
    const got = JSON.parse(await ok(["agents", "register", id, "--image", TEST_IMAGE, "--max-idle", "10m", "--idle-action", "pause", "-o", "json", "--", "true"])) as {
      config: { lifecycle: { idleAction: string } };
    };
    expect(got.config.lifecycle.idleAction).toBe("IDLE_ACTION_PAUSE");
    expect(await ok(["agents", "get", id])).toMatch(/max idle 10m \(then paused\)/);
    const bad = await cli(["agents", "register", uid("nap2"), "--image", TEST_IMAGE, "--idle-action", "sleep", "--", "true"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--idle-action sleep: expected one of stop, pause");
    await ok(["agents", "rm", id]);
  });

  it("watch shows a change as it happens and ends with 130 on Ctrl-C", async () => {
    const id = uid("watch");
    await ok(["agents", "register", id, "--image", TEST_IMAGE, "--", "sh", "-c", "sleep 300"]);
    const watch = start(["agents", "watch", id]);
    await vi.waitFor(() => expect(watch.out.stdout).toMatch(new RegExp(`${id}  IDLE`)), { timeout: 15_000, interval: 100 });
    await ok(["agents", "start", id]);
    await vi.waitFor(() => expect(watch.out.stdout).toMatch(new RegExp(`${id}  RUNNING +running, container [0-9a-f]{12}`)), { timeout: 15_000, interval: 100 });
    watch.child.kill("SIGINT");
    const r = await watch.done;
    expect(r.code).toBe(130);
    expect(r.stdout).not.toMatch(ANSI);
    expect(r.stderr).toBe("");
    await ok(["agents", "rm", id]);
  });

  it("tasks submit --wait exits with the task's outcome", async () => {
    const [failed, completed, json] = await Promise.all([
      // --timeout: a task whose end went unnoticed fails this test with TIMEOUT instead of hanging it.
      cli(["tasks", "submit", "fail on purpose", "--image", TEST_IMAGE, "--timeout", "20s", "--wait", "--", "sh", "-c", "echo trying; exit 3"]),
      cli(["tasks", "submit", "say ok", "--image", TEST_IMAGE, "--timeout", "20s", "--wait", "--", "sh", "-c", "echo ok"]),
      cli(["tasks", "submit", "say ok", "--image", TEST_IMAGE, "--timeout", "20s", "--wait", "-o", "json", "--", "sh", "-c", "echo ok"]),
    ]);
    expect(failed).toMatchObject({ code: 10, stderr: "" });
    expect(failed.stdout).toMatch(/ FAILED +EXIT_NONZERO/);
    expect(failed.stdout).toContain("trying");
    expect(completed).toMatchObject({ code: 0, stderr: "" });
    expect(completed.stdout).toMatch(/ COMPLETED/);
    expect(completed.stdout).toMatch(/^ok$/m);
    expect(json.code).toBe(0);
    const lines = json.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as { taskId: string; state: string; result?: { output: string } });
    expect(lines.at(-1)).toMatchObject({ state: "TASK_STATE_COMPLETED", result: { output: "ok\n" } });
    for (const r of [failed, completed, json]) expect(r.stdout).not.toMatch(ANSI);

    const [ls, newest] = await Promise.all([ok(["tasks", "ls", "--state", "completed"]), ok(["tasks", "ls", "--limit", "2", "-o", "json"])]);
    const t = table(ls);
    const row = t.rows.find((r) => r.startsWith(lines[0]!.taskId + " "));
    expect(row).toBeDefined();
    expect(row!.indexOf("COMPLETED")).toBe(t.col("STATE"));
    // Newest first, as docker ps lists containers.
    const created = (JSON.parse(newest) as { tasks: { createdAt: string }[] }).tasks.map((x) => Date.parse(x.createdAt));
    expect(created).toHaveLength(2);
    expect(created[0]).toBeGreaterThanOrEqual(created[1]!);
  }, 120_000);

  it("serves scripts: idempotent start/stop/register, id prefixes, messages ack, -o wide", async () => {
    const a = uid("idem");
    const b = `${a}-2`;
    const reg = (id: string, ...more: string[]) => ["agents", "register", id, "--image", TEST_IMAGE, ...more, "--", "sh", "-c", "sleep 300"];
    await Promise.all([ok(reg(a)), ok(reg(b))]);
    // An exact id wins over the longer id it prefixes.
    const [first, again] = await Promise.all([ok(["agents", "start", a]), ok(reg(a, "--if-not-exists"))]);
    expect(first).toMatch(new RegExp(`^agent ${a} RUNNING`));
    expect(again).toMatch(new RegExp(`^agent ${a} already exists \\((IDLE|STARTING|RUNNING), image ${TEST_IMAGE}\\); left as it is\n$`));

    const [started, stopIdle, stopIdleStrict, ambiguous] = await Promise.all([
      cli(["agents", "start", a]),
      cli(["agents", "stop", `${a}-`, "--if-needed"]),
      cli(["agents", "stop", b]),
      cli(["agents", "get", "cli-idem-"]),
    ]);
    expect(started).toMatchObject({ code: 0, stderr: "" });
    expect(started.stdout).toMatch(new RegExp(`^agent ${a} is already RUNNING \\(container [0-9a-f]{12}\\); nothing to do\n$`));
    expect(stopIdle).toMatchObject({ code: 0, stdout: `agent ${b} is already IDLE; nothing to do\n`, stderr: "" });
    expect(stopIdleStrict.code).toBe(4);
    expect(ambiguous).toMatchObject({ code: 2, stdout: "" });
    expect(ambiguous.stderr).toMatch(/^agentorch: agent id prefix "cli-idem-" is ambiguous: it matches .*; give more of the id\n$/);

    const [byPrefix, sent, wide] = await Promise.all([
      ok(["agents", "get", `${a}-`, "-o", "json"]),
      ok(["messages", "send", a, `${a}-`, "status", "halfway", "--task-id", "t1", "--progress", "50"]),
      ok(["agents", "ls", "-o", "wide"]),
    ]);
    expect(JSON.parse(byPrefix)).toMatchObject({ agentId: b });
    expect(sent).toMatch(new RegExp(`^sent message \\S+ to ${b} \\(sequence 1\\)\n$`));
    const t = table(wide);
    expect(t.header).toMatch(/^ID +STATUS +IMAGE +RESTARTS +STARTED +AGE +CONTAINER +NETWORK +MEMORY +COMMAND +REASON$/);
    const row = t.rows.find((r) => r.startsWith(a + " "))!;
    expect(row.slice(t.col("NETWORK"))).toMatch(/^none +512MiB +sh -c 'sleep 300' /);

    const [acked, beyond] = await Promise.all([cli(["messages", "ack", `${a}-`, "1"]), cli(["messages", "ack", b, "9"])]);
    expect(acked).toMatchObject({ code: 0, stdout: `acknowledged 1 message of ${b} (up to #1)\n`, stderr: "" });
    expect(beyond.code).toBe(2);
    await Promise.all([ok(["agents", "rm", a]), ok(["agents", "rm", b])]);
  }, 300_000);

  it("config get and set change the task limits live", async () => {
    const set = await ok(["config", "set", "max-concurrent-tasks=7", "max-execution-time=10m"]);
    expect(table(set).rows.map((r) => r.split(/ +/)[0])).toEqual(["max-execution-time", "max-concurrent-tasks", "zombie-timeout", "max-queued-tasks"]);
    expect(set).toMatch(/^max-concurrent-tasks +7$/m);
    expect(await ok(["config", "get", "max-concurrent-tasks"])).toBe("7\n");
    expect(JSON.parse(await ok(["config", "get", "-o", "json"]))).toMatchObject({ maxConcurrentTasks: 7, maxExecutionTime: "600s" });
    const bad = await cli(["config", "set", "max-concurrent-tasks", "0"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.split("\n")).toHaveLength(2);
  });
});
