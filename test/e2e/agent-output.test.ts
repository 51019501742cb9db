/**
 * StreamAgentOutput end to end: the real server on a free port, a real busybox container
 * that prints a numbered line every 100 ms, and a @grpc/grpc-js client that loads the
 * .proto files. What is checked is what that client receives: the tail first (bounded by
 * tail_bytes), then live lines with none missing or repeated, and the end of the stream
 * when the container stops; and the codes for an unknown or never-started agent.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeDocker, removeContainersOf, TEST_IMAGE } from "../support/docker.js";
import { REPO_ROOT, startTestServer } from "../support/server.js";
import type { TestServer } from "../support/server.js";

// ------------------------------------------------------------------ a grpc-js client from the .proto files

type Callback = (err: grpc.ServiceError | null, res: unknown) => void;
type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => grpc.ClientUnaryCall;
type ServerStream = (req: object) => grpc.ClientReadableStream<unknown>;
type OrchestratorClient = grpc.Client & Record<string, Unary & ServerStream>;

const packageDefinition = protoLoader.loadSync("agentorch/v1/orchestrator_service.proto", {
  includeDirs: [path.join(REPO_ROOT, "proto"), path.join(REPO_ROOT, "third_party")],
  keepCase: true,
  enums: String,
  longs: String,
  defaults: true,
  oneofs: true,
});
const OrchestratorCtor = (
  grpc.loadPackageDefinition(packageDefinition) as unknown as {
    agentorch: { v1: { AgentOrchestratorService: new (address: string, creds: grpc.ChannelCredentials) => OrchestratorClient } };
  }
).agentorch.v1.AgentOrchestratorService;

function rpc<T>(client: OrchestratorClient, method: string, req: object): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method]!(req, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

/** The chunks of one StreamAgentOutput call as they arrive, and how it ended. */
class OutputStream {
  readonly chunks: Buffer[] = [];
  error: grpc.ServiceError | undefined;
  done = false;
  private readonly waiters = new Set<() => void>();
  readonly call: grpc.ClientReadableStream<unknown>;

  constructor(client: OrchestratorClient, req: { agent_id: string; follow?: boolean; tail_bytes?: number }) {
    this.call = client.StreamAgentOutput!({ ...req, tail_bytes: String(req.tail_bytes ?? 0) });
    this.call.on("data", (m: { data: Buffer }) => {
      this.chunks.push(m.data);
      this.notify();
    });
    this.call.on("error", (err: grpc.ServiceError) => {
      this.error = err;
      this.notify();
    });
    this.call.on("status", (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) this.done = true;
      this.notify();
    });
  }

  get ended(): boolean {
    return this.done || this.error !== undefined;
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }

  until(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.text.slice(-200))}, error ${this.error?.code ?? "none"}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  async cancel(): Promise<void> {
    if (this.ended) return;
    this.call.cancel();
    await this.until(() => this.ended, "the cancelled call to end");
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
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

async function streamError(s: OutputStream): Promise<grpc.ServiceError> {
  await s.until(() => s.ended, "the stream to end");
  if (!s.error) throw new Error("expected the stream to fail");
  return s.error;
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
let client: OrchestratorClient;
const registered: string[] = [];

async function register(agentId: string, start: boolean): Promise<void> {
  await rpc(client, "RegisterAgent", { agent: ticker(agentId) });
  registered.push(agentId);
  if (start) await rpc(client, "StartAgent", { agent_id: agentId });
}

beforeAll(async () => {
  server = await startTestServer();
  client = new OrchestratorCtor(server.address, grpc.credentials.createInsecure());
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
    const live = new OutputStream(client, { agent_id: id, follow: true });
    try {
      await live.until(() => lineNumbers(live.text).includes(5), "line 5");
    } finally {
      await live.cancel();
    }
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
    const warm = new OutputStream(client, { agent_id: id, follow: true });
    try {
      await warm.until(() => lineNumbers(warm.text).includes(5), "line 5");
    } finally {
      await warm.cancel();
    }
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
    const ownClient = new OrchestratorCtor(own.address, grpc.credentials.createInsecure());
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
