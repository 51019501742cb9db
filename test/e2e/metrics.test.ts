/**
 * Metrics and trace context end to end: the real server on a free port, the real Docker
 * engine, a gRPC client. After a known sequence of calls, GET /metrics (as a scraper
 * fetches it, no token) shows exactly the increments those calls make, and the whole body
 * parses as Prometheus text (test/support/prometheus-text.ts, a strict reader that shares
 * no code with prom-client). A SubmitTask carrying a W3C traceparent runs a container that
 * sees it, and the call's log line carries its trace id.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { LifecycleService } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { AgentOrchestratorService } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { type Task, TaskState } from "../../gen/agentorch/v1/task_pb.js";
import { describeDocker, removeContainersOf, TEST_IMAGE } from "../support/docker.js";
import { type Family, parsePrometheusText, sampleValue } from "../support/prometheus-text.js";
import { agentSocketPath } from "../../src/server/config.js";
import { startTestServer } from "../support/server.js";
import type { TestServer } from "../support/server.js";

const ORCH = "agentorch.v1.AgentOrchestratorService";
const LIFE = "agentorch.v1.LifecycleService";

let server: TestServer;
let separate: TestServer;
let agents: Client<typeof AgentOrchestratorService>;
let lifecycle: Client<typeof LifecycleService>;
const run = randomBytes(3).toString("hex");

async function scrape(baseUrl = server.url): Promise<{ families: Map<string, Family>; contentType: string; status: number }> {
  const res = await fetch(`${baseUrl}/metrics`);
  const body = await res.text();
  return { families: res.ok ? parsePrometheusText(body) : new Map(), contentType: res.headers.get("content-type") ?? "", status: res.status };
}

async function untilFinished(taskId: string): Promise<Task> {
  return vi.waitFor(
    async () => {
      const { task } = await lifecycle.getTask({ taskId });
      if (![TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED].includes(task!.state)) {
        throw new Error(`task is ${TaskState[task!.state]}`);
      }
      return task!;
    },
    { timeout: 20_000, interval: 100 },
  );
}

function template(script: string) {
  return { case: "template" as const, value: { image: TEST_IMAGE, command: ["sh", "-c", script] } };
}

describeDocker("metrics and trace context", () => {
  beforeAll(async () => {
    server = await startTestServer();
    const transport = createGrpcTransport({ baseUrl: server.url });
    agents = createClient(AgentOrchestratorService, transport);
    lifecycle = createClient(LifecycleService, transport);
  });

  afterAll(async () => {
    const instances = [server, separate].filter((s) => s !== undefined).map((s) => s.app.instanceId);
    await Promise.all([server?.stop(), separate?.stop()]);
    await Promise.all(instances.map((id) => removeContainersOf(id)));
  });

  it("after a known sequence of calls, /metrics shows their counts and parses as Prometheus text", async () => {
    const before = (await scrape()).families;
    const a = `m-a-${run}`;
    const b = `m-b-${run}`;
    for (const agentId of [a, b]) await agents.registerAgent({ agent: { agentId, image: TEST_IMAGE } });
    await expect(agents.getAgent({ agentId: `m-missing-${run}` })).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.NotFound);
    await lifecycle.sendMessage({ message: { fromAgentId: a, toAgentId: b, kind: { case: "statusUpdate", value: { taskId: "job", progress: 5 } } } });
    const { task } = await lifecycle.submitTask({ directive: { goal: "say ok" }, target: template("echo ok") });
    const done = await untilFinished(task!.taskId);
    expect(done.state).toBe(TaskState.COMPLETED);
    expect(done.result?.output).toBe("ok\n");

    const { families: after, contentType, status } = await scrape();
    expect(status).toBe(200);
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const delta = (name: string, labels: Record<string, string> = {}) => sampleValue(after, name, labels) - sampleValue(before, name, labels);

    expect(delta("agentorch_rpc_requests_total", { method: `${ORCH}/GetAgent`, code: "not_found" })).toBe(1);
    expect(delta("agentorch_rpc_requests_total", { method: `${ORCH}/RegisterAgent`, code: "ok" })).toBe(2);
    expect(delta("agentorch_rpc_requests_total", { method: `${LIFE}/SubmitTask`, code: "ok" })).toBe(1);
    expect(delta("agentorch_rpc_duration_seconds_count", { method: `${ORCH}/GetAgent`, code: "not_found" })).toBe(1);
    expect(sampleValue(after, "agentorch_agents", { status: "idle" })).toBeGreaterThanOrEqual(2);
    expect(delta("agentorch_tasks", { state: "completed" })).toBe(1);
    expect(delta("agentorch_task_duration_seconds_count", { state: "completed" })).toBe(1);
    expect(delta("agentorch_agents_forked_total")).toBe(1);
    expect(delta("agentorch_agents_completed_total")).toBe(1);
    expect(delta("agentorch_messages_sent_total")).toBe(1);
    expect(sampleValue(after, "agentorch_messages_pending")).toBe(1);
    expect(delta("agentorch_containers_started_total")).toBe(1);
    expect(delta("agentorch_containers_failed_total")).toBe(0);
    expect(delta("agentorch_docker_call_duration_seconds_count", { operation: "spawn" })).toBe(1);
    expect(sampleValue(after, "agentorch_docker_call_duration_seconds_count", { operation: "remove" })).toBeGreaterThan(0);
    expect(sampleValue(after, "agentorch_tasks_queued")).toBe(0);
    expect(sampleValue(after, "agentorch_tasks_running")).toBe(0);
    // The Node process metrics come along, under the same prefix.
    expect(after.get("agentorch_process_cpu_user_seconds_total")?.type).toBe("counter");
    expect([...after.keys()].every((name) => name.startsWith("agentorch_"))).toBe(true);

    // Reading the mailbox: a delivery, an open stream while it lasts; acknowledging: processed.
    const reading = new AbortController();
    const stream = lifecycle.streamMessages({ agentId: b }, { signal: reading.signal })[Symbol.asyncIterator]();
    const first = await stream.next();
    expect(first.value?.message?.fromAgentId).toBe(a);
    const open = (await scrape()).families;
    expect(sampleValue(open, "agentorch_watch_streams_open", { method: `${LIFE}/StreamMessages` })).toBe(1);
    expect(sampleValue(open, "agentorch_messages_delivered_total") - sampleValue(before, "agentorch_messages_delivered_total")).toBe(1);
    reading.abort();
    await stream.next().catch(() => undefined);
    await lifecycle.ackMessages({ agentId: b, upToSequence: 1n });
    await vi.waitFor(async () => {
      const now = (await scrape()).families;
      expect(sampleValue(now, "agentorch_watch_streams_open", { method: `${LIFE}/StreamMessages` })).toBe(0);
      expect(sampleValue(now, "agentorch_messages_processed_total") - sampleValue(before, "agentorch_messages_processed_total")).toBe(1);
      expect(sampleValue(now, "agentorch_messages_pending")).toBe(0);
      expect(sampleValue(now, "agentorch_rpc_requests_total", { method: `${LIFE}/StreamMessages`, code: "canceled" })).toBe(1);
    });
  });

  it("counts calls to methods that are not served as method \"unknown\", whatever their path", async () => {
    const before = (await scrape()).families;
    for (const name of ["Nope", "Other"]) {
      const res = await fetch(`${server.url}/agentorch.v1.NoSuchService/${name}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(res.status).toBe(404);
      await res.text();
    }
    await vi.waitFor(async () => {
      const after = (await scrape()).families;
      const unknown = (f: Map<string, Family>) => sampleValue(f, "agentorch_rpc_requests_total", { method: "unknown", code: "unimplemented" });
      expect(unknown(after) - unknown(before)).toBe(2);
      expect(after.get("agentorch_rpc_requests_total")!.samples.some((s) => s.labels.method!.includes("NoSuchService"))).toBe(false);
    });
  });

  it("passes a SubmitTask's traceparent to its container and logs the call's trace id", async () => {
    const traceId = randomBytes(16).toString("hex");
    const spanId = randomBytes(8).toString("hex");
    const traceparent = `00-${traceId}-${spanId}-01`;
    const script = 'echo "tp=$AGENTORCH_TRACEPARENT"';
    const { task } = await lifecycle.submitTask({ directive: { goal: "trace" }, target: template(script) }, { headers: { traceparent } });
    const done = await untilFinished(task!.taskId);
    expect(done.state).toBe(TaskState.COMPLETED);
    expect(done.result?.output).toBe(`tp=${traceparent}\n`);
    const line = server.logs.find((l) => l.msg === "rpc" && l.method === `${LIFE}/SubmitTask` && l.trace_id === traceId);
    expect(line).toMatchObject({ trace_id: traceId, span_id: spanId, code: "ok" });

    // An invalid header (uppercase hex) is ignored: nothing reaches the container or the log.
    const bad = `00-${traceId.toUpperCase()}-${spanId}-01`;
    const { task: other } = await lifecycle.submitTask({ directive: { goal: "trace" }, target: template(script) }, { headers: { traceparent: bad } });
    const otherDone = await untilFinished(other!.taskId);
    expect(otherDone.result?.output).toBe("tp=\n");
    const submits = server.logs.filter((l) => l.msg === "rpc" && l.method === `${LIFE}/SubmitTask`);
    expect(submits.filter((l) => l.trace_id !== undefined)).toHaveLength(1);
  });

  it("does not serve /metrics to containers, on the agent socket", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.get({ socketPath: agentSocketPath(server.dataDir), path: "/metrics" }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
    });
    expect(status).toBe(404);
    expect((await scrape()).status).toBe(200);
  });

  it("serves /metrics on its own port when AGENTORCH_METRICS_LISTEN is set, and then not on the service port", async () => {
    separate = await startTestServer({ env: { AGENTORCH_METRICS_LISTEN: "127.0.0.1:0" } });
    const addr = separate.app.metricsAddress();
    expect(addr).toBeDefined();
    const own = await scrape(`http://127.0.0.1:${addr!.port}`);
    expect(own.status).toBe(200);
    expect(own.families.get("agentorch_rpc_requests_total")?.type).toBe("counter");
    expect((await scrape(separate.url)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${addr!.port}/other`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${addr!.port}/metrics`, { method: "POST" })).status).toBe(405);
    const head = await fetch(`http://127.0.0.1:${addr!.port}/metrics`, { method: "HEAD" });
    expect([head.status, await head.text()]).toEqual([200, ""]);
    // The service port still answers RPCs and health as before.
    expect((await fetch(`${separate.url}/healthz`)).status).toBe(200);
  });
});
