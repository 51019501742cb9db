/**
 * Bad input on every RPC, over four transports: gRPC (HTTP/2, hand-made frames), Connect JSON
 * and Connect proto (HTTP/1.1: unary, enveloped streams, GET) and gRPC-Web (HTTP/1.1, binary
 * and text), generated with fast-check from the services' descriptors with a fixed seed:
 * random and malformed bodies, truncated and lying frames and envelopes, invalid UTF-8,
 * oversize strings, maps and lists, deeply nested messages and Structs, wrong JSON types,
 * unknown enum values, huge page sizes, bogus page tokens, bad headers and encodings.
 * Inputs go in batches, many in flight over a few connections. For every input:
 * - the reply is a proper status: never INTERNAL, UNKNOWN or DATA_LOSS, never a hang;
 * - when the call failed, nothing stored changed: a digest of every row of the store before
 *   and after each batch; a batch in which some call succeeded (a valid write may write) and
 *   the digest moved has its failed inputs sent again one at a time, each judged alone;
 * and afterwards the process is alive, healthy, and logged no uncaught error.
 * A configured maximum request size is enforced on both transports.
 * AGENTORCH_FAULT_FUZZ_RUNS (inputs per RPC and transport) and AGENTORCH_FAULT_SEED scale it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { loadavg } from "node:os";
import { tmpdir } from "node:os";
import path from "node:path";
import type { DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { LifecycleService } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { AgentOrchestratorService } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { describeDocker, TEST_IMAGE } from "../support/docker.js";
import { ensureCompiled } from "./support/build.js";
import { type FaultEngine, faultEngine } from "./support/engine.js";
import { openStoreDigest, type StoreDigest } from "./support/db-digest.js";
import { faultConfig, reportFigures } from "./support/fault-config.js";
import {
  deepBytes,
  emptyBinary,
  INVALID_UTF8,
  type KnownIds,
  messageJsonArb,
  nested,
  toBinaryIfValid,
  withInvalidUtf8,
} from "./support/fuzz-arbitraries.js";
import { type Clients, connect, healthOf, unary } from "./support/grpc.js";
import { type ServiceProcess, spawnService } from "./support/service.js";
import { connectEnvelope, frame, H2Client, http1, type WireOutcome } from "./support/wire.js";

const cfg = faultConfig();
const MAX_REQUEST_BYTES = 256 * 1024;
const CLIENT_TIMEOUT_MS = 15_000;
const STREAM_DEADLINE_MS = 300;

const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-fault-fuzz-"));
let proc: ServiceProcess;
let c: Clients;
let base: string;
let h2: H2Client;
/** HTTP/2 sessions the gRPC fuzz spreads its streams over (one session's trouble is not every call's). */
let h2Pool: H2Client[] = [];
let h2Next = 0;
const nextH2 = (): H2Client => h2Pool[h2Next++ % h2Pool.length]!;
let store: StoreDigest;
const known: KnownIds = { agents: ["fz-idle", "fz-run", "fz-b"], tasks: [] };

interface Rpc {
  path: string;
  name: string;
  input: DescMessage;
  kind: DescMethod["methodKind"];
  idempotent: boolean;
}

const SERVICES: DescService[] = [AgentOrchestratorService, LifecycleService, Health, ServerReflection];
const RPCS: Rpc[] = SERVICES.flatMap((s) =>
  s.methods.map((m) => ({
    path: `/${s.typeName}/${m.name}`,
    name: m.name,
    input: m.input,
    kind: m.methodKind,
    idempotent: m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
  })),
);

/** Calls that may legitimately wait until the deadline we give them. */
const mayWait = (rpc: Rpc) => rpc.kind !== "unary" || rpc.name === "SendAndWait";

interface Tally {
  tried: number;
  codes: Record<string, number>;
  violations: string[];
  /** Batches run, and how many of them changed the store (through calls that succeeded). */
  batches: number;
  batchesWithWrites: number;
  /** Failed inputs of such batches, sent again one at a time with a digest around each. */
  rejudged: number;
  /** Time sending and judging, and time generating the inputs. */
  ms: number;
  generateMs: number;
}
const tallies: Record<string, Tally> = {};
const tally = (transport: string): Tally => (tallies[transport] ??= { tried: 0, codes: {}, violations: [], batches: 0, batchesWithWrites: 0, rejudged: 0, ms: 0, generateMs: 0 });

