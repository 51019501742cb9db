/**
 * AgentOrchestratorService in memory: a Connect client over createRouterTransport, the
 * handlers over a fake core. What is checked is what a client observes: messages, codes,
 * error messages; and what the core was asked to do.
 */
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentStatus as AgentStatusProto, SandboxPolicy as SandboxPolicyProto } from "../../gen/agentorch/v1/agent_pb.js";
import { AgentOrchestratorService } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { toConnectError, withErrors } from "../../src/api/errors.js";
import { type AgentsApi, createOrchestratorService } from "../../src/api/orchestrator-service.js";
import type { Agent } from "../../src/core/agent.js";
import { type AgentConfigInput, validateAgentConfig } from "../../src/core/agent-config.js";
import { AgentorchError, type ErrorKind, notFound } from "../../src/core/errors.js";
import type { ContainerOutput, Logger } from "../../src/core/ports.js";
import type { WatchRequest } from "../../src/core/watch.js";
import type { WatchItem } from "../../src/core/watch.js";
import { AgentService } from "../../src/core/agent-service.js";
import { EventBus } from "../../src/core/event-bus.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { FakeBackend } from "../fakes/fake-backend.js";
import { FakeWorkspaces } from "../fakes/fake-workspaces.js";
import { ManualClock } from "../fakes/clock-and-logger.js";
import { connectError } from "../support/errors.js";

// ------------------------------------------------------------------ fakes

interface LogLine {
  level: "debug" | "info" | "warn" | "error";
  obj: Record<string, unknown>;
  msg?: string;
}

function recordingLogger(lines: LogLine[] = []): Logger & { lines: LogLine[] } {
  const at = (level: LogLine["level"]) => (obj: object, msg?: string) => {
    lines.push({ level, obj: obj as Record<string, unknown>, msg });
  };
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: () => recordingLogger(lines) };
}

type Method = keyof AgentsApi;

/** A core that keeps agents in a map, records each call, and can be told to fail. */
class FakeAgents implements AgentsApi {
  readonly agents = new Map<string, Agent>();
  readonly calls: { method: Method; args: unknown[] }[] = [];
  /** The next call of this method throws this. */
  readonly failNext = new Map<Method, unknown>();
  /** The next call of this method waits until its signal aborts. */
  readonly hangNext = new Set<Method>();
  output_: ContainerOutput = { data: new Uint8Array(), truncated: false };
  revision = 7;
  stopped: string[] = [];

  private async enter(method: Method, args: unknown[], signal?: AbortSignal): Promise<void> {
    this.enterSync(method, args);
    if (this.hangNext.delete(method)) {
      await new Promise<void>((_, reject) => {
        if (signal === undefined) return reject(new Error("no signal was passed"));
        signal.addEventListener("abort", () => reject(new AgentorchError("canceled", "aborted by the call's signal")), { once: true });
      });
    }
  }

  private enterSync(method: Method, args: unknown[]): void {
    this.calls.push({ method, args });
    const err = this.failNext.get(method);
    if (err !== undefined) {
      this.failNext.delete(method);
      throw err;
    }
  }

  private must(agentId: string): Agent {
    const a = this.agents.get(agentId);
    if (a === undefined) throw notFound(`agent "${agentId}" not found`, { agentId });
    return a;
  }

