/**
 * Mailbox flooding (issue 12, item 8), on the real server with a grpc-js client and the
 * default limits: one agent sends another 268 messages of 250 KB as fast as it can. Before
 * per-sender quotas, that filled the receiver's whole mailbox (64 MiB) and every later
 * message was refused, the operator's too. Now the flooder stops at its own quota
 * (AGENTORCH_MAILBOX_MAX_BYTES_PER_SENDER, 16 MiB), the refusal names that setting in its
 * message and ErrorInfo (reason MAILBOX_SENDER_QUOTA), and other senders still get in.
 * No container is started, so no Docker engine is needed.
 */
import { fromBinary, isMessage } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { createRegistry } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { type GrpcClients, grpcClients, rpc } from "../support/grpc.js";
import { startTestServer, type TestServer } from "../support/server.js";

let server: TestServer;
let c: GrpcClients;

beforeAll(async () => {
  server = await startTestServer({ env: { DOCKER_HOST: "unix:///nonexistent/docker.sock" } });
  c = grpcClients(server.address);
  for (const id of ["flooder", "victim", "operator"]) {
    await rpc(c.agents, "RegisterAgent", { agent: { agent_id: id, image: "agentorch/busybox:test" } });
  }
});
afterAll(async () => {
  c?.close();
  await server?.stop();
});

// google.protobuf.Value keeps protobufjs's camelCase field names under keepCase.
const message = (from: string, text: string) => ({
  message: { from_agent_id: from, to_agent_id: "victim", result_sharing: { task_id: "flood", summary: "s", result: { fields: { blob: { stringValue: text } } } } },
});

function errorInfo(err: grpc.ServiceError): { reason: string; metadata: Record<string, string> } | undefined {
  const raw = err.metadata.get("grpc-status-details-bin")[0];
  if (!(raw instanceof Buffer)) return undefined;
  for (const any of fromBinary(StatusSchema, raw).details) {
    const m = anyUnpack(any, createRegistry(ErrorInfoSchema));
    if (m && isMessage(m, ErrorInfoSchema)) return { reason: m.reason, metadata: m.metadata };
  }
  return undefined;
}

describe("mailbox flood", () => {
  it("stops one sender at its quota, naming the limit, and lets the others in", async () => {
    const blob = "x".repeat(250_000);
    let accepted = 0;
    let refusal: grpc.ServiceError | undefined;
    const t0 = Date.now();
    for (let i = 0; i < 268; i++) {
      try {
        await rpc(c.lifecycle, "SendMessage", message("flooder", blob));
        accepted++;
      } catch (err) {
        refusal = err as grpc.ServiceError;
        break;
      }
    }
    const floodMs = Date.now() - t0;
    console.log(`[mailbox-flood] ${accepted} messages of 250 KB accepted in ${floodMs} ms, then: ${refusal?.details}`);
    expect(refusal?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refusal!.details).toContain("AGENTORCH_MAILBOX_MAX_BYTES_PER_SENDER");
    expect(errorInfo(refusal!)).toEqual({
      reason: "MAILBOX_SENDER_QUOTA",
      metadata: { agent_id: "victim", setting: "AGENTORCH_MAILBOX_MAX_BYTES_PER_SENDER", limit: String(16 * 1024 * 1024) },
    });
    // 16 MiB of 250 KB messages (about 67), far from the mailbox's 64 MiB.
    expect(accepted).toBeGreaterThan(60);
    expect(accepted * 250_000).toBeLessThanOrEqual(16 * 1024 * 1024);
    // The operator (sending as its own agent) still gets in, with a message as big.
    const op = await rpc<{ sequence: string }>(c.lifecycle, "SendMessage", message("operator", blob));
    expect(Number(op.sequence)).toBe(accepted + 1);
    // Acknowledging gives the flooder its quota back.
    await rpc(c.lifecycle, "AckMessages", { agent_id: "victim", up_to_sequence: String(accepted + 1) });
    await rpc(c.lifecycle, "SendMessage", message("flooder", blob));
  }, 120_000);
});