/** What is wrong with a reply, if anything: it must be a proper status, never INTERNAL and the like, never a hang. */
function problemOf(rpc: Rpc, out: WireOutcome): string | undefined {
  if (out.timedOut) return `no reply within ${CLIENT_TIMEOUT_MS} ms`;
  if (out.code === "client_reset") return undefined;
  if (out.broken) return `the connection broke without a status: ${out.broken}`;
  if (["internal", "unknown", "data_loss"].includes(out.code)) return `${out.code.toUpperCase()}: ${out.message}`;
  if (out.code === "deadline_exceeded" && !mayWait(rpc)) return "DEADLINE_EXCEEDED on a unary call that had no deadline";
  if (out.code === "no_end_stream" || out.code === "bad_end_stream" || out.code === "no_status") return `no proper end of stream (${out.code})`;
  if (/^http_5/.test(out.code) && !(rpc.kind === "bidi_streaming" && out.code === "http_505")) return `HTTP ${out.httpStatus}: ${out.message}`;
  // A bare 400 (no Connect error body) reads as INTERNAL to Connect clients.
  if (out.code === "http_400") return "HTTP 400 without a Connect error";
  return undefined;
}

function record(transport: string, rpc: Rpc, what: string, out: WireOutcome): void {
  const t = tally(transport);
  if (process.env.AGENTORCH_FAULT_TRACE === "1") console.log(`[trace] ${transport} ${rpc.name} [${what}] -> ${out.code} ${out.httpStatus} ${out.broken ?? ""} ${out.message.slice(0, 80)}`);
  t.tried++;
  t.codes[out.code] = (t.codes[out.code] ?? 0) + 1;
  const problem = problemOf(rpc, out);
  if (problem !== undefined && t.violations.length < 40) t.violations.push(`${transport} ${rpc.path} [${what}]: ${problem}`);
}

/** Judges one input alone: a proper status, and nothing stored changed if it failed. */
async function judge(transport: string, rpc: Rpc, what: string, send: () => Promise<WireOutcome>): Promise<void> {
  const t = tally(transport);
  const before = store.digest();
  const out = await send();
  record(transport, rpc, what, out);
  if (problemOf(rpc, out) === undefined && out.code !== "ok" && out.code !== "client_reset") {
    const after = store.digest();
    if (after !== before) {
      // A stream can outlive its deadline by a hair; let late writes (none expected) land before blaming the call.
      await new Promise((r) => setTimeout(r, 50));
      if (store.digest() !== before && t.violations.length < 40) t.violations.push(`${transport} ${rpc.path} [${what}] failed with ${out.code} but changed the store`);
    }
  }
}

interface FuzzInput {
  rpc: Rpc;
  what: string;
  send: () => Promise<WireOutcome>;
}

/**
 * Judges a batch of inputs sent concurrently (`concurrency` in flight): every reply is
 * checked on its own; "nothing stored changed" is checked once for the batch, with a digest
 * of the store before and after. When the digest moved and some call of the batch succeeded
 * (a valid write is allowed to write), the batch's failed inputs are sent again one at a
 * time, each judged alone; when it moved and no call succeeded, that is a violation (and the
 * inputs are also judged one by one, to name the culprit).
 */
async function judgeBatch(transport: string, inputs: FuzzInput[], concurrency: number): Promise<void> {
  const t = tally(transport);
  const began = Date.now();
  const before = store.digest();
  const outcomes: (WireOutcome | undefined)[] = new Array(inputs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, inputs.length) }, async () => {
      for (let i = next++; i < inputs.length; i = next++) {
        const input = inputs[i]!;
        const out = await input.send();
        outcomes[i] = out;
        record(transport, input.rpc, input.what, out);
      }
    }),
  );
  t.batches++;
  let after = store.digest();
  if (after !== before) {
    await new Promise((r) => setTimeout(r, 50));
    after = store.digest();
  }
  if (after !== before) {
    const unsure = (o: WireOutcome | undefined) => o === undefined || o.code === "ok" || o.code === "client_reset";
    const anyWrite = outcomes.some((o) => unsure(o));
    if (anyWrite) t.batchesWithWrites++;
    else if (t.violations.length < 40) t.violations.push(`${transport}: a batch of ${inputs.length} inputs changed the store though none succeeded`);
    for (let i = 0; i < inputs.length; i++) {
      if (unsure(outcomes[i]) || problemOf(inputs[i]!.rpc, outcomes[i]!) !== undefined) continue;
      t.rejudged++;
      t.tried--; // counted again by judge()
      t.codes[outcomes[i]!.code]!--;
      await judge(transport, inputs[i]!.rpc, `${inputs[i]!.what} (again, alone)`, inputs[i]!.send);
    }
  }
  t.ms += Date.now() - began;
}

/**
 * Runs `total` inputs from arb, in batches of `batch` (each sampled with its own seed, so a
 * run is replayed by its seed), `concurrency` in flight. The next batch is generated, a few
 * inputs at a time, while the current one is in flight. A long run reports its progress.
 */
