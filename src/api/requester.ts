/**
 * Who asks for an agent, in the core's terms: an operator's role (decides whether it may
 * give an agent a network). Agents calling over their socket have no role; calls the auth
 * interceptor did not see (in-memory tests) have none either, so they get no network.
 */
import type { HandlerContext } from "@connectrpc/connect";
import type { Requester } from "../core/agent-service.js";
import { principalOf } from "./auth.js";

export function requesterOf(ctx: Pick<HandlerContext, "values">): Requester {
  const p = principalOf(ctx);
  return p?.kind === "operator" ? { role: p.role } : {};
}
