/**
 * A watch consumer that stops reading (issue 12, item 9): before, its stream stayed open
 * for good (the handler was blocked writing to it, so the core's cut-off never reached
 * it), and ended logged as `internal` when the client left. Now the server ends it while
 * the client is still stalled: RESOURCE_EXHAUSTED for the client, and an RPC log line with
 * that code. A consumer that reads is not cut off.
 */
import http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { FakeBackend } from "../fakes/fake-backend.js";
import { grpcClients, rpc, serverStream } from "../support/grpc.js";
import type { GrpcClients } from "../support/grpc.js";
import { startTestServer } from "../support/server.js";
import type { TestServer } from "../support/server.js";

let server: TestServer;
let c: GrpcClients;
beforeAll(async () => {
  server = await startTestServer({ env: { AGENTORCH_WATCH_MAX_BUFFER: "50" }, overrides: { backend: new FakeBackend() } });
  c = grpcClients(server.address);
});
afterAll(async () => {
  c?.close();
  await server?.stop();
});

it("stalled WatchAgents streams are cut off with RESOURCE_EXHAUSTED while stalled; a reading one is not", async () => {
  // Raw HTTP/2 streams that read nothing: no WINDOW_UPDATE, so the server's writes block.
  const session = http2.connect(server.url);
  session.on("error", () => undefined);
  const stalled = Array.from({ length: 5 }, () => {
    const stream = session.request({ ":method": "POST", ":path": "/agentorch.v1.AgentOrchestratorService/WatchAgents", "content-type": "application/grpc", te: "trailers" });
    stream.end(Buffer.alloc(5)); // an empty WatchAgentsRequest
    stream.pause();
    return stream;
  });
  /** gRPC status of a stream: from its trailers, or RESOURCE_EXHAUSTED for ENHANCE_YOUR_CALM (as gRPC clients read it). */
  const ends = stalled.map(
    (stream) =>
      new Promise<number>((resolve) => {
        let code = -1;
        stream.on("trailers", (t) => (code = Number(t["grpc-status"])));
        stream.on("error", () => undefined);
        stream.once("close", () => resolve(code >= 0 ? code : stream.rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM ? grpc.status.RESOURCE_EXHAUSTED : -stream.rstCode));
      }),
  );
  const reader = serverStream(c.agents, "WatchAgents", { resume_after_revision: "0" });
  let read = 0;
  reader.on("data", () => read++);
  reader.on("error", () => undefined);
  const big = "x".repeat(250); // larger events fill the stalled streams' windows sooner
  for (let i = 0; i < 800; i++) {
    await rpc(c.agents, "RegisterAgent", { agent: { agent_id: `stall-${i}`, name: big, image: "agentorch/busybox:test", command: ["true"] } });
  }
  // Cut off while the clients still read nothing: the server says so in its log, and
  // queues the status behind what it sent (the stream itself is reset only if it is still
  // not read 30 s later).
  const deadline = Date.now() + 10_000;
  const method = "agentorch.v1.AgentOrchestratorService/WatchAgents";
  const cutOff = () => server.logs.filter((l) => String(l.msg).startsWith("stream cut off") && l.method === method).length;
  while (cutOff() < stalled.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (cutOff() < stalled.length) console.log(JSON.stringify(server.logs.filter((l) => l.msg !== "rpc" || l.method !== "agentorch.v1.AgentOrchestratorService/RegisterAgent").slice(-15)));
  expect(cutOff()).toBe(stalled.length);
  // Reading again, each gets what was sent, then RESOURCE_EXHAUSTED; the handlers end (the
  // RPC log lines are written when they do) rather than stay blocked in a write for good.
  for (const stream of stalled) stream.resume();
  expect(await Promise.all(ends)).toEqual(stalled.map(() => grpc.status.RESOURCE_EXHAUSTED));
  await vi.waitFor(() => expect(server.logs.filter((l) => l.msg === "rpc" && l.method === method && l.code === "resource_exhausted").length).toBe(stalled.length), { timeout: 5_000 });
  expect(read).toBeGreaterThanOrEqual(800);
  reader.cancel();
  session.destroy();
}, 60_000);
