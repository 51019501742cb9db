/**
 * AgentOrchestratorService handlers: a thin layer that maps the request to the core's
 * terms, calls the core (passing the call's signal), and maps the answer back. Codes are
 * decided only in ./errors.ts.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { AgentOrchestratorService, WatchAgentsResponseSchema } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import type { WatchAgentsResponse } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import type { Agent } from "../core/agent.js";
import type { AgentService } from "../core/agent-service.js";
import { invalidArgument } from "../core/errors.js";
import type { Logger } from "../core/ports.js";
import type { WatchItem } from "../core/watch.js";
import { agentConfigFromProto, agentToProto } from "./agent-mapping.js";
import { requesterOf } from "./requester.js";
import { agentStatusFromProto, eventTypeToProto } from "./enums.js";
import { int64ToNumber } from "./proto-scalars.js";
import { withErrors } from "./errors.js";
import { isBinaryCall, SharedResponses } from "./shared-response.js";
import { streamCutOff } from "./interceptors.js";

/** The part of the core's AgentService these handlers use, so tests can hand in a fake. */
export type AgentsApi = Pick<
  AgentService,
  "register" | "get" | "list" | "start" | "stop" | "remove" | "output" | "enforceLifecycle" | "watch" | "streamOutput" | "touch"
>;

/** Creates the AgentOrchestratorService implementation over the core's agent service. */
export function createOrchestratorService(deps: {
  agents: AgentsApi;
  logger: Logger;
}): ServiceImpl<typeof AgentOrchestratorService> {
  const { agents } = deps;
  const impl: ServiceImpl<typeof AgentOrchestratorService> = {
    async registerAgent(req, ctx) {
      const agent = await agents.register(agentConfigFromProto(req.agent), ctx.signal, requesterOf(ctx));
      return { agent: agentToProto(agent) };
    },
    getAgent(req) {
      return { agent: agentToProto(agents.get(req.agentId)) };
    },
    listAgents(req) {
      if (req.pageSize < 0) throw invalidArgument(`page_size may not be negative (got ${req.pageSize})`, { field: "page_size" });
      const page = agents.list({
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        status: agentStatusFromProto(req.status),
      });
      return {
        agents: page.agents.map(agentToProto),
        nextPageToken: page.nextPageToken,
        revision: BigInt(page.revision),
      };
    },
    async startAgent(req, ctx) {
      return { agent: agentToProto(await agents.start(req.agentId, ctx.signal)) };
    },
    async stopAgent(req, ctx) {
      return { agent: agentToProto(await agents.stop(req.agentId, ctx.signal)) };
    },
    async removeAgent(req, ctx) {
      const { recordPending, keptWorkspace } = await agents.remove(req.agentId, { deleteWorkspace: req.deleteWorkspace }, ctx.signal);
      return { recordPending, keptWorkspacePath: keptWorkspace ?? "" };
    },
    async getAgentOutput(req, ctx) {
      const maxBytes = int64ToNumber(req.maxBytes, "max_bytes");
      const out = await agents.output(req.agentId, maxBytes, ctx.signal);
      return { output: decoder.decode(out.data), truncated: out.truncated };
    },
    async enforceLifecycle(_req, ctx) {
      return { stoppedAgentIds: await agents.enforceLifecycle(ctx.signal) };
    },
    async *watchAgents(req, ctx) {
      const events = agents.watch({
        ids: req.agentIds,
        resumeAfter: int64ToNumber(req.resumeAfterRevision, "resume_after_revision"),
        sendInitialState: req.sendInitialState,
        signal: ctx.signal,
        onCutOff: streamCutOff(ctx),
      });
      const binary = isBinaryCall(ctx.requestHeader);
      for await (const item of events) yield watchResponse(item, binary);
      // The watch only ends when the call is cancelled or the server shuts down: say so
      // (UNAVAILABLE at shutdown), rather than ending OK as if the stream were complete.
      ctx.signal.throwIfAborted();
    },
    async *streamAgentOutput(req, ctx) {
      const tail = int64ToNumber(req.tailBytes, "tail_bytes");
      for await (const data of agents.streamOutput(req.agentId, tail, req.follow, ctx.signal)) yield { data };
      // OK means the output ended (the container stopped); a shutdown ends it with UNAVAILABLE.
      ctx.signal.throwIfAborted();
    },
    async reportActivity(req) {
      return { agent: agentToProto(await agents.touch(req.agentId)) };
    },
  };
  return withErrors(AgentOrchestratorService, impl, deps.logger);
}

/** WatchAgents responses, shared by every watcher of a change: built and encoded once. */
const watchResponses = new SharedResponses(WatchAgentsResponseSchema);

function watchResponse(item: WatchItem<Agent>, binary: boolean): WatchAgentsResponse {
  const type = eventTypeToProto(item.type);
  const revision = BigInt(item.revision);
  return watchResponses.get(item.entity, `${item.revision}:${item.type}`, binary, () =>
    create(WatchAgentsResponseSchema, { event: { type, revision, agent: item.entity && agentToProto(item.entity) } }),
  );
}

// Non-fatal: invalid UTF-8 (a tail cut mid-character, binary output) becomes U+FFFD, never an error.
const decoder = new TextDecoder("utf-8", { fatal: false });
