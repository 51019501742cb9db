// The README's recipe for Python, run as a user runs it: examples/python/generate.sh makes
// the modules with Debian's protoc and grpc_python_plugin, and examples/python/quickstart.py
// (python3-grpcio) registers, starts, watches while stopping, runs a task followed by
// WatchTask, and sends, streams and acknowledges a message, against a real server and engine.
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DOCKER_AVAILABLE } from "../support/docker.js";
import { PYTHON, requirePythonGrpc } from "../support/python.js";
import { REPO_ROOT, startTestServer, type TestServer } from "../support/server.js";

const run = promisify(execFile);
const missing = requirePythonGrpc();

describe.skipIf(missing !== undefined || !DOCKER_AVAILABLE)("the Python recipe (examples/python)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("generates the modules and drives agents, a task and messages with python3-grpcio", async () => {
    const gen = path.join(mkdtempSync(path.join(tmpdir(), "agentorch-pyrecipe-")), "agentorch_py");
    await run("bash", [path.join(REPO_ROOT, "examples/python/generate.sh"), gen]);
    const { stdout } = await run(PYTHON, [path.join(REPO_ROOT, "examples/python/quickstart.py"), "--gen", gen, "--addr", server.address], {
      timeout: 240_000,
    });
    const seen = JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(seen.started).toBe("AGENT_STATUS_RUNNING");
    // The initial state (RUNNING), its bookmark, then the stop as it happened.
    expect(seen.watched).toEqual(["AGENT_STATUS_RUNNING", "bookmark", "AGENT_STATUS_STOPPING", "AGENT_STATUS_IDLE"]);
    const states = seen.task_states as string[];
    expect(states.at(-1)).toBe("TASK_STATE_COMPLETED");
    expect(states).toContain("TASK_STATE_WORKING");
    expect(seen.task_output).toContain("goal: say hello from Python");
    expect(seen.task_data).toEqual({ ok: true });
    expect(seen.message).toEqual({ sequence: 1, received_sequence: 1, description: "review main.go", acknowledged: 1 });
    expect(seen.missing_agent).toBe("NOT_FOUND");
  }, 300_000);
});
