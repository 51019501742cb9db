// What a client that misspells something sees, through a real server: Connect JSON (POST
// and GET) and gRPC+JSON read strictly, INVALID_ARGUMENT naming the field, the accepted
// spellings, and nothing stored; a 415 that says what is accepted; size errors that name
// the setting an operator changes.
import http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { grpcClient, rpc, rpcError } from "../support/grpc.js";
import { startTestServer, type TestServer } from "../support/server.js";

const ORCH = "agentorch.v1.AgentOrchestratorService";
const LIFE = "agentorch.v1.LifecycleService";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ env: { AGENTORCH_MAX_REQUEST_BYTES: "65536" } });
});
afterAll(async () => {
  await server.stop();
});

async function postJson(path: string, body: string): Promise<{ status: number; json: { code?: string; message?: string } }> {
  const res = await fetch(`${server.url}/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });
  return { status: res.status, json: (await res.json()) as { code?: string; message?: string } };
}

/** One gRPC call with a JSON message (application/grpc+json), over a raw HTTP/2 stream. */
function grpcJson(path: string, body: string): Promise<{ status: string; message: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(server.url);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": `/${path}`, "content-type": "application/grpc+json", te: "trailers" });
    const data = Buffer.from(body);
    const frame = Buffer.alloc(5 + data.length);
    frame.writeUInt32BE(data.length, 1);
    data.copy(frame, 5);
    let headers: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (headers = { ...headers, ...t }));
    stream.on("data", () => undefined);
    stream.on("close", () => {
      session.close();
      resolve({ status: String(headers["grpc-status"]), message: decodeURIComponent(String(headers["grpc-message"] ?? "")) });
    });
    stream.end(frame);
  });
}

describe("strict JSON requests", () => {
  it("refuses an enum name without its prefix, suggesting the right one, instead of listing every agent", async () => {
    const { status, json } = await postJson(`${ORCH}/ListAgents`, '{"status":"RUNNING"}');
    expect(status).toBe(400);
    expect(json.code).toBe("invalid_argument");
    expect(json.message).toContain('status: unknown value "RUNNING" for agentorch.v1.AgentStatus');
    expect(json.message).toContain('did you mean "AGENT_STATUS_RUNNING"');
    expect(json.message).toContain("accepted: AGENT_STATUS_UNSPECIFIED, AGENT_STATUS_IDLE");
    // The full name (and proto field names) still work.
    expect((await postJson(`${ORCH}/ListAgents`, '{"status":"AGENT_STATUS_RUNNING","page_size":5}')).status).toBe(200);
  });

  it("refuses an unknown field with a close match named", async () => {
    const { json } = await postJson(`${ORCH}/GetAgent`, '{"agentID":"x"}');
    expect(json.code).toBe("invalid_argument");
    expect(json.message).toBe(
      'agentID: unknown field "agentID" in agentorch.v1.GetAgentRequest (did you mean "agentId"?); accepted: agentId (or their proto names, e.g. snake_case)',
    );
  });

  it("refuses a misspelt timeout and priority of SubmitTask instead of running with defaults", async () => {
    const timeut = await postJson(`${LIFE}/SubmitTask`, '{"directive":{"goal":"x"},"agentId":"a","timeut":"5s"}');
    expect(timeut.json.message).toContain('timeut: unknown field "timeut" in agentorch.v1.SubmitTaskRequest');
    expect(timeut.json.message).toContain("accepted: directive, agentId, template, priority, timeout");
    const high = await postJson(`${LIFE}/SubmitTask`, '{"directive":{"goal":"x"},"agentId":"a","priority":"HIGH"}');
    expect(high.json.message).toContain('did you mean "TASK_PRIORITY_HIGH"');
  });

  it("refuses a nested unknown enum by its path and stores nothing", async () => {
    const body = JSON.stringify({ agent: { agentId: "strict-1", image: "agentorch/busybox:test", policy: "CONTAINER_DIRECT" } });
    const { json } = await postJson(`${ORCH}/RegisterAgent`, body);
    expect(json.code).toBe("invalid_argument");
    expect(json.message).toMatch(/^agent\.policy: unknown value "CONTAINER_DIRECT" for agentorch\.v1\.SandboxPolicy/);
    const get = await postJson(`${ORCH}/GetAgent`, '{"agentId":"strict-1"}');
    expect(get.json.code).toBe("not_found");
  });

  it("reads Connect GET requests strictly too", async () => {
    const message = encodeURIComponent('{"stauts":"AGENT_STATUS_IDLE"}');
    const res = await fetch(`${server.url}/${ORCH}/ListAgents?connect=v1&encoding=json&message=${message}`);
    const json = (await res.json()) as { code: string; message: string };
    expect(res.status).toBe(400);
    expect(json.message).toContain('unknown field "stauts" in agentorch.v1.ListAgentsRequest (did you mean "status"?)');
  });

  it("reads gRPC with JSON messages strictly", async () => {
    const out = await grpcJson(`${ORCH}/ListAgents`, '{"status":"IDLE"}');
    expect(out.status).toBe(String(grpc.status.INVALID_ARGUMENT));
    expect(out.message).toContain('did you mean "AGENT_STATUS_IDLE"');
    expect((await grpcJson(`${ORCH}/ListAgents`, '{"status":"AGENT_STATUS_IDLE"}')).status).toBe("0");
  });

  it("still names the problem of a value of the wrong type", async () => {
    const { json } = await postJson(`${LIFE}/SubmitTask`, '{"directive":{"goal":"x"},"agentId":"a","timeout":"5"}');
    expect(json.code).toBe("invalid_argument");
    expect(json.message).toContain("google.protobuf.Duration");
  });
});

describe("answers a client can act on", () => {
  it("answers an unsupported content type with 415 and the accepted ones", async () => {
    const res = await fetch(`${server.url}/${ORCH}/ListAgents`, { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" });
    expect(res.status).toBe(415);
    const text = await res.text();
    expect(text).toContain('unsupported content-type "text/plain"');
    expect(text).toContain("application/json");
    expect(text).toContain("application/grpc");
  });

  it("names AGENTORCH_MAX_REQUEST_BYTES when a request is too large, over Connect and gRPC", async () => {
    const big = JSON.stringify({ agentId: "x".repeat(70_000) });
    const connect = await postJson(`${ORCH}/GetAgent`, big);
    expect(connect.status).toBe(429);
    expect(connect.json.code).toBe("resource_exhausted");
    expect(connect.json.message).toMatch(/request message of \d+ bytes is larger than the server's limit of 65536 bytes \(AGENTORCH_MAX_REQUEST_BYTES\)/);

    const client = grpcClient(server.address, ORCH);
    try {
      const err = await rpcError(rpc(client, "GetAgent", { agent_id: "x".repeat(70_000) }));
      expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(err.details).toContain("AGENTORCH_MAX_REQUEST_BYTES");
    } finally {
      client.close();
    }
  });
});
