/**
 * The watchers of the fan-out benchmark, in their own process (forked with IPC): `streams`
 * WatchAgents streams spread over `connections` connections. Each response is only read
 * as far as the event type and the agent id (a few bytes of protobuf), so the figure is
 * the server's fan-out, not a client decoding 500 copies of every agent.
 *
 * IPC: sends {type:"ready"} once every stream has its initial BOOKMARK; answers
 * {type:"report"} with, per added agent id, how many streams received it and when the
 * last one did (epoch ms); {type:"stop"} ends the streams and the process.
 */
import * as grpc from "@grpc/grpc-js";
import { PACKAGE_DEFINITION } from "./lib/grpc.js";
import type { Msg } from "./lib/grpc.js";
import { nowMs } from "./lib/stats.js";

export interface WatchClientSpec {
  address: string;
  streams: number;
  connections: number;
}

export interface WatchReport {
  type: "report";
  received: Record<string, { count: number; last: number }>;
  errors: number;
  firstError?: string;
}

const PATH = "/agentorch.v1.AgentOrchestratorService/WatchAgents";
const EVENT_ADDED = 1;

/** Reads a varint at pos; returns [value, next position]. */
function varint(buf: Buffer, pos: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = buf[pos++]!;
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, pos];
    shift += 7;
  }
}

/** Calls fn(field, wireType, start, end | varint value) for each field in buf[start, end). */
function eachField(buf: Buffer, start: number, end: number, fn: (field: number, wire: number, a: number, b: number) => void): void {
  let pos = start;
  while (pos < end) {
    const [tag, p1] = varint(buf, pos);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) {
      const [v, p2] = varint(buf, p1);
      fn(field, wire, v, v);
      pos = p2;
    } else if (wire === 2) {
      const [len, p2] = varint(buf, p1);
      fn(field, wire, p2, p2 + len);
      pos = p2 + len;
    } else if (wire === 1) pos = p1 + 8;
    else if (wire === 5) pos = p1 + 4;
    else throw new Error(`unexpected wire type ${wire}`);
  }
}

/** The event type and agent id of a WatchAgentsResponse. */
export function readEvent(buf: Buffer): { type: number; agentId: string } {
  let type = 0;
  let agentId = "";
  eachField(buf, 0, buf.length, (f, w, a, b) => {
    if (f !== 1 || w !== 2) return; // WatchAgentsResponse.event
    eachField(buf, a, b, (f2, w2, a2, b2) => {
      if (f2 === 1 && w2 === 0) type = a2; // AgentEvent.type
      if (f2 === 3 && w2 === 2) {
        // AgentEvent.agent -> Agent.agent_id
        eachField(buf, a2, b2, (f3, w3, a3, b3) => {
          if (f3 === 1 && w3 === 2) agentId = buf.toString("utf8", a3, b3);
        });
      }
    });
  });
  return { type, agentId };
}

function main(): void {
  const spec = JSON.parse(process.argv[2] ?? "{}") as WatchClientSpec;
  const serialize = (PACKAGE_DEFINITION["agentorch.v1.AgentOrchestratorService"] as unknown as Record<string, { requestSerialize(v: Msg): Buffer }>)
    .WatchAgents!.requestSerialize;
  const clients = Array.from(
    { length: spec.connections },
    () => new grpc.Client(spec.address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
  );
  const received = new Map<string, { count: number; last: number }>();
  let errors = 0;
  let firstError: string | undefined;
  let ready = 0;
  let stopping = false;
  const calls: grpc.ClientReadableStream<Buffer>[] = [];
  for (let i = 0; i < spec.streams; i++) {
    const client = clients[i % clients.length]!;
    const call = client.makeServerStreamRequest<Msg, Buffer>(PATH, serialize, (b: Buffer) => b, { sendInitialState: true });
    let first = true;
    call.on("data", (buf: Buffer) => {
      const now = nowMs();
      if (first) {
        first = false;
        if (++ready === spec.streams) process.send!({ type: "ready" });
      }
      const e = readEvent(buf);
      if (e.type !== EVENT_ADDED || e.agentId === "") return;
      const r = received.get(e.agentId);
      if (r) {
        r.count++;
        if (now > r.last) r.last = now;
      } else received.set(e.agentId, { count: 1, last: now });
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (stopping && err.code === grpc.status.CANCELLED) return;
      errors++;
      firstError ??= err.message;
    });
    calls.push(call);
  }
  process.on("message", (m: { type: string }) => {
    if (m.type === "report") {
      const report: WatchReport = { type: "report", received: Object.fromEntries(received), errors, firstError };
      process.send!(report);
    } else if (m.type === "stop") {
      stopping = true;
      for (const c of calls) c.cancel();
      for (const c of clients) c.close();
      setTimeout(() => process.exit(0), 100);
    }
  });
}

if (process.send) main();