  async register(input: AgentConfigInput, signal?: AbortSignal): Promise<Agent> {
    await this.enter("register", [input, signal], signal);
    const agent = makeAgent({ config: validateAgentConfig(input) });
    this.agents.set(agent.config.agentId, agent);
    return agent;
  }
  get(agentId: string): Agent {
    this.enterSync("get", [agentId]);
    return this.must(agentId);
  }
  list(input: Parameters<AgentsApi["list"]>[0]): ReturnType<AgentsApi["list"]> {
    this.enterSync("list", [input]);
    const agents = [...this.agents.values()].filter((a) => input.status === undefined || a.status === input.status);
    return { agents, nextPageToken: "next-token", revision: this.revision };
  }
  async start(agentId: string, signal?: AbortSignal): Promise<Agent> {
    await this.enter("start", [agentId, signal], signal);
    const a: Agent = { ...this.must(agentId), status: "running", containerId: "c-1", startedAt: 2000, lastActivity: 2000, executionCount: 1 };
    this.agents.set(agentId, a);
    return a;
  }
  async stop(agentId: string, signal?: AbortSignal): Promise<Agent> {
    await this.enter("stop", [agentId, signal], signal);
    const a: Agent = { ...this.must(agentId), status: "idle", statusReason: "stopped" };
    this.agents.set(agentId, a);
    return a;
  }
  async remove(agentId: string, opts: { deleteWorkspace: boolean }, signal?: AbortSignal): Promise<{ recordPending: boolean }> {
    await this.enter("remove", [agentId, opts, signal], signal);
    this.must(agentId);
    this.agents.delete(agentId);
    return { recordPending: false };
  }
  async output(agentId: string, maxBytes: number, signal?: AbortSignal): Promise<ContainerOutput> {
    await this.enter("output", [agentId, maxBytes, signal], signal);
    this.must(agentId);
    return this.output_;
  }
  async enforceLifecycle(signal?: AbortSignal): Promise<string[]> {
    await this.enter("enforceLifecycle", [signal], signal);
    return this.stopped;
  }

  /** Watch items to stream, then the stream waits for the signal. */
  watchItems: WatchItem<Agent>[] = [];

  async *watch(req: WatchRequest): AsyncGenerator<WatchItem<Agent>> {
    this.enterSync("watch", [req]);
    yield* this.watchItems;
  }

  async *streamOutput(agentId: string, tailBytes: number, follow: boolean): AsyncGenerator<Uint8Array> {
    this.enterSync("streamOutput", [agentId, tailBytes, follow]);
    this.must(agentId);
    yield this.output_.data;
  }

  async touch(agentId: string): Promise<Agent> {
    this.enterSync("touch", [agentId]);
    const a = { ...this.must(agentId), lastActivity: 5000 };
    this.agents.set(agentId, a);
    return a;
  }
}

function makeAgent(over: Partial<Agent> = {}): Agent {
  return {
    config: validateAgentConfig({ agentId: "a-1", image: "agentorch/busybox:test" }),
    status: "idle",
    statusReason: "",
    containerId: "",
    workspacePath: "/data/ws/a-1",
    createdAt: 1000,
    restartCount: 0,
    executionCount: 0,
    crashRestarts: 0,
    tokenHash: "",
    ephemeral: false,
    ...over,
  };
}

function setup() {
  const agents = new FakeAgents();
  const logger = recordingLogger();
  const transport = createRouterTransport((router) => router.service(AgentOrchestratorService, createOrchestratorService({ agents, logger })));
  return { agents, logger, client: createClient(AgentOrchestratorService, transport) };
}

// ------------------------------------------------------------------ happy paths

