/**
 * Clients for the load and shutdown suites. Each owns its agents (so every call has a
 * known right answer and any error is unexpected), has its own HTTP/2 connection, and
 * mixes registrations, starts, stops, reads, short watches and messages. Some also hold a
 * WatchAgents stream for the whole run and check that the revisions they receive follow
 * each other with no gap (the load creates no tasks, so agent events are all there is).
 */
import { TEST_IMAGE } from "../../support/docker.js";
import { rng } from "./fault-config.js";
import { serverStream } from "../../support/grpc.js";
import { attempt, type Clients, connect, grpc, STATUS_NAME } from "./grpc.js";
import type { AgentView } from "./world.js";

export type OpName = "register" | "start" | "stop" | "get" | "list" | "send" | "stream-messages" | "ack" | "watch-snapshot";

export interface LoadStats {
  ops: Record<string, number>;
  latencies: Record<string, number[]>;
  errors: string[];
  /** Calls that got no answer before their deadline (a deadlock shows here). */
  deadlines: number;
  watchEvents: number;
  watchProblems: string[];
  watchResumes: number;
  /** How long-lived streams ended, by status name. */
  streamEnds: Record<string, number>;
  /** How calls ended, by status name. */
  outcomes: Record<string, number>;
  /** When each OK answer arrived (epoch ms). */
  okAt: number[];
}

export function emptyStats(): LoadStats {
  return { ops: {}, latencies: {}, errors: [], deadlines: 0, watchEvents: 0, watchProblems: [], watchResumes: 0, streamEnds: {}, outcomes: {}, okAt: [] };
}

/** Every agent id any client registered (targets for messages). */
export class Registry {
  readonly ids: string[] = [];
}

export interface LoadClientOptions {
  address: string;
  index: number;
  seed: number;
  prefix: string;
  registry: Registry;
  stats: LoadStats;
  /** Hold a WatchAgents stream for the whole run. */
  longWatch: boolean;
  /** Start and stop containers (else registrations, reads, watches and messages only). */
  containers?: boolean;
  /** Per-call deadline. */
  deadlineMs: number;
  /** Errors expected from this kind of run (e.g. UNAVAILABLE once shutdown begins). */
  tolerate?: (code: number, op: OpName) => boolean;
}

/** One client; run() until stop() is called. */
export class LoadClient {
  readonly c: Clients;
  private readonly r: ReturnType<typeof rng>;
  private readonly mine: { id: string; running: boolean }[] = [];
  private serial = 0;
  private stopped = false;
  private watch: grpc.ClientReadableStream<unknown> | undefined;
  private lastRevision = 0;
  /** OK answers: agent id -> what the client believes (for the shutdown suite). */
  readonly acknowledged = new Map<string, { status: "idle" | "running"; containerId: string }>();

  constructor(private readonly o: LoadClientOptions) {
    this.r = rng(o.seed);
    // Its own connection: grpc-js would otherwise share one subchannel between all clients.
    this.c = connect(o.address, { "grpc.use_local_subchannel_pool": 1 });
  }

  stop(): void {
    this.stopped = true;
  }

  close(): void {
    this.watch?.cancel();
    this.c.close();
  }

  async run(): Promise<void> {
    if (this.o.longWatch) this.openWatch();
    while (!this.stopped) {
      await this.step();
      await new Promise((res) => setTimeout(res, this.r.int(0, 20)));
    }
    this.watch?.cancel();
  }

  private openWatch(): void {
    const stream = serverStream<{ event?: { type: string; revision: string; agent?: AgentView } }>(this.c.orch, "WatchAgents", {
      resume_after_revision: String(this.lastRevision),
      send_initial_state: this.lastRevision === 0,
    });
    this.watch = stream;
    let snapshotDone = this.lastRevision !== 0;
    stream.on("data", (res) => {
      const e = res.event;
      if (!e) return;
      const revision = Number(e.revision);
      if (e.type === "EVENT_TYPE_BOOKMARK") {
        if (!snapshotDone) {
          snapshotDone = true;
          this.lastRevision = revision;
        }
        return;
      }
      if (!snapshotDone) return; // the initial state (ADDED per agent), before its bookmark
      this.o.stats.watchEvents++;
      // No tasks run during the load: agent events use every revision, one after the other.
      if (revision !== this.lastRevision + 1 && this.o.stats.watchProblems.length < 20) {
        this.o.stats.watchProblems.push(`client ${this.o.index}: revision ${revision} after ${this.lastRevision}`);
      }
      this.lastRevision = revision;
    });
    stream.on("status", (st: grpc.StatusObject) => {
      if (st.code === grpc.status.OK) this.o.stats.streamEnds.OK = (this.o.stats.streamEnds.OK ?? 0) + 1;
    });
    stream.on("error", (err: grpc.ServiceError) => {
      if (this.stopped && err.code === grpc.status.CANCELLED) return;
      const name = STATUS_NAME[err.code] ?? String(err.code);
      this.o.stats.streamEnds[name] = (this.o.stats.streamEnds[name] ?? 0) + 1;
      if (err.code === grpc.status.CANCELLED) return;
      if (err.code === grpc.status.RESOURCE_EXHAUSTED) {
        // Fell too far behind: resume from the last revision, as the API says.
        this.o.stats.watchResumes++;
        this.openWatch();
        return;
      }
      if (this.o.tolerate?.(err.code, "watch-snapshot")) return;
      this.o.stats.errors.push(`client ${this.o.index} long watch: ${STATUS_NAME[err.code]} ${err.details}`);
    });
  }