async function fuzz(transport: string, arb: fc.Arbitrary<FuzzInput>, seed: number, total: number, batch = 256, concurrency = 48): Promise<void> {
  const t = tally(transport);
  // Slices of 16 inputs, each sampled with its own seed (derived from the run's), yielding to
  // the event loop in between so that replies are read while the next batch is made.
  const generate = async (n: number, size: number): Promise<FuzzInput[]> => {
    const out: FuzzInput[] = [];
    for (let slice = 0; out.length < size; slice++) {
      const t0 = Date.now();
      out.push(...fc.sample(arb, { seed: seed + (n * 1024 + slice) * 7919, numRuns: Math.min(16, size - out.length) }));
      t.generateMs += Date.now() - t0;
      await new Promise((r) => setImmediate(r));
    }
    return out;
  };
  let lastReport = Date.now();
  let n = 0;
  let pending = await generate(n, Math.min(batch, total));
  for (let done = 0; done < total; ) {
    const size = pending.length;
    const running = judgeBatch(transport, pending, concurrency);
    const nextSize = Math.min(batch, total - done - size);
    // Let the batch's requests go out before this process spends its time generating.
    await new Promise((r) => setImmediate(r));
    const nextBatch = nextSize > 0 ? generate(++n, nextSize) : Promise.resolve([]);
    await running;
    pending = await nextBatch;
    done += size;
    if (cfg.long && Date.now() - lastReport > 60_000) {
      lastReport = Date.now();
      reportFigures("bad-input-progress", { transport, tried: t.tried, of: total, ms: t.ms, generateMs: t.generateMs, batchesWithWrites: t.batchesWithWrites, violations: t.violations.length, codes: t.codes, loadAverage: loadavg() });
    }
  }
}

let engine: FaultEngine;
const suiteBegan = Date.now();
const loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100);

beforeAll(async () => {
  [engine] = await Promise.all([faultEngine(), ensureCompiled()]);
  proc = spawnService({
    compiled: true,
    dataDir,
    dockerHost: engine.dockerHost,
    env: {
      AGENTORCH_MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES),
      AGENTORCH_REAP_INTERVAL_MS: "3600000",
      AGENTORCH_ENFORCE_INTERVAL_MS: "3600000",
      AGENTORCH_LOG_LEVEL: "info",
    },
  });
  const info = await proc.started;
  base = info.url;
  c = connect(info.address);
  h2 = new H2Client(info.url);
  h2Pool = Array.from({ length: 4 }, () => new H2Client(info.url));
  // Known things for the fuzzer to hit. The one task slot is held by a day-long task on an
  // agent the fuzzer does not know, so whatever it submits waits: no success starts
  // background work that would write to the store while a later failing call is judged.
  await unary(c.life, "UpdateLifecycleConfig", {
    config: { max_concurrent_tasks: 1, max_execution_time: { seconds: "86400" }, zombie_timeout: { seconds: String(30 * 86400) } },
    update_mask: { paths: ["max_concurrent_tasks", "max_execution_time", "zombie_timeout"] },
  });
  await unary(c.orch, "RegisterAgent", { agent: { agent_id: "slot-holder", image: TEST_IMAGE, command: ["sleep", "86400"], lifecycle: { max_idle: { seconds: "0" } } } });
  const slot = await unary<{ task: { task_id: string } }>(c.life, "SubmitTask", { directive: { goal: "hold the slot" }, agent_id: "slot-holder" });
  await waitWorking(slot.task.task_id);
  for (const id of known.agents) {
    await unary(c.orch, "RegisterAgent", { agent: { agent_id: id, image: TEST_IMAGE, command: ["sleep", "3600"], lifecycle: { max_idle: { seconds: "0" } } } });
  }
  await unary(c.orch, "StartAgent", { agent_id: "fz-run" });
  const task = await unary<{ task: { task_id: string } }>(c.life, "SubmitTask", { directive: { goal: "never runs" }, agent_id: "fz-idle" });
  known.tasks.push(task.task.task_id);
  await unary(c.life, "SendMessage", { message: { from_agent_id: "fz-b", to_agent_id: "fz-idle", handshake: { agent_id: "fz-b" } } });
  await unary(c.life, "PublishAgentCard", { card: { agent_id: "fz-b", capabilities: ["x"] } });
  store = openStoreDigest(dataDir);
}, 120_000);

afterAll(async () => {
  store?.close();
  h2?.close();
  for (const x of h2Pool) x.close();
  fuzzAgent.destroy();
  c?.close();
  const instance = await proc?.started.then((i) => i.instanceId).catch(() => undefined);
  await proc?.stop(15_000);
  if (instance) await engine?.removeContainersOf(instance);
  await engine?.close();
  rmSync(dataDir, { recursive: true, force: true });
}, 120_000);

async function waitWorking(taskId: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const t = await unary<{ task: { state: string; container_id: string } }>(c.life, "GetTask", { task_id: taskId });
    if (t.task.state === "TASK_STATE_WORKING" && t.task.container_id !== "") return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`task ${taskId} did not start`);
}

