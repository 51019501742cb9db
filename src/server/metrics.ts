/**
 * The service's Prometheus metrics (prom-client, a registry of our own; every name starts
 * with agentorch_). Nothing in src/core knows about them: counts are taken where the
 * composition root can see them without touching the domain logic:
 *
 * - RPCs: from the one log line each call gets (the log interceptor, or the request log
 *   for calls refused before any handler ran); streams count when they end.
 * - Open streams: a server interceptor around every server-streaming response.
 * - Docker calls: the instrumented backend decorator (src/backends/instrumented-backend.ts);
 *   a successful spawn is a container started.
 * - Container exits (failed, OOM-killed): AgentService.onExit.
 * - Tasks finished, their duration, ephemeral agents forked: the event bus, which carries
 *   every committed task change (a task is written in a terminal state exactly once).
 * - Messages sent and acknowledged: a MailboxStore decorator; delivered: a wrapper of the
 *   mailbox streams (see metrics-a2a.ts).
 * - Gauges (agents by status, tasks by state, queue, running, pending messages): read
 *   from the store and the scheduler at scrape time, so they are right after a restart.
 */
import type { DescService } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { RpcObserver } from "../api/interceptors.js";
import { instrumentBackend } from "../backends/instrumented-backend.js";
import type { BackendCallObserver } from "../backends/instrumented-backend.js";
import type { MailboxStore } from "../core/a2a/ports.js";
import { AGENT_TRANSITIONS } from "../core/agent.js";
import type { AgentStatus } from "../core/agent.js";
import type { AgentService } from "../core/agent-service.js";
import type { EventBus } from "../core/event-bus.js";
import type { ContainerBackend, Store } from "../core/ports.js";
import type { TaskStore } from "../core/tasks/ports.js";
import { TASK_STATES, isTerminal } from "../core/tasks/task.js";
import type { Task } from "../core/tasks/task.js";
import { countDeliveries, countMessages } from "./metrics-a2a.js";
import type { MailboxesApi } from "./metrics-a2a.js";

const AGENT_STATUSES = Object.keys(AGENT_TRANSITIONS) as AgentStatus[];
const RPC_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const DOCKER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const TASK_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400];

/** What the scrape-time gauges read, and the core's notifications the counters follow. */
export interface MetricsSources {
  store: Pick<Store, "countAgentsWithStatus">;
  taskStore: Pick<TaskStore, "countTasksWithState">;
  tasks: { stats(): { waiting: number; running: number } };
  agents: Pick<AgentService, "onExit">;
  bus: EventBus;
  mailboxStore: Pick<MailboxStore, "mailboxIds" | "state">;
}

