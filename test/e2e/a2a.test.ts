/**
 * A2A messaging end to end: the real server on a free port and a client that shares no
 * code with it (@grpc/grpc-js loading the .proto files). Agent a writes to agent b while
 * b is registered but not running; b's mailbox survives a restart of the service on the
 * same data directory, and its stream starts at the first message it did not acknowledge.
 * No container is started, so no Docker engine is needed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { grpcClients, rpc, serverStream } from "../support/grpc.js";
import type { GrpcClients } from "../support/grpc.js";
import { startTestServer } from "../support/server.js";
import type { TestServer } from "../support/server.js";

interface WireMessage {
  messageId: string;
  fromAgentId: string;
  toAgentId: string;
  taskId: string;
  sequence: string;
  kind?: string;
  statusUpdate?: { taskId: string; progress: number; message: string };
}

interface Sent {
  messageId: string;
  sequence: string;
}

/** Reads n messages (keep-alives skipped), then cancels the stream. */
function readMessages(client: grpc.Client, agentId: string, n: number, timeoutMs = 10_000): Promise<WireMessage[]> {
  return new Promise((resolve, reject) => {
    const got: WireMessage[] = [];
    const stream = serverStream<{ message: WireMessage | null }>(client, "StreamMessages", { agentId });
    const timer = setTimeout(() => {
      stream.cancel();
      reject(new Error(`stream gave ${got.length} of ${n} messages in ${timeoutMs} ms`));
    }, timeoutMs);
    stream.on("data", (res: { message: WireMessage | null }) => {
      if (!res.message) return; // keep-alive
      got.push(res.message);
      if (got.length === n) {
        clearTimeout(timer);
        stream.cancel();
        resolve(got);
      }
    });
    stream.on("error", (err: grpc.ServiceError) => {
      if (err.code === grpc.status.CANCELLED && got.length === n) return;
      clearTimeout(timer);
      reject(err);
    });
  });
}

const servers: TestServer[] = [];
const clients: GrpcClients[] = [];
const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-e2e-a2a-"));

async function serve(): Promise<GrpcClients & { server: TestServer }> {
  const server = await startTestServer({ dataDir });
  servers.push(server);
  const c = grpcClients(server.address, { fields: "json" });
  clients.push(c);
  return { ...c, server };
}

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dataDir, { recursive: true, force: true });
});

const update = (progress: number) => ({
  fromAgentId: "a",
  toAgentId: "b",
  statusUpdate: { taskId: "job-1", progress, message: `at ${progress}%` },
});

describe("mailboxes across a restart", () => {
  it("delivers to a stopped agent in order, and after a restart resumes at the first unacknowledged message", async () => {
    const first = await serve();
    for (const agentId of ["a", "b"]) await rpc(first.agents, "RegisterAgent", { agent: { agentId, image: "agentorch/busybox:test" } });
    expect((await rpc<{ agent: { status: string } }>(first.agents, "GetAgent", { agentId: "b" })).agent.status).toBe("AGENT_STATUS_IDLE");

    const sent = [];
    for (const p of [10, 50, 90]) sent.push(await rpc<Sent>(first.lifecycle, "SendMessage", { message: update(p) }));
    expect(sent.map((s) => s.sequence)).toEqual(["1", "2", "3"]);
    const unknown = await rpc(first.lifecycle, "SendMessage", { message: { ...update(1), toAgentId: "nobody" } }).catch((e: grpc.ServiceError) => e);
    expect((unknown as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);

    const received = await readMessages(first.lifecycle, "b", 3);
    expect(received.map((m) => [m.sequence, m.messageId, m.kind, m.statusUpdate?.progress, m.fromAgentId, m.taskId])).toEqual([
      ["1", sent[0]!.messageId, "statusUpdate", 10, "a", "job-1"],
      ["2", sent[1]!.messageId, "statusUpdate", 50, "a", "job-1"],
      ["3", sent[2]!.messageId, "statusUpdate", 90, "a", "job-1"],
    ]);
    expect((await rpc<{ acknowledgedCount: string }>(first.lifecycle, "AckMessages", { agentId: "b", upToSequence: "2" })).acknowledgedCount).toBe("2");

    await first.server.stop();
    const second = await serve();
    const afterRestart = await readMessages(second.lifecycle, "b", 1);
    expect(afterRestart.map((m) => [m.sequence, m.messageId, m.statusUpdate?.progress])).toEqual([["3", sent[2]!.messageId, 90]]);
    // The mailbox's sequence carries on where it was.
    expect((await rpc<Sent>(second.lifecycle, "SendMessage", { message: update(100) })).sequence).toBe("4");
    expect((await readMessages(second.lifecycle, "b", 2)).map((m) => m.sequence)).toEqual(["3", "4"]);
  });
});
