/**
 * registerRoutes serves every service of the package, health and reflection included,
 * through connect's in-memory router transport (over the real core on SQLite with a fake
 * backend); and at shutdown streaming calls end UNAVAILABLE while health's Watch reports
 * NOT_SERVING itself.
 */
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { AgentStatus } from "../../gen/agentorch/v1/agent_pb.js";
import { LifecycleService } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { AgentOrchestratorService } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.js";
import * as reflectionV1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1Alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createA2AHandlers } from "../../src/api/a2a-handlers.js";
import { createHealthServer } from "../../src/api/health.js";
import { registerRoutes } from "../../src/api/routes.js";
import { createTestLogger } from "../fakes/clock-and-logger.js";
import { cleanupWorlds, openWorld, register } from "./a2a-fixture.js";
import { connectCode } from "../support/errors.js";

afterEach(cleanupWorlds);

const ALL = [AgentOrchestratorService, LifecycleService, Health, reflectionV1.ServerReflection, reflectionV1Alpha.ServerReflection];

async function setup() {
  const world = await openWorld();
  const logger = createTestLogger();
  const health = createHealthServer({ engine: world.agents });
  const shutdown = new AbortController();
  let served: readonly unknown[] = [];
  const transport = createRouterTransport((router) => {
    const a2a = createA2AHandlers({ cards: world.cards, mailboxes: world.mailboxes, logger });
    served = registerRoutes(router, { agents: world.agents, tasks: world.tasks, a2a, health: health.impl, logger }, { shutdownSignal: shutdown.signal });
  });
  return { world, health, shutdown, served, transport };
}

/** What v1 and v1alpha reflection clients share (field for field the same). */
interface ReflectionClient {
  serverReflectionInfo(req: AsyncIterable<{ messageRequest: { case: "listServices"; value: string } }>): AsyncIterable<{
    messageResponse: { case: "listServicesResponse"; value: { service: { name: string }[] } } | { case: string | undefined };
  }>;
}

/** The service names a reflection client of either version lists. */
async function listed(client: ReflectionClient): Promise<string[]> {
  async function* one() {
    yield { messageRequest: { case: "listServices" as const, value: "" } };
  }
  for await (const res of client.serverReflectionInfo(one())) {
    if (res.messageResponse.case !== "listServicesResponse") throw new Error(`unexpected ${res.messageResponse.case}`);
    return (res.messageResponse as { value: { service: { name: string }[] } }).value.service.map((s) => s.name);
  }
  throw new Error("no reflection response");
}

describe("registerRoutes", () => {
  it("serves every service in memory, and says which it registered", async () => {
    const { world, served, transport } = await setup();
    expect(served).toEqual(ALL);

    await register(world, "r-1");
    const agents = createClient(AgentOrchestratorService, transport);
    expect((await agents.getAgent({ agentId: "r-1" })).agent?.status).toBe(AgentStatus.IDLE);

    const lifecycle = createClient(LifecycleService, transport);
    expect((await lifecycle.listTasks({})).tasks).toEqual([]);
    // The A2A handlers are merged into LifecycleService.
    await lifecycle.publishAgentCard({ card: { agentId: "r-1", name: "r one", capabilities: ["x"] } });
    expect((await lifecycle.listAgentCards({ capability: "x" })).cards.map((c) => c.agentId)).toEqual(["r-1"]);

    const health = createClient(Health, transport);
    expect((await health.check({ service: "" })).status).toBe(Serving.SERVING);
    expect((await health.check({ service: LifecycleService.typeName })).status).toBe(Serving.SERVING);

    const names = ALL.map((s) => s.typeName).sort();
    expect((await listed(createClient(reflectionV1.ServerReflection, transport))).sort()).toEqual(names);
    expect((await listed(createClient(reflectionV1Alpha.ServerReflection, transport))).sort()).toEqual(names);
  });

  it("ends streams UNAVAILABLE at shutdown; health's Watch reports NOT_SERVING before it ends", async () => {
    const { world, health, shutdown, transport } = await setup();
    await register(world, "r-2");
    const agents = createClient(AgentOrchestratorService, transport);
    const watch = agents.watchAgents({ sendInitialState: true })[Symbol.asyncIterator]();
    expect((await watch.next()).value?.event?.agent?.agentId).toBe("r-2");

    const healthClient = createClient(Health, transport);
    const healthWatch = healthClient.watch({ service: "" })[Symbol.asyncIterator]();
    expect((await healthWatch.next()).value?.status).toBe(Serving.SERVING);

    shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
    expect(await connectCode((async () => {
      for (;;) if ((await watch.next()).done) return;
    })())).toBe(Code.Unavailable);
    // Health's Watch is not cut by the shutdown signal: it tells its watchers first.
    const pending = healthWatch.next();
    health.shutdown();
    expect((await pending).value?.status).toBe(Serving.NOT_SERVING);
    expect((await healthWatch.next()).done).toBe(true);
  });
});
