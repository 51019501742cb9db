/**
 * grpc.health.v1.Health, so load balancers, orchestrators and `grpc-health-probe` can
 * tell whether this instance serves. "" (the server) is SERVING until shutdown begins;
 * the agent API and "docker" follow the container engine's reachability, since without
 * it no agent can be started. "store" says whether the store accepts writes: NOT_SERVING
 * from a write it could not make (a full disk) until one succeeds (the store probes). The
 * rest stays SERVING then: reads, StopAgent and RemoveAgent still work (their records
 * follow once the store can write), and an operator must still reach the instance.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthListResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { Health, HealthCheckRequest, HealthCheckResponse } from "../../gen/grpc/health/v1/health_pb.js";
import { AgentOrchestratorService } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { LifecycleService } from "../../gen/agentorch/v1/lifecycle_service_pb.js";

/** Where the engine's health comes from (AgentService implements this). */
export interface EngineHealthSource {
  engineHealthy(): boolean;
  /** Returns an unsubscribe function. */
  onEngineHealth(cb: (healthy: boolean) => void): () => void;
}

/** Whether the store accepts writes (the SQLite store implements this). */
export interface StoreHealthSource {
  writable(): boolean;
  /** Returns an unsubscribe function. */
  onWritable(cb: (writable: boolean) => void): () => void;
}

/** The health service plus the switch the composition root flips at shutdown. */
export interface HealthServer {
  impl: ServiceImpl<typeof Health>;
  /** Everything NOT_SERVING; open Watch streams get that status and then end. Idempotent. */
  shutdown(): void;
  /** Each name's status as text (SERVING, NOT_SERVING), for GET /healthz. */
  summary(): Record<string, string>;
}

/** The name "docker" reports the container engine alone. */
export const DOCKER_HEALTH_NAME = "docker";
/** The name "store" reports whether the store accepts writes. */
export const STORE_HEALTH_NAME = "store";

/** Creates the health service for this server ("store" only when a store source is given). */
export function createHealthServer(deps: { engine: EngineHealthSource; store?: StoreHealthSource }): HealthServer {
  const engineServices = new Set([AgentOrchestratorService.typeName, LifecycleService.typeName, DOCKER_HEALTH_NAME]);
  const names = ["", ...engineServices, ...(deps.store ? [STORE_HEALTH_NAME] : [])];
  const watchers = new Set<() => void>();
  let shuttingDown = false;

  const statusOf = (service: string): ServingStatus | undefined => {
    if (!names.includes(service)) return undefined;
    if (shuttingDown) return ServingStatus.NOT_SERVING;
    if (service === "") return ServingStatus.SERVING;
    const up = service === STORE_HEALTH_NAME ? deps.store!.writable() : deps.engine.engineHealthy();
    return up ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  const notify = () => {
    for (const wake of watchers) wake();
  };
  const unsubscribers = [deps.engine.onEngineHealth(notify), ...(deps.store ? [deps.store.onWritable(notify)] : [])];
  const response = (status: ServingStatus) => create(HealthCheckResponseSchema, { status });

  async function* watch(req: HealthCheckRequest, ctx: HandlerContext): AsyncGenerator<HealthCheckResponse> {
    let changed = true;
    let wake: (() => void) | undefined;
    const onChange = () => {
      changed = true;
      wake?.();
    };
    watchers.add(onChange);
    ctx.signal.addEventListener("abort", onChange);
    try {
      let last: ServingStatus | undefined;
      for (;;) {
        if (changed) {
          changed = false;
          // The spec: an unknown service is SERVICE_UNKNOWN and the call stays open.
          const status = statusOf(req.service) ?? ServingStatus.SERVICE_UNKNOWN;
          if (status !== last && !ctx.signal.aborted) {
            last = status;
            yield response(status);
          }
        }
        if (shuttingDown || ctx.signal.aborted) return;
        if (!changed) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      watchers.delete(onChange);
      ctx.signal.removeEventListener("abort", onChange);
    }
  }

  return {
    impl: {
      check(req) {
        const status = statusOf(req.service);
        if (status === undefined) {
          // The name is the caller's input: bounded, so the status fits in any client's header limit.
          const name = req.service.length > 200 ? `${req.service.slice(0, 200)}…` : req.service;
          throw new ConnectError(`unknown service "${name}"`, Code.NotFound);
        }
        return response(status);
      },
      watch,
      list() {
        const statuses: Record<string, HealthCheckResponse> = {};
        for (const name of names) statuses[name] = response(statusOf(name)!);
        return create(HealthListResponseSchema, { statuses });
      },
    },
    summary() {
      return Object.fromEntries(names.filter((n) => n !== "").map((n) => [n, ServingStatus[statusOf(n)!]]));
    },
    shutdown() {
      if (shuttingDown) return;
      shuttingDown = true;
      for (const unsubscribe of unsubscribers) unsubscribe();
      notify();
    },
  };
}
