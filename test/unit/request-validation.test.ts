/**
 * validateBinaryRequests (src/server/request-validation.ts): a request message that does
 * not decode is the client's fault, so it answers INVALID_ARGUMENT (connect itself says
 * INTERNAL) on every protocol, before the handler runs; valid messages reach the handler
 * byte for byte, and what connect already answers right (too large) is left to it.
 * Driven through the router's universal handlers with hand-made bodies, since a client
 * would refuse to send them.
 */
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { createConnectRouter } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { describe, expect, it } from "vitest";
import { Health, HealthCheckRequestSchema, HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.js";
import { validateBinaryRequests } from "../../src/server/request-validation.js";

const READ_MAX = 1024;
const VALID = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "agentorch.v1.LifecycleService" }));
/** Field 1 (string) claims 5 bytes and has 1: "premature EOF". */
const TRUNCATED = new Uint8Array([0x0a, 0x05, 0x61]);
/** Field 1 (string) holds a byte that is not UTF-8. */
const BAD_UTF8 = new Uint8Array([0x0a, 0x01, 0xff]);

function setup() {
  const seen: string[] = [];
  // As the server builds it (connectNodeAdapter): gzip and br accepted, reads bounded.
  const router = createConnectRouter({ readMaxBytes: READ_MAX, acceptCompression: [compressionGzip, compressionBrotli] });
  router.service(Health, {
    check(req) {
      seen.push(req.service);
      return { status: Serving.SERVING };
    },
  });
  validateBinaryRequests(router, READ_MAX);
  const handler = router.handlers.find((h) => h.requestPath === "/grpc.health.v1.Health/Check")!;
  return { handler, seen };
}

/** One enveloped message (gRPC, gRPC-Web, Connect streaming framing). */
function envelope(data: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

interface Answer {
  status: number;
  header: Headers;
  body: string;
  trailer: Headers;
}

async function call(handler: UniversalHandler, req: { method?: string; url?: string; header: Record<string, string>; chunks?: Uint8Array[] }): Promise<Answer> {
  const chunks = req.chunks ?? [];
  const res = await handler({
    httpVersion: "2.0",
    method: req.method ?? "POST",
    url: req.url ?? "http://localhost/grpc.health.v1.Health/Check",
    header: new Headers(req.header),
    body: (async function* () {
      yield* chunks;
    })(),
    signal: new AbortController().signal,
  });
  const parts: Uint8Array[] = [];
  for await (const p of res.body ?? []) parts.push(p);
  return { status: res.status, header: res.header ?? new Headers(), body: Buffer.concat(parts).toString("latin1"), trailer: res.trailer ?? new Headers() };
}

const grpc = { "content-type": "application/grpc+proto", te: "trailers" };
/** gRPC's status: in the trailers, or in the headers of a trailers-only answer. */
const grpcStatus = (a: Answer) => a.trailer.get("grpc-status") ?? a.header.get("grpc-status");

describe("validateBinaryRequests", () => {
  it("passes a valid gRPC message to the handler unchanged, even split across chunks", async () => {
    const { handler, seen } = setup();
    const whole = envelope(VALID);
    const answer = await call(handler, { header: grpc, chunks: [whole.subarray(0, 3), whole.subarray(3, 9), whole.subarray(9)] });
    expect(grpcStatus(answer)).toBe("0");
    expect(seen).toEqual(["agentorch.v1.LifecycleService"]);
  });

  it("answers INVALID_ARGUMENT, naming the message type, for a gRPC message that does not decode", async () => {
    for (const bad of [TRUNCATED, BAD_UTF8]) {
      const { handler, seen } = setup();
      const answer = await call(handler, { header: grpc, chunks: [envelope(bad)] });
      expect(grpcStatus(answer)).toBe("3");
      expect(decodeURIComponent(answer.trailer.get("grpc-message") ?? answer.header.get("grpc-message") ?? "")).toContain("grpc.health.v1.HealthCheckRequest");
      expect(seen).toEqual([]);
    }
  });

  it("checks gzip-compressed messages after decompressing, and refuses a compressed one sent without an encoding", async () => {
    const { handler, seen } = setup();
    const ok = await call(handler, { header: { ...grpc, "grpc-encoding": "gzip" }, chunks: [envelope(gzipSync(VALID), 1)] });
    expect(grpcStatus(ok)).toBe("0");
    const bad = await call(handler, { header: { ...grpc, "grpc-encoding": "gzip" }, chunks: [envelope(gzipSync(TRUNCATED), 1)] });
    expect(grpcStatus(bad)).toBe("3");
    const corrupt = await call(handler, { header: { ...grpc, "grpc-encoding": "gzip" }, chunks: [envelope(new Uint8Array([1, 2, 3]), 1)] });
    expect(grpcStatus(corrupt)).toBe("3");
    const unnamed = await call(handler, { header: grpc, chunks: [envelope(gzipSync(VALID), 1)] });
    expect(grpcStatus(unnamed)).toBe("3");
    expect(seen).toEqual(["agentorch.v1.LifecycleService"]);
  });

  it("leaves a message over the read limit to connect, which answers RESOURCE_EXHAUSTED", async () => {
    const { handler, seen } = setup();
    const big = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "x".repeat(READ_MAX + 10) }));
    const answer = await call(handler, { header: grpc, chunks: [envelope(big)] });
    expect(grpcStatus(answer)).toBe("8");
    expect(seen).toEqual([]);
  });

  it("answers a Connect unary binary or JSON request that does not decode with HTTP 400 invalid_argument", async () => {
    const cases: [Record<string, string>, Uint8Array][] = [
      [{ "content-type": "application/proto" }, TRUNCATED],
      [{ "content-type": "application/json" }, new Uint8Array([0x7b, 0x22, 0x73, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])], // {"service":"\xff"}
    ];
    for (const [header, body] of cases) {
      const { handler, seen } = setup();
      const answer = await call(handler, { header, chunks: [body] });
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body)).toMatchObject({ code: "invalid_argument" });
      expect(seen).toEqual([]);
    }
    const { handler, seen } = setup();
    expect((await call(handler, { header: { "content-type": "application/proto" }, chunks: [VALID] })).status).toBe(200);
    expect(seen).toEqual(["agentorch.v1.LifecycleService"]);
  });

  it("answers a Connect GET whose proto message does not decode with HTTP 400 invalid_argument", async () => {
    const { handler, seen } = setup();
    const url = (msg: Uint8Array) =>
      `http://localhost/grpc.health.v1.Health/Check?connect=v1&encoding=proto&base64=1&message=${Buffer.from(msg).toString("base64url")}`;
    const bad = await call(handler, { method: "GET", url: url(TRUNCATED), header: {} });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ code: "invalid_argument" });
    expect(seen).toEqual([]);
  });
});