/** The service's metrics: the observers to wire in, and the registry to expose. */
export interface Metrics {
  readonly registry: Registry;
  /** For the log interceptor and the request log: one call per RPC. */
  readonly rpc: RpcObserver;
  /** Counts open server streams (agentorch_watch_streams_open). */
  readonly streams: Interceptor;
  /** For instrumentBackend. */
  readonly dockerCall: BackendCallObserver;
  /** The backend, timed. */
  instrumentBackend(backend: ContainerBackend): ContainerBackend;
  /** The mailbox store, counting messages sent and acknowledged. */
  countMessages(store: MailboxStore): MailboxStore;
  /** The mailbox API the handlers use, counting messages handed to streams. */
  countDeliveries(mailboxes: MailboxesApi): MailboxesApi;
  /** Starts following the core and reading the gauges at scrape time. Call once, before the service opens. */
  observe(sources: MetricsSources): void;
  /** Stops following the core. */
  unobserve(): void;
  /** The exposition: text format and its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}

let processRegistry: Registry | undefined;

/**
 * Node process metrics (CPU, memory, event loop, GC…), collected once per process: they
 * describe the process, and their collectors (a GC observer, an event-loop monitor) cannot
 * be stopped, so each server made in one process (tests) shares them.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: "agentorch_" });
  }
  return processRegistry;
}

/**
 * Creates the metrics. served lists the services registered (for the method label: a call
 * to a method that is not served is counted as method "unknown", so a client cannot grow
 * the number of series by calling made-up paths).
 */
export function createMetrics(served: () => readonly DescService[]): Metrics {
  const own = new Registry();
  const registers = [own];

  const rpcTotal = new Counter({
    name: "agentorch_rpc_requests_total",
    help: "RPCs handled, by method and code (streams counted when they end; calls refused before a handler included).",
    labelNames: ["method", "code"] as const,
    registers,
  });
  const rpcDuration = new Histogram({
    name: "agentorch_rpc_duration_seconds",
    help: "RPC duration from the request to the end of the response, by method and code.",
    labelNames: ["method", "code"] as const,
    buckets: RPC_BUCKETS,
    registers,
  });
  const streamsOpen = new Gauge({
    name: "agentorch_watch_streams_open",
    help: "Server streams open now (WatchAgents, WatchTask(s), StreamMessages, StreamAgentOutput, health Watch), by method.",
    labelNames: ["method"] as const,
    registers,
  });

  const dockerDuration = new Histogram({
    name: "agentorch_docker_call_duration_seconds",
    help: "Docker API call latency, by operation (failed calls included).",
    labelNames: ["operation"] as const,
    buckets: DOCKER_BUCKETS,
    registers,
  });
  const dockerErrors = new Counter({
    name: "agentorch_docker_call_errors_total",
    help: 'Docker API calls that failed, by operation and error kind ("events": the event stream broke).',
    labelNames: ["operation", "kind"] as const,
    registers,
  });
  const containersStarted = new Counter({
    name: "agentorch_containers_started_total",
    help: "Containers created and started.",
    registers,
  });
  const containersFailed = new Counter({
    name: "agentorch_containers_failed_total",
    help: "Containers that exited by themselves with a non-zero code or were OOM-killed.",
    registers,
  });
  const containersOom = new Counter({
    name: "agentorch_containers_oom_killed_total",
    help: "Containers killed by the kernel for exceeding their memory limit.",
    registers,
  });

  const taskDuration = new Histogram({
    name: "agentorch_task_duration_seconds",
    help: "Duration of finished tasks (their result's duration: from start to the container's end), by final state.",
    labelNames: ["state"] as const,
    buckets: TASK_BUCKETS,
    registers,
  });
  const agentsForked = new Counter({
    name: "agentorch_agents_forked_total",
    help: "Ephemeral agents created from a task template (the source system's agents_forked).",
    registers,
  });
  const agentsCompleted = new Counter({
    name: "agentorch_agents_completed_total",
    help: "Agent runs of a task that ended COMPLETED (the source system's agents_completed).",
    registers,
  });
  const agentsFailed = new Counter({
    name: "agentorch_agents_failed_total",
    help: "Agent runs of a task that ended FAILED, timeouts included (the source system's agents_failed).",
    registers,
  });

  const messagesSent = new Counter({
    name: "agentorch_messages_sent_total",
    help: "A2A messages stored in a mailbox (SendMessage and SendAndWait).",
    registers,
  });
  const messagesDelivered = new Counter({
    name: "agentorch_messages_delivered_total",
    help: "A2A messages handed to a StreamMessages reader (a message read again, or by several readers, counts each time).",
    registers,
  });
  const messagesProcessed = new Counter({
    name: "agentorch_messages_processed_total",
    help: "A2A messages acknowledged by their receiver (the source system's messages_processed).",
    registers,
  });

  let sources: MetricsSources | undefined;
  const unsubscribe: (() => void)[] = [];
  new Gauge({
    name: "agentorch_agents",
    help: "Registered agents, by status.",
    labelNames: ["status"] as const,
    registers,
    collect() {
      if (!sources) return this.reset();
      for (const status of AGENT_STATUSES) this.set({ status }, sources.store.countAgentsWithStatus([status]));
    },
  });
  new Gauge({
    name: "agentorch_tasks",
    help: "Tasks, by state (finished tasks are kept, so terminal states only grow).",
    labelNames: ["state"] as const,
    registers,
    collect() {
      if (!sources) return this.reset();
      for (const state of TASK_STATES) this.set({ state }, sources.taskStore.countTasksWithState([state]));
    },
  });
  new Gauge({
    name: "agentorch_tasks_queued",
    help: "Tasks waiting for a slot of the scheduler.",
    registers,
    collect() {
      if (!sources) return this.reset();
      this.set(sources.tasks.stats().waiting);
    },
  });
  new Gauge({
    name: "agentorch_tasks_running",
    help: "Tasks holding a slot of the scheduler (starting or working).",
    registers,
    collect() {
      if (!sources) return this.reset();
      this.set(sources.tasks.stats().running);
    },
  });
  new Gauge({
    name: "agentorch_messages_pending",
    help: "A2A messages stored and not yet acknowledged, over all mailboxes.",
    registers,
    collect() {
      if (!sources) return this.reset();
      const boxes = sources.mailboxStore;
      let pending = 0;
      for (const agentId of boxes.mailboxIds()) pending += boxes.state(agentId).unackedCount;
      this.set(pending);
    },
  });

  let knownCount = -1;
  let known = new Set<string>();
  const methodLabel = (method: string) => {
    const services = served();
    if (services.length !== knownCount) {
      known = new Set(services.flatMap((s) => s.methods.map((m) => `${s.typeName}/${m.name}`)));
      knownCount = services.length;
    }
    return known.has(method) ? method : "unknown";
  };

  const dockerCall: BackendCallObserver = (call) => {
    if (call.durationSeconds !== undefined) dockerDuration.observe({ operation: call.operation }, call.durationSeconds);
    if (call.errorKind !== undefined) dockerErrors.inc({ operation: call.operation, kind: call.errorKind });
    else if (call.operation === "spawn") containersStarted.inc();
  };

  const registry = Registry.merge([processMetrics(), own]);

  return {
    registry,
    rpc({ method, code, durationMs }) {
      const labels = { method: methodLabel(method), code };
      rpcTotal.inc(labels);
      rpcDuration.observe(labels, durationMs / 1000);
    },
    streams: (next) => async (req) => {
      const res = await next(req);
      if (!res.stream) return res;
      const source = res.message;
      const method = `${req.service.typeName}/${req.method.name}`;
      // Counted from the first read to the end: a stream never read was never open.
      async function* counted() {
        streamsOpen.inc({ method });
        try {
          yield* source;
        } finally {
          streamsOpen.dec({ method });
        }
      }
      return { ...res, message: counted() };
    },
    dockerCall,
    instrumentBackend: (backend) => instrumentBackend(backend, dockerCall),
    countMessages: (store) => countMessages(store, { sent: messagesSent, processed: messagesProcessed }),
    countDeliveries: (mailboxes) => countDeliveries(mailboxes, messagesDelivered),

    observe(s) {
      sources = s;
      unsubscribe.push(
        s.agents.onExit((exit) => {
          if (exit.cause !== "exited") return;
          if (exit.exitCode !== 0 || exit.oomKilled) containersFailed.inc();
          if (exit.oomKilled) containersOom.inc();
        }),
        s.bus.subscribe((event) => {
          if (event.kind !== "task") return;
          const task = event.entity as Task;
          if (event.type === "added") {
            if (task.ephemeral) agentsForked.inc();
            return;
          }
          if (event.type !== "changed" || !isTerminal(task.state)) return;
          if (task.result) taskDuration.observe({ state: task.state }, task.result.durationMs / 1000);
          if (task.state === "completed") agentsCompleted.inc();
          else if (task.state === "failed") agentsFailed.inc();
        }),
      );
    },

    unobserve() {
      for (const u of unsubscribe.splice(0)) u();
      sources = undefined;
    },

    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
