/**
 * Resumable status streams end to end: WatchAgents and WatchTasks/WatchTask on the real
 * server, followed with @grpc/grpc-js clients that load the .proto files and share no code
 * with the server. What is checked is what a watcher observes: the order, types and
 * revisions of events, resume across a disconnect and a restart of the service, the codes
 * of a stale or future revision, heartbeats on an idle stream, and a slow consumer cut off
 * with RESOURCE_EXHAUSTED while the service's memory stays bounded.
 *
 * Each case that needs its own configuration (restart, pruning, heartbeat, buffer) gets a
 * server of its own; all of them are stopped and their containers removed afterwards.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeDocker, removeContainersOf, TEST_IMAGE } from "../support/docker.js";
import { grpcClients, rpc, serverStream, StreamReader, streamError } from "../support/grpc.js";
import type { GrpcClients } from "../support/grpc.js";
import { startTestServer } from "../support/server.js";
import type { TestServer, TestServerOptions } from "../support/server.js";

// ------------------------------------------------------------------ what a grpc-js watcher receives

interface AgentJson {
  agent_id: string;
  status: string;
  last_activity?: { seconds: string; nanos: number } | null;
}
interface TaskJson {
  task_id: string;
  agent_id: string;
  state: string;
}
interface EventJson {
  type: string;
  revision: string;
  agent?: AgentJson | null;
  task?: TaskJson | null;
}
interface WatchMessage {
  event: EventJson;
}
interface WatchTaskMessage {
  task: TaskJson;
  revision: string;
}

function watchAgents(c: GrpcClients, req: { agent_ids?: string[]; resume_after_revision?: number; send_initial_state?: boolean }): StreamReader<WatchMessage> {
  const call = serverStream(c.agents, "WatchAgents", { ...req, resume_after_revision: String(req.resume_after_revision ?? 0) });
  return new StreamReader<WatchMessage>(call);
}

function watchTasks(c: GrpcClients, req: { task_ids?: string[]; resume_after_revision?: number; send_initial_state?: boolean }): StreamReader<WatchMessage> {
  return new StreamReader<WatchMessage>(serverStream(c.lifecycle, "WatchTasks", { ...req, resume_after_revision: String(req.resume_after_revision ?? 0) }));
}

// ------------------------------------------------------------------ event helpers

const short = (type: string) => type.replace("EVENT_TYPE_", "");
const status = (a: AgentJson | null | undefined) => (a ? a.status.replace("AGENT_STATUS_", "") : "");

/** "TYPE id STATUS" of each non-bookmark event, for readable comparisons. */
function agentSummary(events: EventJson[]): string[] {
  return events.filter((e) => e.type !== "EVENT_TYPE_BOOKMARK").map((e) => `${short(e.type)} ${e.agent?.agent_id ?? ""} ${status(e.agent)}`);
}

const revisions = (events: EventJson[]) => events.map((e) => Number(e.revision));
const changes = (s: StreamReader<WatchMessage>) => s.items.map((m) => m.event).filter((e) => e.type !== "EVENT_TYPE_BOOKMARK");
const lastRevision = (s: StreamReader<WatchMessage>) => Number(s.items.at(-1)?.event.revision ?? 0);

/** Waits until the stream has delivered a change (or bookmark) at or beyond revision. */
function reach(s: StreamReader<WatchMessage>, revision: number, what = `revision ${revision}`): Promise<void> {
  return s.until((x) => lastRevision(x) >= revision, what);
}

/** Each revision is the previous one + 1. */
function expectConsecutive(revs: number[]): void {
  for (let i = 1; i < revs.length; i++) expect(revs[i], `revision after ${revs[i - 1]}`).toBe(revs[i - 1]! + 1);
}

async function listRevision(c: GrpcClients): Promise<number> {
  return Number((await rpc<{ revision: string }>(c.agents, "ListAgents", { page_size: 1 })).revision);
}

// ------------------------------------------------------------------ Connect streaming over HTTP/1.1 (fetch)

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/**
 * A WatchAgents stream in the Connect protocol, read with fetch: the first message's
 * payload (parsed JSON, or the raw protobuf bytes).
 */
