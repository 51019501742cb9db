/**
 * The one place where this package's services are registered on a Connect router, so the
 * server, the in-memory test transport and any other adapter serve the same routes.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import { AgentOrchestratorService } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import type { Logger } from "../core/ports.js";
import { type AgentsApi, createOrchestratorService } from "./orchestrator-service.js";

/** The collaborators the API services need. */
export interface ApiServices {
  agents: AgentsApi;
  logger: Logger;
}

/** Registers AgentOrchestratorService (health and reflection are the server's to add). */
export function registerRoutes(router: ConnectRouter, services: ApiServices): ConnectRouter {
  return router.service(AgentOrchestratorService, createOrchestratorService(services));
}
