/**
 * The A2A core over the real SQLite store (a file in a temporary directory, so a test can
 * close and reopen it), a fake container backend and the real agent and task services
 * (test/support/core-fixture.ts), with the card and mailbox services on top.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { CardService } from "../../src/core/a2a/card-service.js";
import type { MessageInput } from "../../src/core/a2a/message.js";
import type { MailboxItem } from "../../src/core/a2a/message-stream.js";
import { type MailboxConfig, MailboxService } from "../../src/core/a2a/mailbox-service.js";
import type { AgentService } from "../../src/core/agent-service.js";
import type { TaskService } from "../../src/core/tasks/task-service.js";
import { createSqliteCardStore } from "../../src/store/sqlite/card-store.js";
import { createSqliteMailboxStore } from "../../src/store/sqlite/mailbox-store.js";
import type { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { ManualClock } from "../fakes/clock-and-logger.js";
import { FakeBackend } from "../fakes/fake-backend.js";
import { buildCore, closeCores } from "../support/core-fixture.js";

export interface A2AWorld {
  dir: string;
  store: SqliteStore;
  agents: AgentService;
  tasks: TaskService;
  cards: CardService;
  mailboxes: MailboxService;
  backend: FakeBackend;
  clock: ManualClock;
  /** Closes the services and the store (the directory stays). */
  close(): Promise<void>;
}

const dirs: string[] = [];
const open: A2AWorld[] = [];

/** Closes every world and deletes every directory made so far: call in afterEach. */
export async function cleanupWorlds(): Promise<void> {
  for (const w of open.splice(0).reverse()) await w.close();
  await closeCores();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Opens the services on dir (a new temporary directory when absent). */
export async function openWorld(opts: { dir?: string; mailbox?: Partial<MailboxConfig>; clock?: ManualClock } = {}): Promise<A2AWorld> {
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), "agentorch-a2a-"));
  if (!opts.dir) dirs.push(dir);
  const backend = new FakeBackend();
  backend.images.add("agentorch/busybox:test");
  const core = buildCore({ dbPath: path.join(dir, "agentorch.db"), backend, clock: opts.clock });
  const { store, agents, tasks, bus, clock, logger } = core;
  const cards = new CardService({ cards: createSqliteCardStore(store), agents, bus, clock, logger, tasks });
  const mailboxes = new MailboxService({
    mailboxes: createSqliteMailboxStore(store),
    agents,
    bus,
    clock,
    logger,
    config: { pruneIntervalMs: 0, ...opts.mailbox },
  });
  await core.open();
  cards.open();
  mailboxes.open();
  let closed = false;
  const world: A2AWorld = {
    dir,
    store,
    agents,
    tasks,
    cards,
    mailboxes,
    backend,
    clock,
    async close() {
      if (closed) return;
      closed = true;
      mailboxes.close();
      cards.close();
      await core.close();
      store.close();
    },
  };
  open.push(world);
  return world;
}

/** Registers agents with the test image. */
export async function register(w: A2AWorld, ...ids: string[]): Promise<void> {
  for (const id of ids) await w.agents.register({ agentId: id, name: `agent ${id}`, image: "agentorch/busybox:test" });
}

/** A status_update message from -> to. */
export function update(from: string, to: string, progress: number, taskId = "t-1"): MessageInput {
  return { fromAgentId: from, toAgentId: to, taskId: "", body: { kind: "status_update", taskId, progress, message: `at ${progress}` } };
}

/** Pulls n items (keep-alives skipped) from a stream; fails after timeoutMs. */
export async function take(it: AsyncIterator<MailboxItem>, n: number, timeoutMs = 2000): Promise<number[]> {
  const seqs: number[] = [];
  const deadline = Date.now() + timeoutMs;
  while (seqs.length < n) {
    const left = deadline - Date.now();
    const r = await Promise.race([it.next(), new Promise<"timeout">((res) => setTimeout(() => res("timeout"), Math.max(0, left)))]);
    if (r === "timeout") throw new Error(`stream gave ${seqs.length} of ${n} messages: ${seqs.join(",")}`);
    if (r.done) throw new Error(`stream ended after ${seqs.length} of ${n} messages`);
    if (r.value.type === "message") seqs.push(r.value.message.sequence);
  }
  return seqs;
}

/** Resolves with the next item, or "pending" if none comes within ms. */
export async function nextWithin<T>(p: Promise<T>, ms: number): Promise<T | "pending"> {
  return Promise.race([p, new Promise<"pending">((res) => setTimeout(() => res("pending"), ms))]);
}