  private async step(): Promise<void> {
    const idle = this.mine.filter((a) => !a.running);
    const running = this.mine.filter((a) => a.running);
    const roll = this.r.next();
    if (this.mine.length === 0 || (roll < 0.08 && this.mine.length < 6)) return this.register();
    const containers = this.o.containers ?? true;
    if (containers && roll < 0.2 && running.length === 0 && idle.length > 0) return this.start(this.r.pick(idle));
    if (containers && roll < 0.32 && running.length > 0) return this.stopAgent(this.r.pick(running));
    if (roll < 0.5) return this.op("get", this.c.orch, "GetAgent", { agent_id: this.r.pick(this.mine).id });
    if (roll < 0.6) return this.op("list", this.c.orch, "ListAgents", { page_size: 50 });
    if (roll < 0.85 && this.o.registry.ids.length > 1) {
      const to = this.r.pick(this.o.registry.ids);
      return this.op("send", this.c.life, "SendMessage", {
        message: { from_agent_id: this.r.pick(this.mine).id, to_agent_id: to, status_update: { task_id: "load", progress: this.r.int(0, 100), message: "x".repeat(this.r.int(0, 200)) } },
      });
    }
    if (roll < 0.93) {
      // Read the mailbox, then acknowledge what was read (so mailboxes do not grow without end).
      const agentId = this.r.pick(this.mine).id;
      let upTo = 0;
      await this.drain("stream-messages", this.c.life, "StreamMessages", { agent_id: agentId }, (m) => {
        const message = (m as { message?: { sequence: string } | null }).message;
        if (message) upTo = Math.max(upTo, Number(message.sequence));
        return !message;
      });
      if (upTo > 0) await this.op("ack", this.c.life, "AckMessages", { agent_id: agentId, up_to_sequence: String(upTo) });
      return;
    }
    return this.drain("watch-snapshot", this.c.orch, "WatchAgents", { send_initial_state: true, agent_ids: [this.r.pick(this.mine).id] }, (m) => (m as { event?: { type: string } }).event?.type === "EVENT_TYPE_BOOKMARK");
  }

  private async register(): Promise<void> {
    const id = `${this.o.prefix}-${this.o.index}-${this.serial++}`;
    const ok = await this.op("register", this.c.orch, "RegisterAgent", { agent: { agent_id: id, image: TEST_IMAGE, command: ["sleep", "3600"], lifecycle: { max_idle: { seconds: "0" } } } });
    if (ok) {
      this.mine.push({ id, running: false });
      this.o.registry.ids.push(id);
      this.acknowledged.set(id, { status: "idle", containerId: "" });
    }
  }

  private async start(a: { id: string; running: boolean }): Promise<void> {
    const res = await this.op<{ agent: AgentView }>("start", this.c.orch, "StartAgent", { agent_id: a.id });
    if (res) {
      a.running = true;
      this.acknowledged.set(a.id, { status: "running", containerId: res.agent.container_id });
    }
  }

  private async stopAgent(a: { id: string; running: boolean }): Promise<void> {
    if (await this.op("stop", this.c.orch, "StopAgent", { agent_id: a.id })) {
      a.running = false;
      this.acknowledged.set(a.id, { status: "idle", containerId: "" });
    }
  }

  /** A unary call, timed; returns the response or undefined after recording the error. */
  private async op<T = Record<string, unknown>>(name: OpName, client: grpc.Client, method: string, req: object): Promise<T | undefined> {
    const t0 = performance.now();
    const out = await attempt<T>(client, method, req, this.o.deadlineMs);
    const ms = performance.now() - t0;
    const s = this.o.stats;
    s.ops[name] = (s.ops[name] ?? 0) + 1;
    (s.latencies[name] ??= []).push(ms);
    const outcome = out.ok ? "OK" : (STATUS_NAME[out.code] ?? String(out.code));
    s.outcomes[outcome] = (s.outcomes[outcome] ?? 0) + 1;
    if (out.ok) {
      s.okAt.push(out.at);
      return out.value;
    }
    if (out.code === grpc.status.DEADLINE_EXCEEDED) s.deadlines++;
    if (!this.o.tolerate?.(out.code, name) && s.errors.length < 50) s.errors.push(`client ${this.o.index} ${method}: ${STATUS_NAME[out.code]} ${out.details}`);
    return undefined;
  }

  /** Opens a stream, reads until `last` says the replayed part is over, then cancels it. */
  private drain(name: OpName, client: grpc.Client, method: string, req: object, last: (m: unknown) => boolean): Promise<void> {
    const t0 = performance.now();
    const s = this.o.stats;
    return new Promise((resolve) => {
      const stream = serverStream(client, method, req, { deadlineMs: this.o.deadlineMs });
      let done = false;
      const finish = (err?: grpc.ServiceError) => {
        if (done) return;
        done = true;
        stream.cancel();
        s.ops[name] = (s.ops[name] ?? 0) + 1;
        (s.latencies[name] ??= []).push(performance.now() - t0);
        if (err && err.code !== grpc.status.CANCELLED && !this.o.tolerate?.(err.code, name) && s.errors.length < 50) {
          s.errors.push(`client ${this.o.index} ${method}: ${STATUS_NAME[err.code]} ${err.details}`);
        }
        resolve();
      };
      // StreamMessages sends pending messages, then waits: a short quiet period ends the read.
      let quiet: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(quiet);
        quiet = setTimeout(() => finish(), 200);
      };
      if (name === "stream-messages") arm();
      stream.on("data", (m: unknown) => {
        if (last(m)) finish();
        else if (name === "stream-messages") arm();
      });
      stream.on("error", (err: grpc.ServiceError) => {
        clearTimeout(quiet);
        finish(err);
      });
      stream.on("end", () => {
        clearTimeout(quiet);
        finish();
      });
    });
  }
}

/** Percentiles of a list of numbers (ms). */
export function percentiles(xs: number[]): { n: number; p50: number; p99: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => Math.round((s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0) * 10) / 10;
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: at(1) };
}
