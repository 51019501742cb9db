/** Resumable watches over the real SQLite event log. */
import { describe, expect, it } from "vitest";
import type { Agent } from "../../src/core/agent.js";
import { isAgentorchError } from "../../src/core/errors.js";
import { EventBus } from "../../src/core/event-bus.js";
import { type WatchItem, watchEvents } from "../../src/core/watch.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { createTestLogger } from "../fakes/clock-and-logger.js";
import { take } from "../support/streams.js";

function setup() {
  const store = openSqliteStore({ path: ":memory:", logger: createTestLogger() });
  const bus = new EventBus();
  const agent = (id: string, status: Agent["status"] = "idle"): Agent => ({
    config: {
      agentId: id,
      name: id,
      image: "i",
      command: [],
      envNames: [],
      policy: "container",
      resources: { memoryBytes: 1, cpus: 0, pidsLimit: 1, maxOutputBytes: 1 },
      lifecycle: { maxIdleMs: 0, maxLifetimeMs: 0, restartOnCrash: false, maxRestarts: 0 },
      workspace: { mountPoint: "/w", readOnly: false },
    },
    status,
    statusReason: "",
    containerId: "",
    workspacePath: "/x",
    createdAt: 0,
    restartCount: 0,
    executionCount: 0,
    crashRestarts: 0,
    tokenHash: "",
    ephemeral: false,
  });
  const insert = (id: string) => bus.publish(store.insertAgent(agent(id)));
  const update = (id: string, status: Agent["status"]) => bus.publish(store.updateAgent(agent(id, status)));
  return { store, bus, insert, update };
}


const summary = (items: WatchItem<Agent>[]) => items.map((i) => `${i.type}:${i.revision}:${i.entity?.config.agentId ?? ""}:${i.entity?.status ?? ""}`);

describe("watchEvents", () => {
  it("replays after a revision, then follows live events, with no gap and no duplicate", async () => {
    const { store, bus, insert, update } = setup();
    insert("a");
    insert("b");
    update("a", "running");
    const ac = new AbortController();
    const w = watchEvents<Agent>(store, bus, { kind: "agent", resumeAfter: 1, bookmarkIntervalMs: 0, maxBuffer: 100, signal: ac.signal });
    const first = take(w, 2);
    const replayed = await first;
    expect(summary(replayed)).toEqual(["added:2:b:idle", "changed:3:a:running"]);
    const live = take(w, 2);
    update("b", "running");
    update("a", "stopping");
    expect(summary(await live)).toEqual(["changed:4:b:running", "changed:5:a:stopping"]);
    ac.abort();
    expect((await w.next()).done).toBe(true);
  });

  it("sends the current state first, then a bookmark, and filters by id", async () => {
    const { store, bus, insert, update } = setup();
    insert("a");
    insert("b");
    const ac = new AbortController();
    const w = watchEvents<Agent>(store, bus, {
      kind: "agent",
      match: (id) => id === "b",
      snapshot: () => store.listAgents({ limit: 100 }).filter((a) => a.config.agentId === "b"),
      bookmarkIntervalMs: 0,
      maxBuffer: 100,
      signal: ac.signal,
    });
    expect(summary(await take(w, 2))).toEqual(["added:2:b:idle", "bookmark:2::"]);
    const next = take(w, 1);
    update("a", "running");
    update("b", "running");
    expect(summary(await next)).toEqual(["changed:4:b:running"]);
    ac.abort();
  });

  it("answers OUT_OF_RANGE for a revision older than the kept history or ahead of it", async () => {
    const { store, bus, insert } = setup();
    for (const id of ["a", "b", "c", "d"]) insert(id);
    store.pruneEvents(2);
    const signal = new AbortController().signal;
    const old = watchEvents<Agent>(store, bus, { kind: "agent", resumeAfter: 1, bookmarkIntervalMs: 0, maxBuffer: 10, signal });
    await expect(old.next()).rejects.toSatisfy((e: unknown) => isAgentorchError(e, "out_of_range"));
    const ahead = watchEvents<Agent>(store, bus, { kind: "agent", resumeAfter: 99, bookmarkIntervalMs: 0, maxBuffer: 10, signal });
    await expect(ahead.next()).rejects.toSatisfy((e: unknown) => isAgentorchError(e, "out_of_range"));
    const ok = watchEvents<Agent>(store, bus, { kind: "agent", resumeAfter: 2, bookmarkIntervalMs: 0, maxBuffer: 10, signal });
    expect(summary(await take(ok, 2))).toEqual(["added:3:c:idle", "added:4:d:idle"]);
  });

  it("cuts off a consumer that falls too far behind, and it can resume from its last revision", async () => {
    const { store, bus, insert, update } = setup();
    insert("a");
    const ac = new AbortController();
    const w = watchEvents<Agent>(store, bus, { kind: "agent", resumeAfter: 0, bookmarkIntervalMs: 0, maxBuffer: 5, signal: ac.signal });
    const [first] = await take(w, 1);
    for (let i = 0; i < 20; i++) update("a", i % 2 ? "running" : "idle");
    await expect(take(w, 50)).rejects.toSatisfy((e: unknown) => isAgentorchError(e, "resource_exhausted"));
    const resumed = watchEvents<Agent>(store, bus, { kind: "agent", resumeAfter: first!.revision, bookmarkIntervalMs: 0, maxBuffer: 5, signal: ac.signal });
    const items = await take(resumed, 20);
    expect(items.map((i) => i.revision)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    ac.abort();
  });

  it("sends bookmarks on an idle stream", async () => {
    const { store, bus, insert } = setup();
    insert("a");
    const ac = new AbortController();
    const w = watchEvents<Agent>(store, bus, { kind: "agent", bookmarkIntervalMs: 20, maxBuffer: 5, signal: ac.signal });
    expect(summary(await take(w, 2))).toEqual(["bookmark:1::", "bookmark:1::"]);
    ac.abort();
  });
});