function connectWatch(address: string, codec: "json", request: object): { first(): Promise<unknown>; cancel(): void };
function connectWatch(address: string, codec: "proto", request: Uint8Array): { first(): Promise<Buffer>; cancel(): void };
function connectWatch(address: string, codec: "json" | "proto", request: object | Uint8Array): { first(): Promise<unknown>; cancel(): void } {
  const abort = new AbortController();
  const payload = codec === "json" ? Buffer.from(JSON.stringify(request)) : Buffer.from(request as Uint8Array);
  const body = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), payload]);
  body.writeUInt32BE(payload.length, 1);
  const first = (async () => {
    const res = await fetch(`http://${address}/agentorch.v1.AgentOrchestratorService/WatchAgents`, {
      method: "POST",
      headers: { "content-type": `application/connect+${codec}`, "connect-protocol-version": "1" },
      body,
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    let buffered = Buffer.alloc(0);
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 5 && buffered.length >= 5 + buffered.readUInt32BE(1)) {
        const flags = buffered[0]!;
        const data = buffered.subarray(5, 5 + buffered.readUInt32BE(1));
        buffered = buffered.subarray(5 + data.length);
        if (flags & 0x02) throw new Error(`stream ended: ${data.toString()}`);
        return codec === "json" ? (JSON.parse(data.toString()) as unknown) : Buffer.from(data);
      }
    }
    throw new Error("stream ended without a message");
  })();
  return { first: () => first, cancel: () => abort.abort() };
}

// ------------------------------------------------------------------ servers

const runId = randomBytes(3).toString("hex");
const newId = (name: string) => `w-${name}-${runId}`;
const sleeper = (agentId: string) => ({ agent_id: agentId, image: TEST_IMAGE, command: ["sleep", "3600"] });

const servers: TestServer[] = [];
const clients: GrpcClients[] = [];
const tempDirs: string[] = [];

async function serve(options: TestServerOptions = {}): Promise<{ server: TestServer; c: GrpcClients }> {
  const server = await startTestServer(options);
  servers.push(server);
  const c = grpcClients(server.address);
  clients.push(c);
  return { server, c };
}

