// Errors a client can act on without parsing messages: google.rpc details (ErrorInfo,
// BadRequest, RetryInfo) as @grpc/grpc-js, Connect JSON and Python grpcio see them.
import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { createRegistry } from "@bufbuild/protobuf";
import { grpcClient, rpc, rpcError } from "../support/grpc.js";
import { generatePython, pythonCalls, requirePythonGrpc } from "../support/python.js";
import { startTestServer, type TestServer } from "../support/server.js";

const ORCH = "agentorch.v1.AgentOrchestratorService";
const registry = createRegistry(ErrorInfoSchema, BadRequestSchema, RetryInfoSchema);

/** The details of a grpc-js error, decoded from grpc-status-details-bin as any client would. */
function detailsOf(err: grpc.ServiceError): Record<string, unknown>[] {
  const raw = err.metadata.get("grpc-status-details-bin")[0];
  if (!(raw instanceof Buffer)) throw new Error("no grpc-status-details-bin in the trailers");
  const status = fromBinary(StatusSchema, raw);
  expect(status.code).toBe(err.code);
  return status.details.map((any) => {
    const msg = anyUnpack(any, registry);
    if (!msg) throw new Error(`unknown detail ${any.typeUrl}`);
    return { type: msg.$typeName, ...msg };
  });
}

let server: TestServer;
// The engine address leads nowhere: StartAgent answers UNAVAILABLE, as with a dead engine.
beforeAll(async () => {
  server = await startTestServer({ env: { DOCKER_HOST: "unix:///nonexistent/docker.sock", AGENTORCH_MAX_REQUEST_BYTES: "65536" } });
});
afterAll(async () => {
  await server.stop();
});

describe("google.rpc error details over gRPC (@grpc/grpc-js)", () => {
  it("NOT_FOUND carries ErrorInfo AGENT_NOT_FOUND with the agent id", async () => {
    const client = grpcClient(server.address, ORCH);
    try {
      const err = await rpcError(rpc(client, "GetAgent", { agent_id: "nope" }));
      expect(err.code).toBe(grpc.status.NOT_FOUND);
      expect(detailsOf(err)).toEqual([
        expect.objectContaining({ type: "google.rpc.ErrorInfo", reason: "AGENT_NOT_FOUND", domain: "agentorch.dev", metadata: { agent_id: "nope" } }),
      ]);
    } finally {
      client.close();
    }
  });

  it("INVALID_ARGUMENT carries a BadRequest naming the field", async () => {
    const client = grpcClient(server.address, ORCH);
    try {
      const err = await rpcError(rpc(client, "RegisterAgent", { agent: { agent_id: "ok-id", image: "agentorch/busybox:test", resources: { cpus: 5000 } } }));
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      const details = detailsOf(err);
      expect(details).toContainEqual(expect.objectContaining({ type: "google.rpc.ErrorInfo", reason: "INVALID_ARGUMENT" }));
      const bad = details.find((d) => d.type === "google.rpc.BadRequest") as { fieldViolations: { field: string; description: string }[] };
      expect(bad.fieldViolations).toEqual([expect.objectContaining({ field: "resources.cpus", description: err.details })]);
    } finally {
      client.close();
    }
  });

  it("UNAVAILABLE (engine down) carries a RetryInfo and FAILED_PRECONDITION says INVALID_STATE", async () => {
    const client = grpcClient(server.address, ORCH);
    try {
      await rpc(client, "RegisterAgent", { agent: { agent_id: "details-1", image: "agentorch/busybox:test", command: ["sleep", "60"] } });
      const down = await rpcError(rpc(client, "StartAgent", { agent_id: "details-1" }));
      expect(down.code).toBe(grpc.status.UNAVAILABLE);
      const retry = detailsOf(down).find((d) => d.type === "google.rpc.RetryInfo") as { retryDelay: { seconds: bigint } };
      expect(retry.retryDelay.seconds).toBe(1n);

      const stop = await rpcError(rpc(client, "StopAgent", { agent_id: "details-1" }));
      expect(stop.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(detailsOf(stop)).toContainEqual(expect.objectContaining({ reason: "INVALID_STATE", metadata: { agent_id: "details-1" } }));
    } finally {
      client.close();
    }
  });

  it("a request over the size limit names the setting in its ErrorInfo", async () => {
    const client = grpcClient(server.address, ORCH);
    try {
      const err = await rpcError(rpc(client, "GetAgent", { agent_id: "x".repeat(70_000) }));
      expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(detailsOf(err)).toContainEqual(
        expect.objectContaining({ reason: "REQUEST_TOO_LARGE", metadata: { setting: "AGENTORCH_MAX_REQUEST_BYTES", limit: "65536" } }),
      );
    } finally {
      client.close();
    }
  });
});

describe("google.rpc error details over Connect JSON", () => {
  it("lists the details by type, a strict-JSON error included", async () => {
    const res = await fetch(`${server.url}/${ORCH}/ListAgents`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"stauts":1}' });
    const body = (await res.json()) as { code: string; details?: { type: string; value: string }[] };
    expect(body.code).toBe("invalid_argument");
    expect(body.details?.map((d) => d.type)).toEqual(["google.rpc.ErrorInfo", "google.rpc.BadRequest"]);
    const bad = fromBinary(BadRequestSchema, Buffer.from(body.details![1]!.value, "base64"));
    expect(bad.fieldViolations[0]?.field).toBe("stauts");
  });
});

const pythonMissing = requirePythonGrpc();
describe.skipIf(pythonMissing !== undefined)("google.rpc error details as Python grpcio sees them", () => {
  it("decodes ErrorInfo and BadRequest from grpc-status-details-bin", async () => {
    const gen = generatePython();
    const [notFound, invalid, ok] = await pythonCalls(server.address, gen, [
      { method: `/${ORCH}/GetAgent`, request: { agent_id: "nope" } },
      { method: `/${ORCH}/RegisterAgent`, request: { agent: { agent_id: "bad id!", image: "agentorch/busybox:test" } } },
      { method: `/${ORCH}/ListAgents`, request: {} },
    ]);
    expect(notFound).toMatchObject({
      code: "NOT_FOUND",
      status_code: 5,
      details: [{ type: "google.rpc.ErrorInfo", reason: "AGENT_NOT_FOUND", domain: "agentorch.dev", metadata: { agent_id: "nope" } }],
    });
    expect(invalid).toMatchObject({ code: "INVALID_ARGUMENT", status_code: 3 });
    const violations = (invalid as unknown as { details: { type: string; field_violations?: { field: string }[] }[] }).details.find((d) => d.type === "google.rpc.BadRequest");
    expect(violations?.field_violations?.[0]?.field).toBe("agent_id");
    expect(ok).toHaveProperty("ok");
  });
});
