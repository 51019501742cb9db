/**
 * THE permission table: every RPC of AgentOrchestratorService and LifecycleService, by full
 * method name, with what an operator's role needs to call it and whether (and as whom) an
 * agent may call it over its socket. A method missing here is refused to everyone (a unit
 * test checks that every method of the generated service descriptors is listed, so a new
 * RPC cannot be open by accident). Health and reflection are the only services open to all.
 */
import type {
  AckMessagesRequest,
  PublishAgentCardRequest,
  SendAndWaitRequest,
  SendMessageRequest,
  StreamMessagesRequest,
} from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import type { GetAgentRequest, ReportActivityRequest } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import type { Role } from "../core/auth.js";

/**
 * What an operator needs: read (get, list, watch, stream), operate (change agents, tasks,
 * cards, messages) or admin (change the service's own settings).
 */
export type Permission = "read" | "operate" | "admin";

/** Which permissions each role has: admin everything, operator all but admin, viewer reads. */
export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
  admin: ["read", "operate", "admin"],
  operator: ["read", "operate"],
  viewer: ["read"],
};

/**
 * How an agent (over its socket, with its own token) may call a method: "any" for reads that
 * are not about one agent (cards); "own" when the request names an agent, which must be the
 * caller itself. No `agent` entry: agents may not call it.
 */
export type AgentAccess =
  | { kind: "any" }
  | {
      kind: "own";
      /** The request field (proto name) that must be the caller's id, for messages. */
      field: string;
      pick: (request: unknown) => string | undefined;
    };

export interface MethodRule {
  permission: Permission;
  agent?: AgentAccess;
}

/** An "own" rule over a typed request. */
function own<M>(field: string, pick: (request: M) => string | undefined): AgentAccess {
  return { kind: "own", field, pick: pick as (request: unknown) => string | undefined };
}

const ANY: AgentAccess = { kind: "any" };
const ORCH = "agentorch.v1.AgentOrchestratorService";
const LIFE = "agentorch.v1.LifecycleService";

/** Full method name ("package.Service/Method") -> rule. */
export const RPC_RULES: Readonly<Record<string, MethodRule>> = {
  [`${ORCH}/RegisterAgent`]: { permission: "operate" },
  [`${ORCH}/GetAgent`]: { permission: "read", agent: own<GetAgentRequest>("agent_id", (r) => r.agentId) },
  [`${ORCH}/ListAgents`]: { permission: "read" },
  [`${ORCH}/StartAgent`]: { permission: "operate" },
  [`${ORCH}/StopAgent`]: { permission: "operate" },
  [`${ORCH}/RemoveAgent`]: { permission: "operate" },
  [`${ORCH}/GetAgentOutput`]: { permission: "read" },
  [`${ORCH}/EnforceLifecycle`]: { permission: "operate" },
  [`${ORCH}/WatchAgents`]: { permission: "read" },
  [`${ORCH}/StreamAgentOutput`]: { permission: "read" },
  [`${ORCH}/ReportActivity`]: { permission: "operate", agent: own<ReportActivityRequest>("agent_id", (r) => r.agentId) },

  [`${LIFE}/SubmitTask`]: { permission: "operate" },
  [`${LIFE}/GetTask`]: { permission: "read" },
  [`${LIFE}/ListTasks`]: { permission: "read" },
  [`${LIFE}/CancelTask`]: { permission: "operate" },
  [`${LIFE}/RetryTask`]: { permission: "operate" },
  [`${LIFE}/WatchTask`]: { permission: "read" },
  [`${LIFE}/WatchTasks`]: { permission: "read" },
  [`${LIFE}/ReapZombies`]: { permission: "operate" },
  [`${LIFE}/GetLifecycleConfig`]: { permission: "read" },
  [`${LIFE}/UpdateLifecycleConfig`]: { permission: "admin" },
  [`${LIFE}/PublishAgentCard`]: { permission: "operate", agent: own<PublishAgentCardRequest>("card.agent_id", (r) => r.card?.agentId) },
  [`${LIFE}/GetAgentCard`]: { permission: "read", agent: ANY },
  [`${LIFE}/ListAgentCards`]: { permission: "read", agent: ANY },
  [`${LIFE}/SendMessage`]: { permission: "operate", agent: own<SendMessageRequest>("message.from_agent_id", (r) => r.message?.fromAgentId) },
  [`${LIFE}/StreamMessages`]: { permission: "read", agent: own<StreamMessagesRequest>("agent_id", (r) => r.agentId) },
  [`${LIFE}/AckMessages`]: { permission: "operate", agent: own<AckMessagesRequest>("agent_id", (r) => r.agentId) },
  [`${LIFE}/SendAndWait`]: { permission: "operate", agent: own<SendAndWaitRequest>("message.from_agent_id", (r) => r.message?.fromAgentId) },
};

/** Services every caller may use without a token: health checks and server reflection. */
export const OPEN_SERVICES: ReadonlySet<string> = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

/** True when the role may call a method that needs this permission. */
export function roleMay(role: Role, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(permission);
}
