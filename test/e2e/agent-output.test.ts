/**
 * StreamAgentOutput end to end: the real server on a free port, a real busybox container
 * that prints a numbered line every 100 ms, and a @grpc/grpc-js client that loads the
 * .proto files. What is checked is what that client receives: the tail first (bounded by
 * tail_bytes), then live lines with none missing or repeated, and the end of the stream
 * when the container stops; and the codes for an unknown or never-started agent.
 */
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeDocker, removeContainersOf, TEST_IMAGE } from "../support/docker.js";
import { grpcClient, rpc, serverStream, StreamReader, streamError } from "../support/grpc.js";
import { startTestServer } from "../support/server.js";
import type { TestServer } from "../support/server.js";

// ------------------------------------------------------------------ reading StreamAgentOutput with grpc-js

/** The chunks of one StreamAgentOutput call as they arrive, and how it ended. */
class OutputStream extends StreamReader<{ data: Buffer }> {
  constructor(client: grpc.Client, req: { agent_id: string; follow?: boolean; tail_bytes?: number }) {
    super(serverStream(client, "StreamAgentOutput", { ...req, tail_bytes: String(req.tail_bytes ?? 0) }));
  }

  get chunks(): Buffer[] {
    return this.items.map((m) => m.data);
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }

  protected override received(): string {
    return JSON.stringify(this.text.slice(-200));
  }
}

/** The numbers of the whole "line N" lines in text (a cut first or last line is left out). */
function lineNumbers(text: string, firstMayBeCut = false): number[] {
  const lines = text.split("\n");
  lines.pop(); // the part after the last newline: empty, or a line still being written
  if (firstMayBeCut) lines.shift();
  return lines.map((l) => {
    const m = /^line (\d+)$/.exec(l);
    if (!m) throw new Error(`unexpected output line ${JSON.stringify(l)}`);
    return Number(m[1]);
  });
}

function expectConsecutive(numbers: number[]): void {
  for (let i = 1; i < numbers.length; i++) expect(numbers[i], `line after ${numbers[i - 1]}`).toBe(numbers[i - 1]! + 1);
}

// ------------------------------------------------------------------ server and agents

const runId = randomBytes(3).toString("hex");
const newId = (name: string) => `out-${name}-${runId}`;
/** Prints "line 1", "line 2", ... every 100 ms. */
const ticker = (agentId: string) => ({
  agent_id: agentId,
  image: TEST_IMAGE,
  command: ["sh", "-c", 'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.1; done'],
});

let server: TestServer;
let client: grpc.Client;
const registered: string[] = [];

async function register(agentId: string, start: boolean): Promise<void> {
  await rpc(client, "RegisterAgent", { agent: ticker(agentId) });
  registered.push(agentId);
  if (start) await rpc(client, "StartAgent", { agent_id: agentId });
}

/** Follows the agent's output until it has printed line n, then cancels. */
async function followUntilLine(agentId: string, n: number): Promise<void> {
  const s = new OutputStream(client, { agent_id: agentId, follow: true });
  try {
    await s.until(() => lineNumbers(s.text).includes(n), `line ${n}`);
  } finally {
    await s.cancel();
  }
}

beforeAll(async () => {
  server = await startTestServer();
  client = grpcClient(server.address, "agentorch.v1.AgentOrchestratorService");
});

afterAll(async () => {
  for (const id of registered) await rpc(client, "RemoveAgent", { agent_id: id, delete_workspace: true }).catch(() => undefined);
  client?.close();
  await server?.stop();
  if (server) await removeContainersOf(server.app.instanceId).catch(() => undefined);
});

// ------------------------------------------------------------------ cases

