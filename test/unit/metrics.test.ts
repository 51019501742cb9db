/**
 * The metrics without a server: the instrumented backend reports each engine call (and
 * not the ones a caller gave up on), and the registry exposes every family with the
 * expected type and labels, fed by the observers the composition root wires in (RPC log,
 * backend, exits, event bus, mailbox decorators) and by the sources read at scrape time.
 * The exposition is read back with the strict text parser in test/support.
 */
import { describe, expect, it } from "vitest";
import type { DescService } from "@bufbuild/protobuf";
import { AgentOrchestratorService } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { instrumentBackend } from "../../src/backends/instrumented-backend.js";
import type { BackendCall } from "../../src/backends/instrumented-backend.js";
import type { MailboxService } from "../../src/core/a2a/mailbox-service.js";
import type { MailboxItem } from "../../src/core/a2a/message-stream.js";
import type { MailboxState, MailboxStore } from "../../src/core/a2a/ports.js";
import type { StoredMessage } from "../../src/core/a2a/message.js";
import type { AgentExit } from "../../src/core/agent-supervisor.js";
import { AgentorchError, unavailable } from "../../src/core/errors.js";
import { EventBus } from "../../src/core/event-bus.js";
import type { ContainerBackend, ContainerWatchHandler, StoredEvent } from "../../src/core/ports.js";
import type { Task } from "../../src/core/tasks/task.js";
import { createMetrics } from "../../src/server/metrics.js";
import type { MetricsSources } from "../../src/server/metrics.js";
import { loadConfig } from "../../src/server/config.js";
import { FakeBackend } from "../fakes/fake-backend.js";
import { parsePrometheusText, sampleValue } from "../support/prometheus-text.js";

// ------------------------------------------------------------------ instrumented backend

describe("instrumentBackend", () => {
  function instrumented(backend: ContainerBackend) {
    const calls: BackendCall[] = [];
    return { calls, backend: instrumentBackend(backend, (c) => calls.push(c)) };
  }

  it("reports each call's operation and duration, and a failure's error kind, and passes results and errors through", async () => {
    const fake = new FakeBackend();
    const { calls, backend } = instrumented(fake);
    const spec = {
      image: "busybox:test",
      command: [],
      env: {},
      policy: "container" as const,
      resources: { memoryBytes: 1, cpus: 0, pidsLimit: 1, maxOutputBytes: 10 },
      workspace: { hostPath: "/tmp", mountPoint: "/w", readOnly: false },
      labels: { agentId: "a", instanceId: "i" },
    };
    const { containerId } = await backend.spawn(spec);
    expect(fake.containers.has(containerId)).toBe(true);
    expect(await backend.inspect("nope")).toBeUndefined();
    await expect(backend.output("nope", 10)).rejects.toMatchObject({ kind: "not_found" });
    fake.setDown(true);
    await expect(backend.ping()).rejects.toMatchObject({ kind: "unavailable" });
    await expect(backend.list("i")).rejects.toMatchObject({ kind: "unavailable" });

    expect(calls.map((c) => [c.operation, c.errorKind])).toEqual([
      ["spawn", undefined],
      ["inspect", undefined],
      ["output", "not_found"],
      ["ping", "unavailable"],
      ["list", "unavailable"],
    ]);
    for (const c of calls) expect(c.durationSeconds).toBeGreaterThanOrEqual(0);
    expect(backend.endpoint).toBe(fake.endpoint);
  });

  it("does not report a call its caller aborted, but reports one cut off by its own time limit as a timeout", async () => {
    const hanging = (signal?: AbortSignal) =>
      new Promise<never>((_, reject) => {
        signal?.addEventListener("abort", () => {
          const err = new Error("operation aborted");
          err.name = "AbortError";
          reject(err);
        });
      });
    const stub = { endpoint: "stub://", ping: hanging, inspect: (_id: string, s?: AbortSignal) => hanging(s) } as unknown as ContainerBackend;
    const { calls, backend } = instrumented(stub);
    const caller = new AbortController();
    const aborted = backend.inspect("x", caller.signal);
    caller.abort();
    await expect(aborted).rejects.toMatchObject({ name: "AbortError" });
    await expect(backend.ping(AbortSignal.timeout(20))).rejects.toMatchObject({ name: "AbortError" });
    expect(calls.map((c) => [c.operation, c.errorKind])).toEqual([["ping", "timeout"]]);
  });

  it("reports a broken event stream as an error of operation events, and a failed follow, without durations", async () => {
    let handler: ContainerWatchHandler | undefined;
    const stub = {
      endpoint: "stub://",
      watch: (_i: string, h: ContainerWatchHandler) => {
        handler = h;
      },
      async *followOutput() {
        yield new Uint8Array([1]);
        throw unavailable("engine went away");
      },
    } as unknown as ContainerBackend;
    const { calls, backend } = instrumented(stub);
    const seen: string[] = [];
    const stop = new AbortController();
    backend.watch("i", { onEvent: () => seen.push("event"), onConnected: () => seen.push("connected"), onDisconnected: () => seen.push("disconnected") }, stop.signal);
    handler!.onConnected();
    handler!.onEvent({ type: "die", containerId: "c", labels: { agentId: "a", instanceId: "i" }, time: 0 });
    handler!.onDisconnected(unavailable("gone"));
    const chunks: Uint8Array[] = [];
    await expect(
      (async () => {
        for await (const c of backend.followOutput("c", 10, stop.signal)) chunks.push(c);
      })(),
    ).rejects.toBeInstanceOf(AgentorchError);
    stop.abort();
    handler!.onDisconnected(new Error("closing")); // after abort: the caller's doing, not reported

    expect(seen).toEqual(["connected", "event", "disconnected", "disconnected"]);
    expect(chunks).toHaveLength(1);
    expect(calls).toEqual([
      { operation: "events", errorKind: "unavailable" },
      { operation: "follow_output", errorKind: "unavailable" },
    ]);
  });

  it("never lets a throwing observer break the call", async () => {
    const backend = instrumentBackend(new FakeBackend(), () => {
      throw new Error("observer bug");
    });
    await expect(backend.ping()).resolves.toBeUndefined();
  });
});