// ------------------------------------------------------------------ gRPC (HTTP/2)

type GrpcCase = { what: string; body: Uint8Array; contentType?: string; headers?: Record<string, string>; resetAfterSend?: boolean };

function grpcCaseArb(rpc: Rpc): fc.Arbitrary<GrpcCase> {
  const json = messageJsonArb(rpc.input, known);
  const validBinary = json.map((j) => toBinaryIfValid(rpc.input, j) ?? emptyBinary(rpc.input));
  return fc.oneof(
    // Structured: binary when the JSON is valid proto3 JSON, else the JSON itself as grpc+json.
    json.map((j) => {
      const bin = toBinaryIfValid(rpc.input, j);
      return bin
        ? { what: "random message", body: frame(bin) }
        : { what: "random JSON (grpc+json)", body: frame(Buffer.from(JSON.stringify(j))), contentType: "application/grpc+json" };
    }),
    fc.tuple(validBinary, fc.nat(), fc.constantFrom(...INVALID_UTF8)).map(([b, n, bad]) => ({ what: "invalid UTF-8 in a string field", body: frame(withInvalidUtf8(rpc.input, b, n, bad)) })),
    fc.uint8Array({ maxLength: 300 }).map((b) => ({ what: "random bytes in a frame", body: frame(b) })),
    fc.uint8Array({ maxLength: 40 }).map((b) => ({ what: "random bytes, no frame", body: b })),
    fc.tuple(validBinary, fc.nat()).map(([b, n]) => ({ what: "message cut short", body: frame(b.subarray(0, b.length > 0 ? n % b.length : 0)) })),
    fc.tuple(validBinary, fc.integer({ min: 1, max: 1000 })).map(([b, extra]) => ({ what: "length prefix larger than the data", body: frame(b, { length: b.length + extra }) })),
    fc.tuple(validBinary, fc.nat({ max: 4 })).map(([b, cut]) => ({ what: "frame header cut short", body: frame(b).subarray(0, cut) })),
    validBinary.map((b) => ({ what: "compressed flag without an encoding", body: frame(b, { flags: 1 }) })),
    validBinary.map((b) => ({ what: "gzip flag over plain bytes", body: frame(b, { flags: 1 }), headers: { "grpc-encoding": "gzip" } })),
    validBinary.map((b) => ({ what: "two messages for one call", body: Buffer.concat([frame(b), frame(b)]) })),
    fc.constant({ what: "no message at all", body: new Uint8Array(0) }),
    fc.constant({ what: "length prefix 4 GiB", body: frame(new Uint8Array(16), { length: 0xffffffff }) }),
    fc.tuple(fc.integer({ min: 1, max: 20 }), fc.constantFrom(101, 150, 1000, 20_000)).map(([no, depth]) => ({ what: `nested ${depth} deep`, body: frame(deepBytes(no, depth)) })),
    fc.tuple(validBinary, fc.constantFrom("abc", "99999999999H", "-1S", "1.5S", "")).map(([b, t]) => ({ what: `grpc-timeout "${t}"`, body: frame(b), headers: { "grpc-timeout": t } })),
    fc.tuple(validBinary, fc.constantFrom("application/grpc+bogus", "application/json", "text/plain", "application/grpc-web-text", "")).map(([b, ct]) => ({ what: `content-type "${ct}"`, body: frame(b), contentType: ct })),
    validBinary.map((b) => ({ what: "grpc-encoding bogus", body: frame(b, { flags: 1 }), headers: { "grpc-encoding": "bogus" } })),
    validBinary.map((b) => ({ what: "client resets after sending", body: frame(b), resetAfterSend: true })),
  );
}

function sendGrpc(rpc: Rpc, k: GrpcCase, client: H2Client = h2): Promise<WireOutcome> {
  const headers = { ...(mayWait(rpc) ? { "grpc-timeout": `${STREAM_DEADLINE_MS}m` } : {}), ...k.headers };
  // Like grpc-js, the body is sent to its end even when the answer comes first.
  return client.call({ path: rpc.path, body: k.body, contentType: k.contentType, headers, timeoutMs: CLIENT_TIMEOUT_MS, resetAfterSend: k.resetAfterSend, keepSending: !k.resetAfterSend });
}

// ------------------------------------------------------------------ Connect (HTTP/1.1)

type ConnectCase = { what: string; method: "GET" | "POST" | "PUT"; query?: string; body?: Uint8Array; contentType?: string; headers?: Record<string, string> };