describe("AgentOrchestratorService (in memory)", () => {
  let t: ReturnType<typeof setup>;
  beforeEach(() => {
    t = setup();
  });

  it("RegisterAgent hands the core the mapped config and returns the stored agent", async () => {
    const res = await t.client.registerAgent({
      agent: {
        agentId: "reg-1",
        image: "agentorch/busybox:test",
        command: ["sh", "-c", "echo hi"],
        env: { FOO: "bar" },
        policy: SandboxPolicyProto.CONTAINER_DIRECT,
        resources: { memoryBytes: 64n * 1024n * 1024n },
        lifecycle: { maxIdle: { seconds: 30n }, maxRestarts: 0 },
      },
    });
    const input = t.agents.calls[0]!.args[0] as AgentConfigInput;
    expect(input).toMatchObject({ agentId: "reg-1", command: ["sh", "-c", "echo hi"], env: { FOO: "bar" }, policy: "container_direct" });
    expect(input.resources?.memoryBytes).toBe(64 * 1024 * 1024);
    expect(input.lifecycle).toMatchObject({ maxIdleMs: 30_000, maxRestarts: 0, maxLifetimeMs: undefined });
    const a = res.agent!;
    expect(a.agentId).toBe("reg-1");
    expect(a.status).toBe(AgentStatusProto.IDLE);
    expect(a.config?.policy).toBe(SandboxPolicyProto.CONTAINER_DIRECT);
    expect(durationMs(a.config!.lifecycle!.maxIdle!)).toBe(30_000);
    expect(a.config?.lifecycle?.maxRestarts).toBe(0);
    expect(timestampMs(a.createdAt!)).toBe(1000);
  });

  it("GetAgent returns the agent", async () => {
    t.agents.agents.set("a-1", makeAgent({ status: "failed", statusReason: "exited with code 3", exitCode: 3 }));
    const { agent } = await t.client.getAgent({ agentId: "a-1" });
    expect(agent?.status).toBe(AgentStatusProto.FAILED);
    expect(agent?.statusReason).toBe("exited with code 3");
    expect(agent?.exitCode).toBe(3);
    expect(t.agents.calls).toEqual([{ method: "get", args: ["a-1"] }]);
  });

  it("ListAgents passes page size, token and status filter; returns the token and revision", async () => {
    t.agents.agents.set("a-1", makeAgent());
    t.agents.agents.set("a-2", makeAgent({ config: { ...makeAgent().config, agentId: "a-2" }, status: "running" }));
    const res = await t.client.listAgents({ pageSize: 5, pageToken: "tok", status: AgentStatusProto.RUNNING });
    expect(t.agents.calls[0]!.args[0]).toEqual({ pageSize: 5, pageToken: "tok", status: "running" });
    expect(res.agents.map((a) => a.agentId)).toEqual(["a-2"]);
    expect(res.nextPageToken).toBe("next-token");
    expect(res.revision).toBe(7n);
  });

  it("ListAgents with no filter asks for every status", async () => {
    t.agents.agents.set("a-1", makeAgent());
    const res = await t.client.listAgents({});
    expect(t.agents.calls[0]!.args[0]).toEqual({ pageSize: 0, pageToken: "", status: undefined });
    expect(res.agents).toHaveLength(1);
  });

  it("StartAgent and StopAgent return the agent in its new state", async () => {
    t.agents.agents.set("a-1", makeAgent());
    const started = (await t.client.startAgent({ agentId: "a-1" })).agent!;
    expect(started.status).toBe(AgentStatusProto.RUNNING);
    expect(started.containerId).toBe("c-1");
    expect(timestampMs(started.startedAt!)).toBe(2000);
    const stopped = (await t.client.stopAgent({ agentId: "a-1" })).agent!;
    expect(stopped.status).toBe(AgentStatusProto.IDLE);
    expect(stopped.statusReason).toBe("stopped");
  });

  it("RemoveAgent passes delete_workspace", async () => {
    t.agents.agents.set("a-1", makeAgent());
    await t.client.removeAgent({ agentId: "a-1", deleteWorkspace: true });
    expect(t.agents.calls[0]!.method).toBe("remove");
    expect(t.agents.calls[0]!.args.slice(0, 2)).toEqual(["a-1", { deleteWorkspace: true }]);
    expect(t.agents.agents.has("a-1")).toBe(false);
  });

  it("GetAgentOutput decodes UTF-8, replacing invalid bytes, and passes max_bytes", async () => {
    t.agents.agents.set("a-1", makeAgent());
    // "héllo" then a lone continuation byte and a truncated 3-byte sequence (a tail cut mid-character).
    const bytes = new Uint8Array([...new TextEncoder().encode("héllo\n"), 0x80, 0x41, 0xe2, 0x82]);
    t.agents.output_ = { data: bytes, truncated: true };
    const res = await t.client.getAgentOutput({ agentId: "a-1", maxBytes: 4096n });
    expect(res.output).toBe("héllo\n\uFFFDA\uFFFD");
    expect(res.truncated).toBe(true);
    expect(t.agents.calls[0]!.args.slice(0, 2)).toEqual(["a-1", 4096]);
  });

  it("EnforceLifecycle returns the ids the core stopped", async () => {
    t.agents.stopped = ["a-1", "b-2"];
    const res = await t.client.enforceLifecycle({});
    expect(res.stoppedAgentIds).toEqual(["a-1", "b-2"]);
  });

  it("passes the call's signal to every core call that takes one", async () => {
    t.agents.agents.set("a-1", makeAgent());
    await t.client.registerAgent({ agent: { agentId: "sig-1", image: "agentorch/busybox:test" } });
    await t.client.startAgent({ agentId: "a-1" });
    await t.client.stopAgent({ agentId: "a-1" });
    await t.client.getAgentOutput({ agentId: "a-1" });
    await t.client.enforceLifecycle({});
    await t.client.removeAgent({ agentId: "a-1" });
    for (const call of t.agents.calls) {
      expect(call.args.at(-1), call.method).toBeInstanceOf(AbortSignal);
    }
    expect(t.agents.calls.map((c) => c.method)).toEqual(["register", "start", "stop", "output", "enforceLifecycle", "remove"]);
  });

  it("aborts the core's work when the client cancels the call", async () => {
    t.agents.agents.set("a-1", makeAgent());
    t.agents.hangNext.add("start");
    const ac = new AbortController();
    const call = t.client.startAgent({ agentId: "a-1" }, { signal: ac.signal });
    await waitUntil(() => t.agents.calls.length === 1);
    ac.abort();
    const err = await connectError(call);
    expect(err.code).toBe(Code.Canceled);
    const coreSignal = t.agents.calls[0]!.args.at(-1) as AbortSignal;
    expect(coreSignal.aborted).toBe(true);
  });

  it("aborts the core's work when the call's deadline passes", async () => {
    t.agents.agents.set("a-1", makeAgent());
    t.agents.hangNext.add("stop");
    const err = await connectError(t.client.stopAgent({ agentId: "a-1" }, { timeoutMs: 50 }));
    expect(err.code).toBe(Code.DeadlineExceeded);
    await waitUntil(() => (t.agents.calls[0]!.args.at(-1) as AbortSignal).aborted);
  });
});