afterAll(async () => {
  for (const c of clients) c.close();
  const instances = servers.map((s) => s.app.instanceId);
  await Promise.all(servers.map((s) => s.stop()));
  await Promise.all([...new Set(instances)].map((id) => removeContainersOf(id).catch(() => undefined)));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ without containers

describe("WatchAgents over grpc-js: list, replay, initial state, errors, heartbeats", () => {
  let server: TestServer;
  let c: GrpcClients;
  beforeAll(async () => {
    ({ server, c } = await serve());
  });

  it("watching from ListAgents' revision sees exactly the changes made after the list", async () => {
    const [a, b, d] = [newId("list-a"), newId("list-b"), newId("list-d")];
    await rpc(c.agents, "RegisterAgent", { agent: sleeper(a) });
    await rpc(c.agents, "RegisterAgent", { agent: sleeper(b) });
    const listed = await rpc<{ agents: AgentJson[]; revision: string }>(c.agents, "ListAgents", {});
    expect(listed.agents.map((x) => x.agent_id)).toEqual(expect.arrayContaining([a, b]));
    const from = Number(listed.revision);

    await rpc(c.agents, "RegisterAgent", { agent: sleeper(d) });
    await rpc(c.agents, "RemoveAgent", { agent_id: a, delete_workspace: true });
    const w = watchAgents(c, { resume_after_revision: from });
    try {
      await reach(w, from + 2);
      // One more live change: the replay is followed by live events, with nothing in between.
      await rpc(c.agents, "RemoveAgent", { agent_id: b, delete_workspace: true });
      await reach(w, from + 3);
      expect(agentSummary(changes(w))).toEqual([`ADDED ${d} IDLE`, `REMOVED ${a} IDLE`, `REMOVED ${b} IDLE`]);
      expect(revisions(changes(w))).toEqual([from + 1, from + 2, from + 3]);
    } finally {
      await w.cancel();
      await rpc(c.agents, "RemoveAgent", { agent_id: d, delete_workspace: true });
    }
  });

  it("send_initial_state sends each matching agent as ADDED, then a BOOKMARK, then live changes; agent_ids filters", async () => {
    const [a, b, other] = [newId("init-a"), newId("init-b"), newId("init-other")];
    for (const id of [a, b, other]) await rpc(c.agents, "RegisterAgent", { agent: sleeper(id) });
    const current = await listRevision(c);
    const w = watchAgents(c, { agent_ids: [b, a], send_initial_state: true, resume_after_revision: 1 });
    try {
      await w.until((s) => s.items.some((m) => m.event.type === "EVENT_TYPE_BOOKMARK"), "the bookmark");
      const initial = w.items.map((m) => m.event);
      expect(initial.map((e) => short(e.type))).toEqual(["ADDED", "ADDED", "BOOKMARK"]);
      expect(initial.slice(0, 2).map((e) => e.agent?.agent_id).sort()).toEqual([a, b].sort());
      // Every message of the initial state reflects the same revision: the one the list had.
      expect(revisions(initial)).toEqual([current, current, current]);
      expect(initial[2]!.agent).toBeNull();

      // A change of an agent not asked for is not sent; one of a watched agent is, after the bookmark.
      await rpc(c.agents, "RemoveAgent", { agent_id: other, delete_workspace: true });
      await rpc(c.agents, "RemoveAgent", { agent_id: a, delete_workspace: true });
      await w.until((s) => s.items.length >= 4, "the live change");
      const live = w.items.slice(3).map((m) => m.event);
      expect(agentSummary(live)).toEqual([`REMOVED ${a} IDLE`]);
      expect(revisions(live)).toEqual([current + 2]);
    } finally {
      await w.cancel();
      await rpc(c.agents, "RemoveAgent", { agent_id: b, delete_workspace: true });
    }
  });

  it("watchers in every protocol receive the same change, shared by many streams (gRPC, Connect JSON, Connect proto)", async () => {
    const id = newId("protocols");
    const from = await listRevision(c);
    // Several binary streams share one encoding of each change; a JSON stream gets its own.
    const grpcWatchers = [0, 1, 2].map(() => watchAgents(c, { resume_after_revision: from }));
    const json = connectWatch(server.address, "json", { resumeAfterRevision: String(from) });
    const proto = connectWatch(server.address, "proto", Buffer.from([0x10, ...varint(from)]));
    try {
      await rpc(c.agents, "RegisterAgent", { agent: { ...sleeper(id), name: "ünïcødé", env: { A: "1" } } });
      for (const w of grpcWatchers) await reach(w, from + 1);
      const [jsonEvent, protoBytes] = await Promise.all([json.first(), proto.first()]);
      const events = grpcWatchers.map((w) => changes(w)[0]!);
      for (const e of events) expect(e).toEqual(events[0]);
      const grpcEvent = events[0] as EventJson & { agent: AgentJson & { name: string; config: { env: Record<string, string>; env_names: string[]; image: string } } };
      expect(agentSummary([grpcEvent])).toEqual([`ADDED ${id} IDLE`]);
      expect(grpcEvent.agent.name).toBe("ünïcødé");
      // env is write-only: watchers see the names, never a value.
      expect(grpcEvent.agent.config.env).toEqual({});
      expect(grpcEvent.agent.config.env_names).toEqual(["A"]);

      // Connect JSON: the same event, in proto3 JSON.
      const viaJson = (jsonEvent as { event: { type: string; revision: string; agent: { agentId: string; name: string; status: string; config: { image: string; env: Record<string, string> } } } }).event;
      expect(viaJson.type).toBe("EVENT_TYPE_ADDED");
      expect(Number(viaJson.revision)).toBe(from + 1);
      expect(viaJson.agent.agentId).toBe(id);
      expect(viaJson.agent.status).toBe("AGENT_STATUS_IDLE");
      expect(viaJson.agent.name).toBe("ünïcødé");
      expect(viaJson.agent.config).toMatchObject({ image: grpcEvent.agent.config.image, envNames: ["A"] });
      expect(viaJson.agent.config).not.toHaveProperty("env");

      // Connect proto: decoded by grpc-js's own deserializer, it is the very message gRPC watchers got.
      const method = (c.agents as unknown as Record<string, { responseDeserialize(b: Buffer): unknown }>).WatchAgents!;
      const decoded = method.responseDeserialize(protoBytes) as WatchMessage;
      expect(decoded.event).toEqual(grpcEvent);
    } finally {
      for (const w of grpcWatchers) await w.cancel();
      json.cancel();
      proto.cancel();
      await rpc(c.agents, "RemoveAgent", { agent_id: id, delete_workspace: true });
    }
  });

  it("answers INVALID_ARGUMENT for a malformed id filter and a negative revision", async () => {
    const bad = watchAgents(c, { agent_ids: ["a_b"] });
    expect((await streamError(bad)).code).toBe(grpc.status.INVALID_ARGUMENT);
    const negative = watchAgents(c, { resume_after_revision: -1 });
    expect((await streamError(negative)).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(server.app.store.currentRevision()).toBeGreaterThan(0);
  });

  it("answers OUT_OF_RANGE for a revision older than the kept history and for one ahead of the log", async () => {
    // A server of its own: pruning its log must not disturb the other cases.
    const { server: pruned, c: pc } = await serve();
    const ids = Array.from({ length: 6 }, (_, i) => newId(`prune-${i}`));
    for (const id of ids) await rpc(pc.agents, "RegisterAgent", { agent: sleeper(id) });
    const current = await listRevision(pc);
    expect(current).toBeGreaterThanOrEqual(6);

    // Before pruning, the whole history can be replayed from the start.
    const whole = watchAgents(pc, { resume_after_revision: 1 });
    await reach(whole, current);
    await whole.cancel();

    pruned.app.store.pruneEvents(2); // keeps revisions current-1 and current
    const stale = await streamError(watchAgents(pc, { resume_after_revision: 1 }));
    expect(stale.code).toBe(grpc.status.OUT_OF_RANGE);
    expect(stale.details).toMatch(/list again/);
    expect((await streamError(watchAgents(pc, { resume_after_revision: current - 3 }))).code).toBe(grpc.status.OUT_OF_RANGE);
    const ahead = await streamError(watchAgents(pc, { resume_after_revision: current + 5 }));
    expect(ahead.code).toBe(grpc.status.OUT_OF_RANGE);

    // The oldest resumable revision is the one just before the oldest kept event.
    const edge = watchAgents(pc, { resume_after_revision: current - 2 });
    try {
      await reach(edge, current);
      expect(agentSummary(changes(edge))).toEqual([`ADDED ${ids[4]} IDLE`, `ADDED ${ids[5]} IDLE`]);
      expect(revisions(changes(edge))).toEqual([current - 1, current]);
    } finally {
      await edge.cancel();
    }
    // The client's recovery: list again and watch from the list's revision.
    const relisted = await listRevision(pc);
    const recovered = watchAgents(pc, { resume_after_revision: relisted });
    try {
      await rpc(pc.agents, "RemoveAgent", { agent_id: ids[0], delete_workspace: true });
      await reach(recovered, relisted + 1);
      expect(agentSummary(changes(recovered))).toEqual([`REMOVED ${ids[0]} IDLE`]);
    } finally {
      await recovered.cancel();
    }
  });

  it("sends BOOKMARKs on an idle stream at the configured interval", async () => {
    const { c: hc } = await serve({ env: { AGENTORCH_WATCH_BOOKMARK_INTERVAL_MS: "200" } });
    const id = newId("beat");
    await rpc(hc.agents, "RegisterAgent", { agent: sleeper(id) });
    const current = await listRevision(hc);
    const w = watchAgents(hc, { resume_after_revision: current });
    try {
      await w.until((s) => s.items.length >= 3, "three heartbeats", 10_000);
      const events = w.items.slice(0, 3).map((m) => m.event);
      expect(events.map((e) => short(e.type))).toEqual(["BOOKMARK", "BOOKMARK", "BOOKMARK"]);
      expect(revisions(events)).toEqual([current, current, current]);
      // A change in between is delivered, and later bookmarks carry its revision.
      await rpc(hc.agents, "RemoveAgent", { agent_id: id, delete_workspace: true });
      await w.until((s) => s.items.some((m) => m.event.type === "EVENT_TYPE_REMOVED"), "the change");
      const n = w.items.length;
      await w.until((s) => s.items.length >= n + 1, "a heartbeat after the change", 10_000);
      expect(w.items.at(-1)!.event).toMatchObject({ type: "EVENT_TYPE_BOOKMARK", revision: String(current + 1) });
    } finally {
      await w.cancel();
    }
  });
});

// ------------------------------------------------------------------ with containers

describeDocker("WatchAgents over grpc-js on a real Docker engine", () => {
  it("sees every change of an agent in order, with revisions increasing by exactly 1", async () => {
    // A server of its own, so that the whole log is this test's and "watch everything" is exact.
    const { c } = await serve();
    const id = newId("order");
    const from = await listRevision(c);
    const w = watchAgents(c, { resume_after_revision: from });
    try {
      await rpc(c.agents, "RegisterAgent", { agent: sleeper(id) });
      await rpc(c.agents, "StartAgent", { agent_id: id });
      await rpc(c.agents, "StopAgent", { agent_id: id });
      await rpc(c.agents, "RemoveAgent", { agent_id: id, delete_workspace: true });
      await w.until((s) => changes(s).some((e) => e.type === "EVENT_TYPE_REMOVED"), "REMOVED");
      const events = changes(w);
      expect(agentSummary(events)).toEqual([
        `ADDED ${id} IDLE`,
        `CHANGED ${id} STARTING`,
        `CHANGED ${id} RUNNING`,
        `CHANGED ${id} STOPPING`,
        `CHANGED ${id} IDLE`,
        `REMOVED ${id} IDLE`,
      ]);
      expect(revisions(events)[0]).toBe(from + 1);
      expectConsecutive(revisions(events));
    } finally {
      await w.cancel();
    }
  });

  it("resumes after a disconnect and a restart of the service: nothing missed, nothing twice", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-watch-restart-"));
    tempDirs.push(dataDir);
    const first = await serve({ dataDir });
    const [a, b] = [newId("rs-a"), newId("rs-b")];
    const from = await listRevision(first.c);
    const reference = watchAgents(first.c, { resume_after_revision: from });
    const resumer = watchAgents(first.c, { resume_after_revision: from });
    const taskWatcher = watchTasks(first.c, { resume_after_revision: from });

    await rpc(first.c.agents, "RegisterAgent", { agent: sleeper(a) });
    await rpc(first.c.agents, "StartAgent", { agent_id: a });
    await reach(resumer, from + 3, "a's start");
    await resumer.cancel();
    const resumeFrom = lastRevision(resumer);

    // Changes the resumer does not see: a stops, b is registered and started.
    await rpc(first.c.agents, "StopAgent", { agent_id: a });
    await rpc(first.c.agents, "RegisterAgent", { agent: sleeper(b) });
    await rpc(first.c.agents, "StartAgent", { agent_id: b });
    const beforeRestart = await listRevision(first.c);
    await reach(reference, beforeRestart);

    first.c.close();
    await first.server.stop();
    // The never-disconnected watcher was ended by the shutdown, not left hanging.
    const shutdownError = await streamError(reference);
    expect((await streamError(taskWatcher)).code).toBe(grpc.status.UNAVAILABLE);
    expect([shutdownError.code, shutdownError.details]).toEqual([grpc.status.UNAVAILABLE, "server is shutting down"]);
    const referenceSeen = changes(reference);

    const second = await serve({ dataDir });
    expect(second.server.app.instanceId).toBe(first.server.app.instanceId);
    // Changes after the restart: b (adopted, still running) stops, a is removed.
    await rpc(second.c.agents, "StopAgent", { agent_id: b });
    await rpc(second.c.agents, "RemoveAgent", { agent_id: a, delete_workspace: true });
    const resumed = watchAgents(second.c, { resume_after_revision: resumeFrom });
    try {
      // And one live change after the resume.
      await rpc(second.c.agents, "RemoveAgent", { agent_id: b, delete_workspace: true });
      const end = await listRevision(second.c);
      await reach(resumed, end);

      const seen = [...changes(resumer), ...changes(resumed)];
      expectConsecutive(revisions(seen));
      expect(revisions(seen)[0]).toBe(from + 1);
      expect(new Set(revisions(seen)).size).toBe(seen.length);
      // Up to the restart: exactly what the never-disconnected watcher saw.
      const upToRestart = seen.filter((e) => Number(e.revision) <= beforeRestart);
      expect(upToRestart).toEqual(referenceSeen);
      // After it: exactly what the log holds (read directly from the store).
      const logged = second.server.app.store
        .readEvents(beforeRestart, 1000)
        .filter((e) => e.kind === "agent")
        .map((e) => `${e.revision} ${e.type.toUpperCase()} ${e.id}`);
      expect(seen.filter((e) => Number(e.revision) > beforeRestart).map((e) => `${e.revision} ${short(e.type)} ${e.agent?.agent_id}`)).toEqual(logged);
      expect(agentSummary(seen)).toEqual([
        `ADDED ${a} IDLE`,
        `CHANGED ${a} STARTING`,
        `CHANGED ${a} RUNNING`,
        `CHANGED ${a} STOPPING`,
        `CHANGED ${a} IDLE`,
        `ADDED ${b} IDLE`,
        `CHANGED ${b} STARTING`,
        `CHANGED ${b} RUNNING`,
        ...agentSummary(seen.filter((e) => Number(e.revision) > beforeRestart)),
      ]);
      expect(agentSummary(seen).slice(-4)).toEqual([`CHANGED ${b} STOPPING`, `CHANGED ${b} IDLE`, `REMOVED ${a} IDLE`, `REMOVED ${b} IDLE`]);
    } finally {
      await resumed.cancel();
    }
  });
});

// ------------------------------------------------------------------ slow consumers

/** heapUsed after a full collection (gc made callable at run time; vitest does not pass --expose-gc). */
function heapAfterGc(): number {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Runs n calls with at most `parallel` in flight. */
async function burst(n: number, parallel: number, call: () => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      await call();
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

describeDocker("WatchAgents: a consumer that cannot keep up", () => {
  const MAX_BUFFER = 50;
  let server: TestServer;
  let c: GrpcClients;
  const id = newId("busy");

  beforeAll(async () => {
    ({ server, c } = await serve({ env: { AGENTORCH_WATCH_MAX_BUFFER: String(MAX_BUFFER), AGENTORCH_WATCH_BOOKMARK_INTERVAL_MS: "0" } }));
    await rpc(c.agents, "RegisterAgent", { agent: sleeper(id) });
    await rpc(c.agents, "StartAgent", { agent_id: id });
  });

  it("is cut off with RESOURCE_EXHAUSTED and resumes from its last revision, in order", async () => {
    const from = await listRevision(c);
    const slow = watchAgents(c, { resume_after_revision: from });
    slow.call.pause();
    // Several times what HTTP/2 flow control and socket buffers absorb (about 250 changes here)
    // before the server-side buffer of 50 fills.
    const N = 1000;
    await burst(N, 32, () => rpc(c.agents, "ReportActivity", { agent_id: id }));
    const end = await listRevision(c);
    expect(end).toBe(from + N);

    slow.call.resume();
    const err = await streamError(slow);
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const got = changes(slow);
    console.info(`a paused watcher received ${got.length} of ${N} changes before RESOURCE_EXHAUSTED (max buffer ${MAX_BUFFER})`);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(N); // it did not get everything: it was cut off
    expect(revisions(got)[0]).toBe(from + 1);
    expectConsecutive(revisions(got));
    const last = revisions(got).at(-1)!;
    expect(err.details).toContain(`resume after revision ${last}`);

    const rest = watchAgents(c, { resume_after_revision: last });
    try {
      await reach(rest, end);
      const resumed = revisions(changes(rest));
      expect(resumed[0]).toBe(last + 1);
      expectConsecutive(resumed);
      expect(resumed.at(-1)).toBe(end);
      expect(agentSummary(changes(rest)).every((s) => s === `CHANGED ${id} RUNNING`)).toBe(true);
    } finally {
      await rest.cancel();
    }
  });

  it("a replay the log is pruned under ends with OUT_OF_RANGE instead of skipping events", async () => {
    const from = await listRevision(c);
    // More than one replay batch (1,000 events) of history, made in process for speed.
    for (let i = 0; i < 1500; i++) await server.app.agents.touch(id);
    const end = from + 1500;
    expect(await listRevision(c)).toBe(end);
    const slow = watchAgents(c, { resume_after_revision: from });
    await slow.until((s) => s.items.length >= 1, "the replay to begin");
    slow.call.pause(); // flow control now holds the replay within its first batch
    await new Promise((resolve) => setTimeout(resolve, 200));
    server.app.store.pruneEvents(10);
    slow.call.resume();
    const err = await streamError(slow);
    expect(err.code).toBe(grpc.status.OUT_OF_RANGE);
    // What it did receive is a gap-free prefix: no event was skipped.
    const got = revisions(changes(slow));
    expect(got[0]).toBe(from + 1);
    expectConsecutive(got);
    expect(got.at(-1)).toBeLessThan(end - 9);
  });

  it("keeps the service's memory bounded with 20 paused watchers during 20,000 changes", async () => {
    const from = await listRevision(c);
    const paused = Array.from({ length: 20 }, () => watchAgents(c, { resume_after_revision: from }));
    // Every stream is open (a first change reached each) before they pause and memory is measured.
    await rpc(c.agents, "ReportActivity", { agent_id: id });
    await Promise.all(paused.map((w) => w.until((s) => s.items.length >= 1, "the stream to open")));
    for (const w of paused) w.call.pause();
    const before = heapAfterGc();
    // In process (the server runs in this process), so the measure is of the service, not of
    // 20,000 RPCs' garbage; a turn of the event loop every 100 changes lets the streams write.
    for (let i = 0; i < 20_000; i++) {
      await server.app.agents.touch(id);
      if (i % 100 === 99) await new Promise((resolve) => setImmediate(resolve));
    }
    const after = heapAfterGc();
    const growthMb = (after - before) / 2 ** 20;
    console.info(`heapUsed growth with 20 paused watchers over 20,000 changes: ${growthMb.toFixed(1)} MB (max buffer ${MAX_BUFFER})`);
    expect(growthMb).toBeLessThan(8);

    for (const w of paused) w.call.resume();
    const errors = await Promise.all(paused.map((w) => streamError(w)));
    expect(errors.map((e) => e.code)).toEqual(paused.map(() => grpc.status.RESOURCE_EXHAUSTED));
    expect(server.app.store.currentRevision()).toBe(from + 20_001);
  }, 60_000);
});

// ------------------------------------------------------------------ tasks

describeDocker("WatchTasks and WatchTask over grpc-js", () => {
  let server: TestServer;
  let c: GrpcClients;
  beforeAll(async () => {
    ({ server, c } = await serve());
  });

  const submit = (script: string) =>
    rpc<{ task: TaskJson }>(c.lifecycle, "SubmitTask", {
      directive: { goal: "say hello", acceptance_criteria: ["prints hello"] },
      template: { image: TEST_IMAGE, command: ["sh", "-c", script] },
    });
  const taskSummary = (events: EventJson[]) =>
    events.filter((e) => e.type !== "EVENT_TYPE_BOOKMARK").map((e) => `${short(e.type)} ${e.task?.task_id} ${e.task?.state.replace("TASK_STATE_", "")}`);

  it("replays task changes after a revision and resumes after a disconnect with no gap and no duplicate", async () => {
    const from = Number((await rpc<{ revision: string }>(c.lifecycle, "ListTasks", {})).revision);
    const first = (await submit("echo one")).task;
    const all = watchTasks(c, { resume_after_revision: from });
    const mine = watchTasks(c, { task_ids: [first.task_id], resume_after_revision: from });
    const terminal = (s: StreamReader<WatchMessage>, taskId: string) =>
      s.until((x) => changes(x).some((e) => e.task?.task_id === taskId && e.task.state === "TASK_STATE_COMPLETED"), `${taskId} COMPLETED`);
    try {
      await terminal(all, first.task_id);
      await all.cancel();
      const resumeFrom = lastRevision(all);

      const second = (await submit("echo two")).task;
      const resumed = watchTasks(c, { resume_after_revision: resumeFrom });
      try {
        await terminal(resumed, second.task_id);
        await terminal(mine, first.task_id);
        const seen = [...changes(all), ...changes(resumed)];
        expect(revisions(seen)[0]).toBeGreaterThan(from);
        expect(new Set(revisions(seen)).size).toBe(seen.length);
        for (let i = 1; i < seen.length; i++) expect(Number(seen[i]!.revision)).toBeGreaterThan(Number(seen[i - 1]!.revision));
        // Exactly the task events of the log (agent events of the ephemeral agents interleave, hence the gaps).
        const end = Number(resumed.items.at(-1)!.event.revision);
        const logged = server.app.store.readEvents(from, 10_000).filter((e) => e.kind === "task" && e.revision <= end);
        expect(seen.map((e) => `${e.revision} ${short(e.type)} ${e.task?.task_id}`)).toEqual(
          logged.map((e) => `${e.revision} ${e.type.toUpperCase()} ${e.id}`),
        );
        for (const t of [first, second]) {
          const states = taskSummary(seen).filter((s) => s.includes(t.task_id));
          expect(states[0]).toBe(`ADDED ${t.task_id} SUBMITTED`);
          expect(states).toContain(`CHANGED ${t.task_id} WORKING`);
          expect(states.at(-1)).toBe(`CHANGED ${t.task_id} COMPLETED`);
        }
        // The task_ids filter: only the first task.
        expect(changes(mine).every((e) => e.task?.task_id === first.task_id)).toBe(true);
        expect(taskSummary(changes(mine))).toEqual(taskSummary(seen).filter((s) => s.includes(first.task_id)));
      } finally {
        await resumed.cancel();
      }
    } finally {
      await all.cancel();
      await mine.cancel();
    }
  });

  it("answers OUT_OF_RANGE for a revision ahead of the log", async () => {
    const current = Number((await rpc<{ revision: string }>(c.lifecycle, "ListTasks", {})).revision);
    expect((await streamError(watchTasks(c, { resume_after_revision: current + 10 }))).code).toBe(grpc.status.OUT_OF_RANGE);
  });

  it("WatchTask sends the task's states and ends after the terminal one", async () => {
    const task = (await submit("sleep 1; echo done")).task;
    const w = new StreamReader<WatchTaskMessage>(serverStream(c.lifecycle, "WatchTask", { task_id: task.task_id }));
    await w.until((s) => s.ended, "WatchTask to end", 30_000);
    expect(w.error).toBeUndefined();
    expect(w.done).toBe(true);
    const states = w.items.map((m) => m.task.state.replace("TASK_STATE_", ""));
    expect(states.at(-1)).toBe("COMPLETED");
    expect(states.slice(0, -1).every((s) => s === "SUBMITTED" || s === "WORKING")).toBe(true);
    const revs = w.items.map((m) => Number(m.revision));
    for (let i = 1; i < revs.length; i++) expect(revs[i]).toBeGreaterThan(revs[i - 1]!);

    // On a task that has already finished: its final state, then the end.
    const again = new StreamReader<WatchTaskMessage>(serverStream(c.lifecycle, "WatchTask", { task_id: task.task_id }));
    await again.until((s) => s.ended, "WatchTask on a finished task to end");
    expect(again.done).toBe(true);
    expect(again.items.map((m) => m.task.state)).toEqual(["TASK_STATE_COMPLETED"]);

    const unknown = new StreamReader<WatchTaskMessage>(serverStream(c.lifecycle, "WatchTask", { task_id: newId("no-task") }));
    expect((await streamError(unknown)).code).toBe(grpc.status.NOT_FOUND);
  });
});