function connectCaseArb(rpc: Rpc, flavour: "json" | "proto"): fc.Arbitrary<ConnectCase> {
  const streaming = rpc.kind !== "unary";
  const json = messageJsonArb(rpc.input, known);
  const wrap = (data: Uint8Array, proto = false): Pick<ConnectCase, "body" | "contentType"> =>
    streaming
      ? { body: connectEnvelope(data), contentType: proto ? "application/connect+proto" : "application/connect+json" }
      : { body: data, contentType: proto ? "application/proto" : "application/json" };
  const validBinary = json.map((j) => toBinaryIfValid(rpc.input, j) ?? emptyBinary(rpc.input));
  const jsonCases: fc.Arbitrary<ConnectCase>[] = [
    json.map((j) => ({ what: "random JSON", method: "POST" as const, ...wrap(Buffer.from(JSON.stringify(j))) })),
    fc.string({ maxLength: 60 }).map((s) => ({ what: "not JSON", method: "POST" as const, ...wrap(Buffer.from(s)) })),
    fc.tuple(json, fc.nat()).map(([j, n]) => {
      const text = Buffer.from(JSON.stringify(j));
      return { what: "JSON cut short", method: "POST" as const, ...wrap(text.subarray(0, text.length > 1 ? 1 + (n % (text.length - 1)) : 0)) };
    }),
    fc.tuple(fc.constantFrom(...INVALID_UTF8), fc.constantFrom(...rpc.input.fields.map((f) => f.jsonName), "x")).map(([bad, field]) => ({
      what: "invalid UTF-8 in a JSON string",
      method: "POST" as const,
      ...wrap(Buffer.concat([Buffer.from(`{"${field}":"a`), Buffer.from(bad), Buffer.from('"}')])),
    })),
    fc.constantFrom(150, 5000, 100_000).map((d) => ({
      what: `JSON nested ${d} deep`,
      method: "POST" as const,
      // Text, not JSON.stringify: the nesting is for the server's parser, not ours.
      ...wrap(Buffer.from(d <= 5000 ? `{"x":${"[".repeat(d)}1${"]".repeat(d)}}` : `{"x":${"[".repeat(d)}`)),
    })),
    fc.constantFrom("text/plain", "application/xml", "", "application/json; charset=latin1", "application/grpc").map((ct) => ({
      what: `content-type "${ct}"`,
      method: "POST" as const,
      body: Buffer.from("{}"),
      contentType: ct,
    })),
    fc.constant({ what: "PUT", method: "PUT" as const, body: Buffer.from("{}"), contentType: "application/json" }),
    fc.constantFrom("abc", "-5", "99999999999999").map((t) => ({ what: `connect-timeout-ms "${t}"`, method: "POST" as const, ...wrap(Buffer.from("{}")), headers: { "connect-timeout-ms": t } })),
    fc.constantFrom("2", "0", "x").map((v) => ({ what: `connect-protocol-version "${v}"`, method: "POST" as const, ...wrap(Buffer.from("{}")), headers: { "connect-protocol-version": v } })),
  ];
  const protoCases: fc.Arbitrary<ConnectCase>[] = [
    validBinary.map((b) => ({ what: "random message", method: "POST" as const, ...wrap(b, true) })),
    fc.uint8Array({ maxLength: 200 }).map((b) => ({ what: "random bytes as proto", method: "POST" as const, ...wrap(b, true) })),
    fc.tuple(validBinary, fc.nat(), fc.constantFrom(...INVALID_UTF8)).map(([b, n, bad]) => ({ what: "invalid UTF-8 in proto", method: "POST" as const, ...wrap(withInvalidUtf8(rpc.input, b, n, bad), true) })),
    fc.tuple(validBinary, fc.nat()).map(([b, n]) => ({ what: "proto cut short", method: "POST" as const, ...wrap(b.subarray(0, b.length > 0 ? n % b.length : 0), true) })),
    fc.constantFrom(101, 1000, 20_000).map((d) => ({ what: `proto nested ${d} deep`, method: "POST" as const, ...wrap(deepBytes(1, d), true) })),
    fc.constantFrom("gzip", "br", "bogus").map((enc) => ({
      what: `content-encoding "${enc}" over plain bytes`,
      method: "POST" as const,
      ...wrap(Uint8Array.of(10, 1, 65), true),
      headers: streaming ? { "connect-content-encoding": enc } : { "content-encoding": enc },
    })),
    fc.constantFrom("application/proto; charset=x", "application/protobuf", "application/x-protobuf", "application/connect+proto").map((ct) => ({
      what: `content-type "${ct}"`,
      method: "POST" as const,
      body: Uint8Array.of(10, 1, 65),
      contentType: ct,
    })),
  ];
  if (streaming) {
    // Envelopes that lie: a length past the data, a compressed flag without an encoding, an end-stream flag from the client, two messages.
    protoCases.push(
      fc.tuple(validBinary, fc.integer({ min: 1, max: 1000 })).map(([b, extra]) => ({ what: "envelope length past the data", method: "POST" as const, body: frame(b, { length: b.length + extra }), contentType: "application/connect+proto" })),
      validBinary.map((b) => ({ what: "compressed envelope without an encoding", method: "POST" as const, body: frame(b, { flags: 1 }), contentType: "application/connect+proto" })),
      validBinary.map((b) => ({ what: "end-stream envelope from the client", method: "POST" as const, body: frame(b, { flags: 2 }), contentType: "application/connect+proto" })),
      validBinary.map((b) => ({ what: "two envelopes", method: "POST" as const, body: Buffer.concat([frame(b), frame(b)]), contentType: "application/connect+proto" })),
    );
  }
  if (rpc.idempotent) {
    jsonCases.push(
      json.map((j) => ({ what: "GET with random JSON", method: "GET" as const, query: `connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify(j))}` })),
      fc.string({ maxLength: 30 }).map((s) => ({ what: "GET with a bogus query", method: "GET" as const, query: s })),
    );
    protoCases.push(
      fc.uint8Array({ maxLength: 100 }).map((b) => ({
        what: "GET with random proto",
        method: "GET" as const,
        query: `connect=v1&encoding=proto&base64=1&message=${Buffer.from(b).toString("base64url")}`,
      })),
      validBinary.map((b) => ({ what: "GET with a random message", method: "GET" as const, query: `connect=v1&encoding=proto&base64=1&message=${Buffer.from(b).toString("base64url")}` })),
    );
  }
  return fc.oneof(...(flavour === "json" ? jsonCases : protoCases));
}