// ------------------------------------------------------------------ the registry

function fakeSources() {
  const bus = new EventBus();
  const exits = new Set<(exit: AgentExit) => void>();
  const mailboxes = new Map<string, MailboxState>([
    ["a", { lastSequence: 3, ackedSequence: 1, unackedCount: 2, unackedBytes: 10 }],
    ["b", { lastSequence: 1, ackedSequence: 0, unackedCount: 1, unackedBytes: 5 }],
  ]);
  const sources: MetricsSources = {
    store: { countAgentsWithStatus: ([s]) => ({ idle: 3, running: 2 })[s as string] ?? 0 },
    taskStore: { countTasksWithState: ([s]) => ({ completed: 7, submitted: 1 })[s as string] ?? 0 },
    tasks: { stats: () => ({ waiting: 4, running: 2 }) },
    agents: {
      onExit(cb) {
        exits.add(cb);
        return () => exits.delete(cb);
      },
    },
    bus,
    mailboxStore: { mailboxIds: () => [...mailboxes.keys()], state: (id) => mailboxes.get(id)! },
  };
  const exit = (e: Partial<AgentExit>) => {
    for (const cb of exits) cb({ containerId: "c", cause: "exited", oomKilled: false, agent: undefined as never, ...e });
  };
  return { sources, bus, exit, exits };
}

let revision = 0;
function taskEvent(type: StoredEvent["type"], task: Partial<Task>): StoredEvent<Task> {
  return { revision: ++revision, kind: "task", type, id: task.taskId ?? "t", entity: { taskId: "t", ephemeral: false, state: "submitted", ...task } as Task, time: 0 };
}

const served = (): readonly DescService[] => [AgentOrchestratorService];

