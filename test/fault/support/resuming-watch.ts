/**
 * A client that follows WatchAgents or WatchTasks across service restarts the way the API
 * tells clients to: on any end of the stream, open it again with resume_after_revision set
 * to the last revision received (event or bookmark). It records every event, so a test
 * can compare what it saw with a fresh replay of the whole log: a gap or a duplicate
 * across a kill shows as a difference.
 */
import type { grpc } from "./grpc.js";
import { serverStream } from "../../support/grpc.js";
import type { Clients } from "./grpc.js";

export interface SeenEvent {
  revision: number;
  type: string;
  id: string;
}

type Kind = "agents" | "tasks";

interface WireEvent {
  type: string;
  revision: string;
  agent?: { agent_id: string } | null;
  task?: { task_id: string } | null;
}

export class ResumingWatch {
  readonly events: SeenEvent[] = [];
  /** Violations noticed while reading: revisions that went backwards or repeated. */
  readonly problems: string[] = [];
  /** Everything up to this revision has been delivered (last event or bookmark). */
  delivered = 0;
  private stream: grpc.ClientReadableStream<{ event?: WireEvent }> | undefined;
  private waiters = new Set<() => void>();

  constructor(private readonly kind: Kind) {}

  /** Opens (or re-opens) the stream on these clients, resuming after the last revision delivered. */
  open(c: Clients): void {
    this.close();
    const [client, method] = this.kind === "agents" ? [c.orch, "WatchAgents"] : [c.life, "WatchTasks"];
    const stream = serverStream<{ event?: WireEvent }>(client, method, { resume_after_revision: String(this.delivered) });
    this.stream = stream;
    stream.on("data", (res) => {
      const e = res.event;
      if (!e) return;
      const revision = Number(e.revision);
      if (e.type === "EVENT_TYPE_BOOKMARK") {
        if (revision < this.delivered) this.problems.push(`${this.kind}: bookmark ${revision} after ${this.delivered}`);
        this.delivered = Math.max(this.delivered, revision);
      } else {
        const id = this.kind === "agents" ? (e.agent?.agent_id ?? "") : (e.task?.task_id ?? "");
        if (revision <= this.delivered) this.problems.push(`${this.kind}: revision ${revision} (${e.type} ${id}) after ${this.delivered}`);
        this.events.push({ revision, type: e.type, id });
        this.delivered = Math.max(this.delivered, revision);
      }
      for (const w of this.waiters) w();
    });
    // Ends are expected (the process is killed); the next open() resumes.
    stream.on("error", () => undefined);
  }

  close(): void {
    this.stream?.cancel();
    this.stream = undefined;
  }

  /** Waits until everything up to revision has been delivered (bookmarks arrive on idle streams). */
  caughtUp(revision: number, timeoutMs: number): Promise<void> {
    if (this.delivered >= revision) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.delivered >= revision) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${this.kind} watch delivered up to ${this.delivered}, not ${revision}, within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }
}

/** Replays the whole kept log of one kind from revision 0 up to `upTo` with a fresh stream. */
export async function replay(c: Clients, kind: Kind, upTo: number, timeoutMs = 30_000): Promise<SeenEvent[]> {
  const w = new ResumingWatch(kind);
  w.open(c);
  try {
    await w.caughtUp(upTo, timeoutMs);
  } finally {
    w.close();
  }
  return w.events.filter((e) => e.revision <= upTo);
}