/** Keep-alive HTTP/1.1 connections for the fuzz runs: one request per connection at a time, so as many as inputs in flight. */
const fuzzAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });

function sendConnect(rpc: Rpc, k: ConnectCase, agent?: http.Agent): Promise<WireOutcome> {
  const headers: Record<string, string> = { ...(mayWait(rpc) ? { "connect-timeout-ms": String(STREAM_DEADLINE_MS) } : {}), ...k.headers };
  if (k.method !== "GET" && headers["connect-protocol-version"] === undefined && rpc.kind === "unary") headers["connect-protocol-version"] = "1";
  return http1(base, {
    method: k.method,
    path: k.query === undefined ? rpc.path : `${rpc.path}?${k.query}`,
    body: k.body,
    contentType: k.contentType,
    headers,
    timeoutMs: CLIENT_TIMEOUT_MS,
    agent,
  });
}

// ------------------------------------------------------------------ gRPC-Web (HTTP/1.1)

/** gRPC-Web requests: the gRPC cases (frames, flags, lengths, timeouts), sent as a browser would, over HTTP/1.1; some as grpc-web-text (base64). */
function grpcWebCaseArb(rpc: Rpc): fc.Arbitrary<GrpcCase> {
  return fc.tuple(grpcCaseArb(rpc), fc.nat({ max: 9 })).map(([k, n]) => {
    if (k.resetAfterSend) return { ...k, resetAfterSend: false, what: "random message (no reset over HTTP/1.1)" };
    const ct = k.contentType;
    if (ct !== undefined && ct !== "application/grpc+json") return { ...k, what: k.what };
    if (ct === "application/grpc+json") return { ...k, contentType: "application/grpc-web+json" };
    // One in ten as grpc-web-text: the frames in base64.
    return n === 0 ? { ...k, what: `${k.what} (text)`, body: Buffer.from(Buffer.from(k.body).toString("base64")), contentType: "application/grpc-web-text" } : { ...k, contentType: "application/grpc-web+proto" };
  });
}

function sendGrpcWeb(rpc: Rpc, k: GrpcCase, agent?: http.Agent): Promise<WireOutcome> {
  const headers = { "x-grpc-web": "1", ...(mayWait(rpc) ? { "grpc-timeout": `${STREAM_DEADLINE_MS}m` } : {}), ...k.headers };
  return http1(base, { method: "POST", path: rpc.path, body: k.body, contentType: k.contentType, headers, timeoutMs: CLIENT_TIMEOUT_MS, agent });
}

// ------------------------------------------------------------------ the properties

async function alive(): Promise<void> {
  expect(proc.hasExited, "the service process is still running").toBe(false);
  expect(await healthOf(c, "")).toBe("SERVING");
}