describeDocker("StreamAgentOutput over grpc-js on a real Docker engine", () => {
  it("follows live output, with no line missing or repeated, and ends when the agent is stopped", async () => {
    const id = newId("follow");
    await register(id, true);
    const s = new OutputStream(client, { agent_id: id, follow: true });
    try {
      await s.until(() => s.chunks.length >= 1, "the first chunk");
      const firstLines = lineNumbers(s.text);
      // Live: lines written after the call began keep arriving, in several chunks.
      const target = (firstLines.at(-1) ?? 0) + 10;
      await s.until(() => lineNumbers(s.text).includes(target), `line ${target}`);
      expect(s.chunks.length).toBeGreaterThan(2);
      expect(s.ended).toBe(false);

      await rpc(client, "StopAgent", { agent_id: id });
      await s.until(() => s.ended, "the stream to end after the stop");
      expect(s.error).toBeUndefined();
      expect(s.done).toBe(true);
      const numbers = lineNumbers(s.text);
      expect(numbers[0]).toBe(1); // no tail_bytes: everything kept, from the first line
      expectConsecutive(numbers);
      expect(numbers.length).toBeGreaterThanOrEqual(target);
    } finally {
      await s.cancel();
    }
  });

  it("follow=false returns the output so far and ends, while the agent keeps running", async () => {
    const id = newId("tail");
    await register(id, true);
    await followUntilLine(id, 5);
    const s = new OutputStream(client, { agent_id: id, follow: false });
    await s.until(() => s.ended, "the stream to end");
    expect(s.error).toBeUndefined();
    const numbers = lineNumbers(s.text);
    expect(numbers[0]).toBe(1);
    expect(numbers.length).toBeGreaterThanOrEqual(5);
    expectConsecutive(numbers);
    const agent = (await rpc<{ agent: { status: string } }>(client, "GetAgent", { agent_id: id })).agent;
    expect(agent.status).toBe("AGENT_STATUS_RUNNING");

    // tail_bytes bounds what is returned: the end of the output, at most that many bytes.
    const short = new OutputStream(client, { agent_id: id, follow: false, tail_bytes: 20 });
    await short.until(() => short.ended, "the short stream to end");
    expect(short.error).toBeUndefined();
    const bytes = Buffer.concat(short.chunks);
    expect(bytes.byteLength).toBeGreaterThan(0);
    expect(bytes.byteLength).toBeLessThanOrEqual(20);
    expect(bytes.toString()).toMatch(/\d+\n$/);

    // After the stop: the output kept from the container, and the stream ends even with follow.
    await rpc(client, "StopAgent", { agent_id: id });
    const after = new OutputStream(client, { agent_id: id, follow: true });
    await after.until(() => after.ended, "the stream on a stopped agent to end");
    expect(after.error).toBeUndefined();
    const kept = lineNumbers(after.text);
    expect(kept[0]).toBe(1);
    expect(kept.length).toBeGreaterThanOrEqual(numbers.length);
    expectConsecutive(kept);
  });

  it("tail_bytes limits the first chunk of a follow; live lines continue right after it", async () => {
    const id = newId("tailf");
    await register(id, true);
    await followUntilLine(id, 5);
    const s = new OutputStream(client, { agent_id: id, follow: true, tail_bytes: 20 });
    try {
      await s.until(() => s.chunks.length >= 1, "the first chunk");
      const first = s.chunks[0]!;
      expect(first.byteLength).toBeGreaterThan(0);
      expect(first.byteLength).toBeLessThanOrEqual(20);
      expect(first.toString()).toMatch(/line \d+\n$/);
      const lastOfTail = Number(/line (\d+)\n$/.exec(first.toString())![1]);
      expect(lastOfTail).toBeGreaterThanOrEqual(5);
      await s.until(() => lineNumbers(s.text, true).includes(lastOfTail + 5), `line ${lastOfTail + 5}`);
      const numbers = lineNumbers(s.text, true);
      expect(numbers.at(-1)).toBeGreaterThan(lastOfTail);
      expectConsecutive(numbers);
    } finally {
      await s.cancel();
    }
  });

  it("answers NOT_FOUND for an unknown agent and FAILED_PRECONDITION for one never started", async () => {
    for (const follow of [true, false]) {
      const unknown = await streamError(new OutputStream(client, { agent_id: newId("nobody"), follow }));
      expect(unknown.code).toBe(grpc.status.NOT_FOUND);
      expect(unknown.details).toContain(newId("nobody"));
    }
    const id = newId("never");
    await register(id, false);
    for (const follow of [true, false]) {
      const never = await streamError(new OutputStream(client, { agent_id: id, follow }));
      expect(never.code).toBe(grpc.status.FAILED_PRECONDITION);
    }
    const bad = await streamError(new OutputStream(client, { agent_id: "a_b", follow: true }));
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it("a follow ends with UNAVAILABLE, not OK, when the service shuts down while the container runs", async () => {
    // A server of its own, stopped in the middle of the stream; its container is removed by label afterwards.
    const own = await startTestServer();
    const ownClient = grpcClient(own.address, "agentorch.v1.AgentOrchestratorService");
    try {
      const id = newId("shutdown");
      await rpc(ownClient, "RegisterAgent", { agent: ticker(id) });
      await rpc(ownClient, "StartAgent", { agent_id: id });
      const s = new OutputStream(ownClient, { agent_id: id, follow: true });
      await s.until(() => lineNumbers(s.text).includes(3), "line 3");
      await own.stop();
      const err = await streamError(s);
      // OK would tell the client the container stopped; it did not.
      expect([err.code, err.details]).toEqual([grpc.status.UNAVAILABLE, "server is shutting down"]);
    } finally {
      ownClient.close();
      await own.stop();
      await removeContainersOf(own.app.instanceId);
    }
  });
});
