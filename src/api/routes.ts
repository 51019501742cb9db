/**
 * The one place where this package's services are registered on a Connect router, so the
 * server, the in-memory test transport (createRouterTransport) and any other adapter serve
 * the same routes: the agent API, LifecycleService (tasks and A2A), health and reflection.
 */
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { AgentOrchestratorService } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { LifecycleService } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { Logger } from "../core/ports.js";
import { type AgentsApi, createOrchestratorService } from "./orchestrator-service.js";
import { createLifecycleService, type TasksApi } from "./lifecycle-service.js";
import { createReflectionServer } from "./reflection.js";
import { withStreamShutdown } from "./stream-shutdown.js";

/** The collaborators the API services need. */
export interface ApiServices {
  agents: AgentsApi;
  tasks: TasksApi;
  /** The A2A handlers merged into LifecycleService (src/api/a2a-handlers.ts); missing ones answer UNIMPLEMENTED. */
  a2a?: Partial<ServiceImpl<typeof LifecycleService>>;
  /** grpc.health.v1.Health (src/api/health.ts): the composition root keeps its shutdown switch. */
  health: ServiceImpl<typeof Health>;
  logger: Logger;
}

/** How the routes behave in a running server. */
export interface RouteOptions {
  /**
   * Fired when the server begins to shut down: every streaming method ends then, except
   * health's Watch, which ends itself after telling its watchers NOT_SERVING.
   */
  shutdownSignal?: AbortSignal;
}

/**
 * Registers every service on router. Returns the services registered, in order: what
 * reflection lists and what metrics count calls of.
 */
export function registerRoutes(router: ConnectRouter, api: ApiServices, options: RouteOptions = {}): readonly DescService[] {
  const streams = options.shutdownSignal ? withStreamShutdown(router, options.shutdownSignal) : router;
  const served: DescService[] = [];
  const reflection = createReflectionServer(() => served);
  const add = <S extends DescService>(on: ConnectRouter, service: S, impl: Partial<ServiceImpl<S>>) => {
    on.service(service, impl);
    served.push(service);
  };
  add(streams, AgentOrchestratorService, createOrchestratorService({ agents: api.agents, logger: api.logger }));
  add(streams, LifecycleService, createLifecycleService({ tasks: api.tasks, logger: api.logger, a2a: api.a2a }));
  add(router, Health, api.health);
  add(streams, ReflectionV1, reflection.v1);
  add(streams, ReflectionV1Alpha, reflection.v1alpha);
  return served;
}