describeDocker(`bad input on every RPC (fast-check seed ${cfg.seed})`, () => {
  // Four transports, the same RPCs, each input judged; many in flight at once (a few HTTP/2
  // sessions, up to 32 HTTP/1.1 connections), "nothing stored changed" checked per batch.
  const total = cfg.fuzzRuns * RPCS.length;
  const transports: [string, string, (rpc: Rpc) => fc.Arbitrary<FuzzInput>][] = [
    ["grpc", "gRPC over HTTP/2", (rpc) => grpcCaseArb(rpc).map((k) => ({ rpc, what: `${k.what} (${k.body.length} B)`, send: () => sendGrpc(rpc, k, nextH2()) }))],
    ["connect-json", "Connect JSON over HTTP/1.1", (rpc) => connectCaseArb(rpc, "json").map((k) => ({ rpc, what: k.what, send: () => sendConnect(rpc, k, fuzzAgent) }))],
    ["connect-proto", "Connect proto over HTTP/1.1", (rpc) => connectCaseArb(rpc, "proto").map((k) => ({ rpc, what: k.what, send: () => sendConnect(rpc, k, fuzzAgent) }))],
    ["grpc-web", "gRPC-Web over HTTP/1.1", (rpc) => grpcWebCaseArb(rpc).map((k) => ({ rpc, what: `${k.what} (${k.body.length} B)`, send: () => sendGrpcWeb(rpc, k, fuzzAgent) }))],
  ];
  transports.forEach(([name, title, arbFor], i) => {
    it(`${title}: ${cfg.fuzzRuns} inputs per RPC (${total} in all), each answered with a proper status, and no stored change`, async () => {
      // One arbitrary per RPC, made once: building them per input cost more than sending it.
      const perRpc = new Map(RPCS.map((rpc) => [rpc, arbFor(rpc)]));
      await fuzz(name, fc.constantFrom(...RPCS).chain((rpc) => perRpc.get(rpc)!), cfg.seed + i, total);
      await alive();
      const t = tally(name);
      console.log(`[fault] ${name}: ${t.tried} inputs in ${(t.ms / 1000).toFixed(1)} s (${Math.round(t.tried / (t.ms / 1000))}/s), generated in ${(t.generateMs / 1000).toFixed(1)} s; ${t.batchesWithWrites}/${t.batches} batches wrote, ${t.rejudged} inputs judged again alone`);
      expect(t.violations).toEqual([]);
    }, 60_000 + total * 100);
  });

  it("answers malformed messages INVALID_ARGUMENT on every protocol, not INTERNAL, and stores nothing", async () => {
    const rpc = (name: string) => RPCS.find((r) => r.name === name)!;
    const before = store.digest();
    const register = rpc("RegisterAgent");
    const badName = withInvalidUtf8(register.input, new Uint8Array(0), 0, [0xff]); // field 1 (agent): not even a message
    const cases: [string, Promise<WireOutcome>][] = [
      ["gRPC: protobuf cut short", sendGrpc(rpc("GetAgent"), { what: "", body: frame(Uint8Array.of(10, 5, 65)) })],
      ["gRPC: invalid UTF-8 in a string", sendGrpc(rpc("GetAgent"), { what: "", body: frame(Uint8Array.of(10, 2, 0xc3, 0x28)) })],
      ["gRPC: nested past the recursion limit", sendGrpc(register, { what: "", body: frame(deepBytes(1, 150)) })],
      ["gRPC: compressed flag without an encoding", sendGrpc(rpc("GetAgent"), { what: "", body: frame(Uint8Array.of(10, 1, 65), { flags: 1 }) })],
      ["gRPC-Web: protobuf cut short", sendGrpc(rpc("GetAgent"), { what: "", body: frame(Uint8Array.of(10, 5, 65)), contentType: "application/grpc-web+proto" })],
      ["Connect proto: garbage", sendConnect(register, { what: "", method: "POST", body: badName, contentType: "application/proto" })],
      ["Connect proto stream: garbage", sendConnect(rpc("WatchTask"), { what: "", method: "POST", body: connectEnvelope(Uint8Array.of(10, 5, 65)), contentType: "application/connect+proto" })],
      ["Connect GET proto: garbage", sendConnect(rpc("GetAgent"), { what: "", method: "GET", query: `connect=v1&encoding=proto&base64=1&message=${Buffer.from([10, 5, 65]).toString("base64url")}` })],
      [
        "Connect JSON: invalid UTF-8 in a string",
        sendConnect(register, {
          what: "",
          method: "POST",
          body: Buffer.concat([Buffer.from(`{"agent":{"agentId":"fz-utf8","image":"${TEST_IMAGE}","name":"a`), Buffer.from([0xff]), Buffer.from('"}}')]),
          contentType: "application/json",
        }),
      ],
      ["Connect GET JSON: invalid UTF-8", sendConnect(rpc("GetAgent"), { what: "", method: "GET", query: "connect=v1&encoding=json&message=%7B%22agentId%22%3A%22%FF%22%7D" })],
      [
        "Connect JSON: a Struct nested past the limit",
        sendConnect(rpc("SendMessage"), {
          what: "",
          method: "POST",
          body: Buffer.from(JSON.stringify({ message: { fromAgentId: "fz-b", toAgentId: "fz-idle", taskDelegation: { taskId: "t", description: "d", payload: { x: nested(120) } } } })),
          contentType: "application/json",
        }),
      ],
    ];
    for (const [what, p] of cases) expect([what, (await p).code]).toEqual([what, "invalid_argument"]);
    // A Connect GET whose message does not fit in the request line is refused in Connect's terms.
    const longGet = await sendConnect(rpc("ListAgents"), { what: "", method: "GET", query: `connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify({ pageToken: "x".repeat(40_000) }))}` });
    expect([longGet.httpStatus, longGet.code]).toEqual([431, "resource_exhausted"]);
    expect(store.digest(), "none of these changed anything").toBe(before);
    await alive();
  });

  it(`enforces the configured maximum request size (${MAX_REQUEST_BYTES} bytes) on both transports`, async () => {
    const rpc = RPCS.find((r) => r.name === "RegisterAgent")!;
    const big = (n: number) => ({ agent: { agent_id: "fz-big", image: TEST_IMAGE, name: "n".repeat(n) } });
    const over = toBinaryIfValid(rpc.input, big(MAX_REQUEST_BYTES + 1000))!;
    const before = store.digest();
    expect((await sendGrpc(rpc, { what: "over", body: frame(over) })).code).toBe("resource_exhausted");
    // A prefix that announces a huge message is refused without waiting for it.
    const announced = await h2.call({ path: rpc.path, body: frame(new Uint8Array(10), { length: MAX_REQUEST_BYTES * 64 }), timeoutMs: CLIENT_TIMEOUT_MS });
    expect(announced.code).toBe("resource_exhausted");
    const json = await sendConnect(rpc, { what: "over", method: "POST", body: Buffer.from(JSON.stringify(big(MAX_REQUEST_BYTES + 1000))), contentType: "application/json" });
    expect(json.code).toBe("resource_exhausted");
    expect(store.digest(), "refused requests change nothing").toBe(before);
    // Just under the limit is read (and then judged on its content: the name is too long).
    const under = toBinaryIfValid(rpc.input, big(MAX_REQUEST_BYTES - 1000))!;
    expect((await sendGrpc(rpc, { what: "under", body: frame(under) })).code).toBe("invalid_argument");
    await alive();
  });

  it("keeps a connection usable for a client that goes on sending after being refused for size", async () => {
    // 40 refused requests of 600 KB on one HTTP/2 connection, each sent to the end: more
    // than Node's 10 MB per-session memory if refused bodies were not released.
    const rpc = RPCS.find((r) => r.name === "RegisterAgent")!;
    const client = new H2Client(base);
    try {
      for (let i = 0; i < 40; i++) {
        const out = await client.call({ path: rpc.path, body: frame(new Uint8Array(600_000)), timeoutMs: CLIENT_TIMEOUT_MS, keepSending: true });
        expect(out.code, `refused request ${i}`).toBe("resource_exhausted");
      }
      const ok = await client.call({ path: "/grpc.health.v1.Health/Check", body: frame(new Uint8Array(0)), timeoutMs: CLIENT_TIMEOUT_MS });
      expect(ok.code).toBe("ok");
      expect(client.sessions, "one connection throughout").toBe(1);
    } finally {
      client.close();
    }
  });

  it("leaves the process alive and healthy, with no uncaught error and no internal error logged", async () => {
    await alive();
    // The agent the fuzzer does not know about is untouched, its container still running.
    expect((await unary<{ agent: { status: string } }>(c.orch, "GetAgent", { agent_id: "slot-holder" })).agent.status).toBe("AGENT_STATUS_RUNNING");
    const bad = proc.logs.filter((l) => ["uncaught exception", "unhandled rejection", "internal error"].includes(String(l.msg)));
    expect(bad.map((l) => JSON.stringify(l).slice(0, 400))).toEqual([]);
    expect(proc.stderr()).not.toMatch(/handler for rpc .* failed|Error/);
    reportFigures("bad-input", {
      seed: cfg.seed,
      rpcs: RPCS.length,
      inputsTried: Object.values(tallies).reduce((n, t) => n + t.tried, 0),
      byTransport: Object.fromEntries(
        Object.entries(tallies).map(([k, t]) => [k, { tried: t.tried, ms: t.ms, generateMs: t.generateMs, perSecond: Math.round(t.tried / Math.max(1, t.ms / 1000)), batches: t.batches, batchesWithWrites: t.batchesWithWrites, rejudged: t.rejudged, codes: t.codes }]),
      ),
      violations: Object.values(tallies).reduce((n, t) => n + t.violations.length, 0),
      durationMs: Date.now() - suiteBegan,
      loadAverage: { atStart: loadAtStart, atEnd: loadavg().map((x) => Math.round(x * 100) / 100) },
    });
  });
});