// ------------------------------------------------------------------ errors

describe("error mapping over the wire", () => {
  const cases: [ErrorKind, Code][] = [
    ["invalid_argument", Code.InvalidArgument],
    ["not_found", Code.NotFound],
    ["already_exists", Code.AlreadyExists],
    ["failed_precondition", Code.FailedPrecondition],
    ["unavailable", Code.Unavailable],
    ["resource_exhausted", Code.ResourceExhausted],
    ["unauthenticated", Code.Unauthenticated],
    ["permission_denied", Code.PermissionDenied],
    ["out_of_range", Code.OutOfRange],
    ["deadline_exceeded", Code.DeadlineExceeded],
    ["canceled", Code.Canceled],
  ];

  it.each(cases)("%s surfaces as %s with its message, logged at debug", async (kind, code) => {
    const t = setup();
    t.agents.agents.set("a-1", makeAgent());
    t.agents.failNext.set("start", new AgentorchError(kind, `cannot start: ${kind} happened`, { agentId: "a-1" }));
    const err = await connectError(t.client.startAgent({ agentId: "a-1" }));
    expect(err.code).toBe(code);
    expect(err.rawMessage).toBe(`cannot start: ${kind} happened`);
    expect(t.logger.lines.filter((l) => l.level === "error")).toEqual([]);
    expect(t.logger.lines.some((l) => l.level === "debug" && l.obj.kind === kind && l.obj.agentId === "a-1")).toBe(true);
  });

  it.each(["register", "get", "list", "start", "stop", "remove", "output", "enforceLifecycle"] as const)(
    "an error thrown by core.%s reaches the client with its code",
    async (method) => {
      const t = setup();
      t.agents.agents.set("a-1", makeAgent());
      t.agents.failNext.set(method, new AgentorchError("unavailable", `engine down in ${method}`));
      const calls: Record<typeof method, () => Promise<unknown>> = {
        register: () => t.client.registerAgent({ agent: { agentId: "x", image: "i" } }),
        get: () => t.client.getAgent({ agentId: "a-1" }),
        list: () => t.client.listAgents({}),
        start: () => t.client.startAgent({ agentId: "a-1" }),
        stop: () => t.client.stopAgent({ agentId: "a-1" }),
        remove: () => t.client.removeAgent({ agentId: "a-1" }),
        output: () => t.client.getAgentOutput({ agentId: "a-1" }),
        enforceLifecycle: () => t.client.enforceLifecycle({}),
      };
      const err = await connectError(calls[method]());
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toBe(`engine down in ${method}`);
    },
  );

  it("an unexpected error is INTERNAL with its message hidden and the cause logged under the same id", async () => {
    const t = setup();
    t.agents.failNext.set("get", new Error("SQLITE_CORRUPT at /secret/data/agentorch.db"));
    const err = await connectError(t.client.getAgent({ agentId: "a-1" }));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).not.toContain("SQLITE");
    expect(err.rawMessage).not.toContain("/secret");
    const id = /^internal error \(id ([0-9a-f]{8})\)$/.exec(err.rawMessage)?.[1];
    expect(id).toBeDefined();
    const logged = t.logger.lines.filter((l) => l.level === "error");
    expect(logged).toHaveLength(1);
    expect(logged[0]!.obj.errorId).toBe(id);
    expect((logged[0]!.obj.err as Error).message).toContain("SQLITE_CORRUPT");
  });

  it("an AgentorchError of kind internal is hidden too", async () => {
    const t = setup();
    t.agents.failNext.set("list", new AgentorchError("internal", "store invariant broken: row 17"));
    const err = await connectError(t.client.listAgents({}));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toMatch(/^internal error \(id [0-9a-f]{8}\)$/);
    expect(t.logger.lines.filter((l) => l.level === "error")).toHaveLength(1);
  });

  it("a thrown non-Error value is INTERNAL", async () => {
    const t = setup();
    t.agents.failNext.set("enforceLifecycle", "just a string");
    const err = await connectError(t.client.enforceLifecycle({}));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).not.toContain("just a string");
  });

  it("a ConnectError passes through unchanged", async () => {
    const t = setup();
    t.agents.failNext.set("get", new ConnectError("try again later", Code.Aborted));
    const err = await connectError(t.client.getAgent({ agentId: "a-1" }));
    expect(err.code).toBe(Code.Aborted);
    expect(err.rawMessage).toBe("try again later");
  });

  it("an AbortError from the core is CANCELED", async () => {
    const t = setup();
    t.agents.failNext.set("stop", new DOMException("This operation was aborted", "AbortError"));
    const err = await connectError(t.client.stopAgent({ agentId: "a-1" }));
    expect(err.code).toBe(Code.Canceled);
  });

  it("a missing agent config is INVALID_ARGUMENT and the core is not called", async () => {
    const t = setup();
    const err = await connectError(t.client.registerAgent({}));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("agent is required");
    expect(t.agents.calls).toEqual([]);
  });

  it("an invalid config is INVALID_ARGUMENT naming the field (refused by the core)", async () => {
    const t = setup();
    const err = await connectError(t.client.registerAgent({ agent: { agentId: "x", image: "i", env: { LD_PRELOAD: "/evil.so" } } }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("LD_PRELOAD");
  });

  it("an out-of-range int64 in the config is INVALID_ARGUMENT naming the field", async () => {
    const t = setup();
    const err = await connectError(t.client.registerAgent({ agent: { agentId: "x", image: "i", resources: { pidsLimit: 2n ** 60n } } }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("resources.pids_limit");
    expect(t.agents.calls).toEqual([]);
  });

  it("a negative page_size is INVALID_ARGUMENT", async () => {
    const t = setup();
    const err = await connectError(t.client.listAgents({ pageSize: -1 }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("page_size");
    expect(t.agents.calls).toEqual([]);
  });

  it("an unknown status filter is INVALID_ARGUMENT", async () => {
    const t = setup();
    const err = await connectError(t.client.listAgents({ status: 42 as AgentStatusProto }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("status");
  });

  it.each([-1n, 2n ** 53n])("max_bytes %s is INVALID_ARGUMENT", async (maxBytes) => {
    const t = setup();
    const err = await connectError(t.client.getAgentOutput({ agentId: "a-1", maxBytes }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("max_bytes");
    expect(t.agents.calls).toEqual([]);
  });
});

describe("withErrors on a server stream", () => {
  it("converts an error thrown mid-stream, after messages were sent", async () => {
    const logger = recordingLogger();
    const impl = withErrors(
      Health,
      {
        check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
        async *watch() {
          yield { status: HealthCheckResponse_ServingStatus.SERVING };
          throw new Error("secret detail");
        },
        list: () => {
          throw notFound("nothing to list");
        },
      },
      logger,
    );
    const client = createClient(Health, createRouterTransport((router) => router.service(Health, impl)));
    const got: HealthCheckResponse_ServingStatus[] = [];
    const err = await connectError(
      (async () => {
        for await (const res of client.watch({})) got.push(res.status);
      })(),
    );
    expect(got).toEqual([HealthCheckResponse_ServingStatus.SERVING]);
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).not.toContain("secret");
    expect((await client.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    // A synchronous throw from a unary handler is converted too.
    const listErr = await connectError(client.list({}));
    expect(listErr.code).toBe(Code.NotFound);
    expect(listErr.rawMessage).toBe("nothing to list");
  });
});

describe("toConnectError", () => {
  it("gives a fresh id to each unexpected error", () => {
    const logger = recordingLogger();
    const a = toConnectError(new Error("x"), logger).rawMessage;
    const b = toConnectError(new Error("x"), logger).rawMessage;
    expect(a).not.toBe(b);
  });
});

// ------------------------------------------------------------------ over the real core

describe("over the real AgentService (SQLite in memory, fake backend)", () => {
  const services: AgentService[] = [];
  afterEach(async () => {
    for (const svc of services.splice(0)) await svc.close();
  });

  async function realSetup() {
    const logger = recordingLogger();
    const store = openSqliteStore({ path: ":memory:", logger });
    const backend = new FakeBackend();
    const core = new AgentService({
      store,
      backend,
      workspaces: new FakeWorkspaces(),
      clock: new ManualClock(),
      logger,
      bus: new EventBus(),
      config: { instanceId: "api-test", maxRunning: 100, imageAllowlist: [], enforceIntervalMs: 0 },
    });
    await core.open();
    services.push(core);
    const transport = createRouterTransport((router) => router.service(AgentOrchestratorService, createOrchestratorService({ agents: core, logger })));
    return { backend, logger, client: createClient(AgentOrchestratorService, transport) };
  }

  const agent = (agentId: string) => ({ agentId, image: "busybox:test", command: ["sh", "-c", "sleep 3600"] });

  it("drives a whole lifecycle with the codes and states a client sees", async () => {
    const { client, backend } = await realSetup();
    const reg = (await client.registerAgent({ agent: agent("life-1") })).agent!;
    expect(reg.status).toBe(AgentStatusProto.IDLE);
    expect(reg.config?.lifecycle?.maxRestarts).toBe(3);
    expect((await client.getAgent({ agentId: "life-1" })).agent?.status).toBe(AgentStatusProto.IDLE);
    const listed = await client.listAgents({});
    expect(listed.agents.map((a) => a.agentId)).toEqual(["life-1"]);
    expect(listed.revision).toBeGreaterThan(0n);

    const started = (await client.startAgent({ agentId: "life-1" })).agent!;
    expect(started.status).toBe(AgentStatusProto.RUNNING);
    expect(started.containerId).not.toBe("");
    expect(started.executionCount).toBe(1);
    expect(started.startedAt).toBeDefined();

    const again = await connectError(client.startAgent({ agentId: "life-1" }));
    expect(again.code).toBe(Code.FailedPrecondition);
    expect(again.rawMessage).toContain("invalid state");

    backend.write(started.containerId, "hello\n");
    const out = await client.getAgentOutput({ agentId: "life-1" });
    expect(out.output).toBe("hello\n");

    const stopped = (await client.stopAgent({ agentId: "life-1" })).agent!;
    expect(stopped.status).toBe(AgentStatusProto.IDLE);
    const stopAgain = await connectError(client.stopAgent({ agentId: "life-1" }));
    expect(stopAgain.code).toBe(Code.FailedPrecondition);
    expect(stopAgain.rawMessage).toContain("invalid state");

    const restarted = (await client.startAgent({ agentId: "life-1" })).agent!;
    expect(restarted.restartCount).toBe(1);

    await client.removeAgent({ agentId: "life-1" });
    expect(backend.running()).toEqual([]);
    expect((await connectError(client.getAgent({ agentId: "life-1" }))).code).toBe(Code.NotFound);
    expect((await connectError(client.removeAgent({ agentId: "life-1" }))).code).toBe(Code.NotFound);
  });

  it("answers ALREADY_EXISTS, INVALID_ARGUMENT and NOT_FOUND as the core decides", async () => {
    const { client } = await realSetup();
    await client.registerAgent({ agent: agent("dup-1") });
    expect((await connectError(client.registerAgent({ agent: agent("dup-1") }))).code).toBe(Code.AlreadyExists);
    for (const id of ["", "a".repeat(65), "..", "a/b", "a\\b", "a_b", "a b", "a@b"]) {
      expect((await connectError(client.registerAgent({ agent: agent(id) }))).code, id).toBe(Code.InvalidArgument);
      expect((await connectError(client.getAgent({ agentId: id }))).code, id).toBe(Code.InvalidArgument);
    }
    const reserved = await connectError(client.registerAgent({ agent: { ...agent("env-1"), env: { AGENTORCH_TOKEN: "x" } } }));
    expect(reserved.code).toBe(Code.InvalidArgument);
    expect(reserved.rawMessage).toContain("AGENTORCH_TOKEN");
    expect((await connectError(client.startAgent({ agentId: "nobody" }))).code).toBe(Code.NotFound);
    const never = await connectError(client.getAgentOutput({ agentId: "dup-1" }));
    expect(never.code).toBe(Code.FailedPrecondition);
  });

  it("pages ListAgents and refuses a bad token or page size", async () => {
    const { client } = await realSetup();
    for (const id of ["p-1", "p-2", "p-3"]) await client.registerAgent({ agent: agent(id) });
    const first = await client.listAgents({ pageSize: 2 });
    expect(first.agents.map((a) => a.agentId)).toEqual(["p-1", "p-2"]);
    expect(first.nextPageToken).not.toBe("");
    const second = await client.listAgents({ pageSize: 2, pageToken: first.nextPageToken });
    expect(second.agents.map((a) => a.agentId)).toEqual(["p-3"]);
    expect(second.nextPageToken).toBe("");
    expect((await connectError(client.listAgents({ pageToken: "garbage" }))).code).toBe(Code.InvalidArgument);
    expect((await connectError(client.listAgents({ pageSize: 1001 }))).code).toBe(Code.InvalidArgument);
    await client.startAgent({ agentId: "p-2" });
    const running = await client.listAgents({ status: AgentStatusProto.RUNNING });
    expect(running.agents.map((a) => a.agentId)).toEqual(["p-2"]);
  });

  it("answers UNAVAILABLE while the engine is down and FAILED_PRECONDITION for a missing image", async () => {
    const { client, backend } = await realSetup();
    await client.registerAgent({ agent: agent("eng-1") });
    await client.registerAgent({ agent: { ...agent("img-1"), image: "no/such:image" } });
    const missing = await connectError(client.startAgent({ agentId: "img-1" }));
    expect(missing.code).toBe(Code.FailedPrecondition);
    expect(missing.rawMessage).toContain("no/such:image");
    backend.setDown(true);
    const down = await connectError(client.startAgent({ agentId: "eng-1" }));
    expect(down.code).toBe(Code.Unavailable);
    // A failed start leaves the agent where it was.
    backend.setDown(false);
    expect((await client.getAgent({ agentId: "eng-1" })).agent?.status).toBe(AgentStatusProto.IDLE);
  });
});

async function waitUntil(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}
