/**
 * A2A cards on the real SQLite store with the real agent and task services: publish, read,
 * filtered pages, status kept in step with the agent, removal with the agent, capabilities
 * gained when a task starts, and reconciliation at start-up.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { CardInput } from "../../src/core/a2a/card.js";
import { kindOf } from "../support/errors.js";
import { cleanupWorlds, openWorld, register } from "./a2a-fixture.js";

afterEach(cleanupWorlds);

describe("publish and get", () => {
  it("stores a card with the agent's status, defaulting the name to the agent's", async () => {
    const w = await openWorld();
    await register(w, "a");
    const card = w.cards.publish({
      agentId: "a",
      description: "reviews code",
      capabilities: ["code-review", "code-review", "testing"],
      skills: [{ id: "ts.review", name: "TypeScript review", tags: ["typescript", "review"] }],
    });
    expect(card).toEqual({
      agentId: "a",
      name: "agent a",
      description: "reviews code",
      capabilities: ["code-review", "testing"],
      skills: [{ id: "ts.review", name: "TypeScript review", description: "", tags: ["typescript", "review"] }],
      status: "idle",
      updatedAt: w.clock.now(),
    });
    expect(w.cards.get("a")).toEqual(card);
    // Publishing again replaces the card.
    w.clock.advance(1000);
    expect(w.cards.publish({ agentId: "a", name: "Reviewer" })).toMatchObject({ name: "Reviewer", capabilities: [], skills: [], updatedAt: w.clock.now() });
  });

  it("answers NOT_FOUND for an unknown agent or a missing card, INVALID_ARGUMENT for a bad card", async () => {
    const w = await openWorld();
    await register(w, "a");
    expect(kindOf(() => w.cards.publish({ agentId: "ghost" }))).toBe("not_found");
    expect(kindOf(() => w.cards.get("a"))).toBe("not_found");
    expect(kindOf(() => w.cards.get("bad id"))).toBe("invalid_argument");
    const bad: (CardInput | undefined)[] = [
      undefined,
      { agentId: "" },
      { agentId: "a", name: "x".repeat(257) },
      { agentId: "a", name: "two\nlines" },
      { agentId: "a", description: "x".repeat(4097) },
      { agentId: "a", capabilities: ["has space"] },
      { agentId: "a", capabilities: ["x".repeat(65)] },
      { agentId: "a", capabilities: Array.from({ length: 65 }, (_, i) => `c${i}`) },
      { agentId: "a", skills: [{ id: "s" }, { id: "s" }] },
      { agentId: "a", skills: [{ id: "" }] },
      { agentId: "a", skills: [{ id: "s", tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }] },
      { agentId: "a", skills: Array.from({ length: 65 }, (_, i) => ({ id: `s${i}` })) },
    ];
    for (const c of bad) expect(kindOf(() => w.cards.publish(c)), JSON.stringify(c)?.slice(0, 80)).toBe("invalid_argument");
    expect(kindOf(() => w.cards.get("a"))).toBe("not_found");
  });
});

describe("list", () => {
  it("pages in agent_id order and filters by capability and by skill id or tag", async () => {
    const w = await openWorld();
    const ids = ["a1", "a2", "a3", "a4", "a5"];
    await register(w, ...ids);
    w.cards.publish({ agentId: "a1", capabilities: ["testing"] });
    w.cards.publish({ agentId: "a2", capabilities: ["testing", "debugging"], skills: [{ id: "py", tags: ["python"] }] });
    w.cards.publish({ agentId: "a3", skills: [{ id: "python" }] });
    w.cards.publish({ agentId: "a4", capabilities: ["test"] });
    w.cards.publish({ agentId: "a5" });

    const all = [];
    let token = "";
    do {
      const page = w.cards.list({ pageSize: 2, pageToken: token });
      expect(page.cards.length).toBeLessThanOrEqual(2);
      all.push(...page.cards.map((c) => c.agentId));
      token = page.nextPageToken;
    } while (token);
    expect(all).toEqual(ids);

    expect(w.cards.list({ pageSize: 0, pageToken: "", capability: "testing" }).cards.map((c) => c.agentId)).toEqual(["a1", "a2"]);
    expect(w.cards.list({ pageSize: 0, pageToken: "", skill: "python" }).cards.map((c) => c.agentId)).toEqual(["a2", "a3"]);
    expect(w.cards.list({ pageSize: 0, pageToken: "", capability: "debugging", skill: "python" }).cards.map((c) => c.agentId)).toEqual(["a2"]);
    expect(w.cards.list({ pageSize: 0, pageToken: "", capability: "nothing" }).cards).toEqual([]);

    const first = w.cards.list({ pageSize: 1, pageToken: "", capability: "testing" });
    expect(first.cards.map((c) => c.agentId)).toEqual(["a1"]);
    expect(w.cards.list({ pageSize: 1, pageToken: first.nextPageToken, capability: "testing" })).toMatchObject({
      cards: [{ agentId: "a2" }],
      nextPageToken: "",
    });
    expect(kindOf(() => w.cards.list({ pageSize: 1, pageToken: first.nextPageToken, capability: "debugging" }))).toBe("invalid_argument");
    expect(kindOf(() => w.cards.list({ pageSize: 1, pageToken: "garbage" }))).toBe("invalid_argument");
    expect(kindOf(() => w.cards.list({ pageSize: 1001, pageToken: "" }))).toBe("invalid_argument");
    expect(kindOf(() => w.cards.list({ pageSize: 0, pageToken: "", capability: "bad cap" }))).toBe("invalid_argument");
  });
});

describe("following the agent", () => {
  it("keeps the card's status in step with the agent's", async () => {
    const w = await openWorld();
    await register(w, "a");
    w.cards.publish({ agentId: "a" });
    w.clock.advance(500);
    await w.agents.start("a");
    expect(w.cards.get("a")).toMatchObject({ status: "running", updatedAt: w.clock.now() });
    await w.agents.stop("a");
    expect(w.cards.get("a").status).toBe("idle");
    const c = w.backend.running()[0];
    expect(c).toBeUndefined();
    await w.agents.start("a");
    w.backend.exit(w.backend.running()[0]!.id, 3);
    await vi.waitFor(() => expect(w.cards.get("a").status).toBe("failed"));
  });

  it("deletes the card with its agent", async () => {
    const w = await openWorld();
    await register(w, "a");
    w.cards.publish({ agentId: "a", capabilities: ["testing"] });
    await w.agents.remove("a", { deleteWorkspace: true });
    expect(kindOf(() => w.cards.get("a"))).toBe("not_found");
    await register(w, "a");
    expect(kindOf(() => w.cards.get("a"))).toBe("not_found");
    expect(w.cards.list({ pageSize: 0, pageToken: "", capability: "testing" }).cards).toEqual([]);
  });

  it("reconciles at start-up: a stale status is fixed, the card of an agent removed meanwhile is deleted", async () => {
    const w1 = await openWorld();
    await register(w1, "a", "b");
    w1.cards.publish({ agentId: "a" });
    w1.cards.publish({ agentId: "b" });
    await w1.agents.start("a");
    expect(w1.cards.get("a").status).toBe("running");
    w1.cards.close(); // nobody follows the agents any more
    await w1.agents.stop("a");
    await w1.agents.remove("b", { deleteWorkspace: true });
    expect(w1.cards.get("a").status).toBe("running");
    expect(w1.cards.get("b").agentId).toBe("b");
    await w1.close();
    const w2 = await openWorld({ dir: w1.dir });
    expect(kindOf(() => w2.cards.get("b"))).toBe("not_found");
    expect(w2.cards.get("a").status).toBe("idle");
  });
});

describe("capabilities from tasks", () => {
  it("adds the capabilities inferred from the goal when a task starts, keeping the card's own", async () => {
    const w = await openWorld();
    await register(w, "worker");
    w.cards.publish({ agentId: "worker", capabilities: ["custom"] });
    const task = await w.tasks.submit({
      directive: { goal: "Fix the failing tests" },
      agentId: "worker",
      priority: "normal",
      timeoutMs: 0,
    });
    await vi.waitFor(() => expect(w.tasks.get(task.taskId).state).toBe("working"));
    expect(w.cards.get("worker").capabilities).toEqual(["custom", "execute-directive", "testing", "debugging"]);
  });

  it("makes a minimal card for an agent without one, and an ephemeral agent's card goes with it", async () => {
    const w = await openWorld();
    const task = await w.tasks.submit({
      directive: { goal: "review and refactor the parser" },
      template: { image: "agentorch/busybox:test", command: ["sh", "-c", "true"] },
      priority: "normal",
      timeoutMs: 0,
    });
    await vi.waitFor(() => expect(w.tasks.get(task.taskId).state).toBe("working"));
    expect(w.cards.get(task.agentId)).toMatchObject({
      agentId: task.agentId,
      name: w.agents.get(task.agentId).config.name,
      capabilities: ["execute-directive", "code-review", "refactoring"],
      status: "running",
    });
    expect(w.cards.list({ pageSize: 0, pageToken: "", capability: "refactoring" }).cards).toHaveLength(1);
    w.backend.exit(w.backend.running()[0]!.id, 0);
    await vi.waitFor(() => expect(() => w.agents.get(task.agentId)).toThrow(/not found/));
    expect(kindOf(() => w.cards.get(task.agentId))).toBe("not_found");
    expect(w.cards.list({ pageSize: 0, pageToken: "", capability: "refactoring" }).cards).toEqual([]);
  });

  it("keeps at most 64 capabilities", async () => {
    const w = await openWorld();
    await register(w, "full");
    const own = Array.from({ length: 63 }, (_, i) => `c${i}`);
    w.cards.publish({ agentId: "full", capabilities: own });
    const card = w.cards.gainCapabilities(w.agents.get("full"), ["execute-directive", "testing"]);
    expect(card.capabilities).toHaveLength(64);
    expect(card.capabilities.at(-1)).toBe("execute-directive");
  });
});