describe("createMetrics", () => {
  it("exposes every family with its type and labels, named agentorch_", async () => {
    const metrics = createMetrics(served);
    const { sources, bus, exit } = fakeSources();
    metrics.observe(sources);
    metrics.rpc({ method: "agentorch.v1.AgentOrchestratorService/GetAgent", code: "not_found", durationMs: 3, protocol: "grpc" });
    metrics.dockerCall({ operation: "spawn", durationSeconds: 0.2 });
    metrics.dockerCall({ operation: "kill", durationSeconds: 0.01, errorKind: "unavailable" });
    exit({ exitCode: 137, oomKilled: true });
    bus.publish(taskEvent("added", { ephemeral: true }));
    bus.publish(taskEvent("changed", { state: "completed", result: { durationMs: 1500 } as Task["result"] }));

    const { contentType, body } = await metrics.render();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusText(body);
    const expected: [string, string, string[]][] = [
      ["agentorch_rpc_requests_total", "counter", ["code", "method"]],
      ["agentorch_rpc_duration_seconds", "histogram", ["code", "le", "method"]],
      ["agentorch_agents", "gauge", ["status"]],
      ["agentorch_tasks", "gauge", ["state"]],
      ["agentorch_tasks_queued", "gauge", []],
      ["agentorch_tasks_running", "gauge", []],
      ["agentorch_task_duration_seconds", "histogram", ["le", "state"]],
      ["agentorch_containers_started_total", "counter", []],
      ["agentorch_containers_failed_total", "counter", []],
      ["agentorch_containers_oom_killed_total", "counter", []],
      ["agentorch_docker_call_duration_seconds", "histogram", ["le", "operation"]],
      ["agentorch_docker_call_errors_total", "counter", ["kind", "operation"]],
      ["agentorch_agents_forked_total", "counter", []],
      ["agentorch_agents_completed_total", "counter", []],
      ["agentorch_agents_failed_total", "counter", []],
      ["agentorch_messages_pending", "gauge", []],
    ];
    for (const [name, type, labels] of expected) {
      const f = families.get(name);
      expect(f, name).toBeDefined();
      expect(f!.type, name).toBe(type);
      expect(f!.help, name).toBeTruthy();
      expect(f!.samples.length, name).toBeGreaterThan(0);
      for (const s of f!.samples) {
        // Only a histogram's buckets carry le; its _sum and _count do not.
        const want = s.name.endsWith("_bucket") ? labels : labels.filter((l) => l !== "le");
        expect(Object.keys(s.labels).sort(), s.name).toEqual(want);
      }
    }
    for (const name of ["agentorch_messages_sent_total", "agentorch_messages_delivered_total", "agentorch_messages_processed_total"]) {
      expect(families.get(name)?.type, name).toBe("counter");
    }
    expect(families.get("agentorch_watch_streams_open")?.type).toBe("gauge");
    expect(families.get("agentorch_process_cpu_user_seconds_total")?.type).toBe("counter");
    expect([...families.keys()].filter((n) => !n.startsWith("agentorch_"))).toEqual([]);

    // The values the observers and sources produced.
    expect(sampleValue(families, "agentorch_rpc_requests_total", { method: "agentorch.v1.AgentOrchestratorService/GetAgent", code: "not_found" })).toBe(1);
    expect(sampleValue(families, "agentorch_rpc_duration_seconds_sum", { code: "not_found" })).toBeCloseTo(0.003);
    expect(sampleValue(families, "agentorch_agents", { status: "idle" })).toBe(3);
    expect(sampleValue(families, "agentorch_agents", { status: "terminated" })).toBe(0);
    expect(families.get("agentorch_agents")!.samples).toHaveLength(7);
    expect(sampleValue(families, "agentorch_tasks", { state: "completed" })).toBe(7);
    expect(families.get("agentorch_tasks")!.samples).toHaveLength(6);
    expect(sampleValue(families, "agentorch_tasks_queued")).toBe(4);
    expect(sampleValue(families, "agentorch_tasks_running")).toBe(2);
    expect(sampleValue(families, "agentorch_messages_pending")).toBe(3);
    expect(sampleValue(families, "agentorch_containers_started_total")).toBe(1);
    expect(sampleValue(families, "agentorch_containers_failed_total")).toBe(1);
    expect(sampleValue(families, "agentorch_containers_oom_killed_total")).toBe(1);
    expect(sampleValue(families, "agentorch_docker_call_errors_total", { operation: "kill", kind: "unavailable" })).toBe(1);
    expect(sampleValue(families, "agentorch_docker_call_duration_seconds_count", { operation: "spawn" })).toBe(1);
    expect(sampleValue(families, "agentorch_agents_forked_total")).toBe(1);
    expect(sampleValue(families, "agentorch_agents_completed_total")).toBe(1);
    expect(sampleValue(families, "agentorch_task_duration_seconds_sum", { state: "completed" })).toBe(1.5);
  });

  it("labels calls to methods that are not served \"unknown\", so paths cannot multiply series", async () => {
    const metrics = createMetrics(served);
    for (const method of ["x.Y/A", "x.Y/B", "agentorch.v1.AgentOrchestratorService/NoSuch"]) {
      metrics.rpc({ method, code: "unimplemented", durationMs: 1, protocol: "connect" });
    }
    const families = parsePrometheusText((await metrics.render()).body);
    expect(families.get("agentorch_rpc_requests_total")!.samples.map((s) => s.labels)).toEqual([{ method: "unknown", code: "unimplemented" }]);
    expect(sampleValue(families, "agentorch_rpc_requests_total", { method: "unknown" })).toBe(3);
  });

  it("counts exits: a clean exit and a stop are not failures; a non-zero exit is", async () => {
    const metrics = createMetrics(served);
    const { sources, exit } = fakeSources();
    metrics.observe(sources);
    exit({ exitCode: 0 });
    exit({ cause: "stopped" });
    exit({ cause: "lost" });
    exit({ exitCode: 3 });
    const families = parsePrometheusText((await metrics.render()).body);
    expect(sampleValue(families, "agentorch_containers_failed_total")).toBe(1);
    expect(sampleValue(families, "agentorch_containers_oom_killed_total")).toBe(0);
  });

  it("counts each finished task once by its final state, and ignores writes that do not finish a task", async () => {
    const metrics = createMetrics(served);
    const { sources, bus } = fakeSources();
    metrics.observe(sources);
    bus.publish(taskEvent("added", {}));
    bus.publish(taskEvent("changed", { state: "working" }));
    bus.publish(taskEvent("changed", { state: "failed", result: { durationMs: 200 } as Task["result"] }));
    bus.publish(taskEvent("changed", { state: "canceled" })); // no result: no duration
    bus.publish({ revision: ++revision, kind: "agent", type: "changed", id: "a", entity: { status: "failed" }, time: 0 });
    const families = parsePrometheusText((await metrics.render()).body);
    expect(sampleValue(families, "agentorch_agents_failed_total")).toBe(1);
    expect(sampleValue(families, "agentorch_agents_completed_total")).toBe(0);
    expect(sampleValue(families, "agentorch_agents_forked_total")).toBe(0);
    expect(sampleValue(families, "agentorch_task_duration_seconds_count", { state: "failed" })).toBe(1);
    expect(sampleValue(families, "agentorch_task_duration_seconds_count", { state: "canceled" })).toBe(0);
  });

  it("counts messages stored, acknowledged and handed to streams through the decorators", async () => {
    const metrics = createMetrics(served);
    const stored = { sequence: 1 } as StoredMessage;
    let acks = [2, 0];
    const inner = {
      append: () => stored,
      ack: () => acks.shift() ?? 0,
    } as unknown as MailboxStore;
    const store = metrics.countMessages(inner);
    expect(store.append({} as never, "id", 0)).toBe(stored);
    store.append({} as never, "id", 0);
    expect(store.ack("b", 2, 0)).toBe(2);
    expect(store.ack("b", 2, 0)).toBe(0);

    const items: MailboxItem[] = [{ type: "message", message: stored }, { type: "keepalive" }, { type: "message", message: stored }];
    const api = metrics.countDeliveries({
      stream: async function* () {
        yield* items;
      },
    } as unknown as MailboxService);
    const got: MailboxItem[] = [];
    for await (const item of api.stream("b", 0, new AbortController().signal)) got.push(item);
    expect(got).toEqual(items);

    const families = parsePrometheusText((await metrics.render()).body);
    expect(sampleValue(families, "agentorch_messages_sent_total")).toBe(2);
    expect(sampleValue(families, "agentorch_messages_processed_total")).toBe(2);
    expect(sampleValue(families, "agentorch_messages_delivered_total")).toBe(2);
    acks = [];
  });

  it("reads no source after unobserve (the gauges are reset, not stale)", async () => {
    const metrics = createMetrics(served);
    const { sources, exits } = fakeSources();
    metrics.observe(sources);
    expect(sampleValue(parsePrometheusText((await metrics.render()).body), "agentorch_tasks_queued")).toBe(4);
    metrics.unobserve();
    expect(exits.size).toBe(0);
    const families = parsePrometheusText((await metrics.render()).body);
    expect(sampleValue(families, "agentorch_tasks_queued")).toBe(0);
    expect(families.get("agentorch_agents")!.samples).toEqual([]);
  });
});

describe("AGENTORCH_METRICS_LISTEN", () => {
  it("is unset by default (metrics on the service port), parsed as HOST:PORT, and refused when malformed", () => {
    expect(loadConfig({}).metricsListen).toBeUndefined();
    expect(loadConfig({ AGENTORCH_METRICS_LISTEN: "127.0.0.1:9464" }).metricsListen).toEqual({ host: "127.0.0.1", port: 9464 });
    // Beyond loopback only with operator tokens (test/e2e/small-hardening.test.ts: refused without).
    const tokens = { AGENTORCH_TOKENS: `scraper:viewer:${"ab".repeat(32)}` };
    expect(loadConfig({ ...tokens, AGENTORCH_INSECURE_LISTEN: "1", AGENTORCH_METRICS_LISTEN: "0.0.0.0:9464" }).metricsListen).toEqual({ host: "0.0.0.0", port: 9464 });
    expect(() => loadConfig({ AGENTORCH_METRICS_LISTEN: "9464" })).toThrow(/AGENTORCH_METRICS_LISTEN must be HOST:PORT/);
  });
});
