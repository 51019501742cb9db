/**
 * The composition root: builds the store, the Docker backend, the workspaces, the event
 * bus and the agent service from the configuration, registers the API routes (agent API,
 * health, reflection) on one Connect handler, and serves it on one port. Tests start it
 * on port 0 with a temporary data directory (test/support/server.ts).
 */
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createHealthServer } from "../api/health.js";
import { createLogInterceptor } from "../api/interceptors.js";
import { createReflectionServer } from "../api/reflection.js";
import { registerRoutes } from "../api/routes.js";
import { createDockerBackend } from "../backends/docker/docker-backend.js";
import { createFsWorkspaces } from "../backends/fs-workspaces.js";
import { AgentService } from "../core/agent-service.js";
import { EventBus } from "../core/event-bus.js";
import { systemClock } from "../core/ports.js";
import type { Clock, ContainerBackend, Logger, Store, Workspaces } from "../core/ports.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import { createSqliteTaskStore } from "../store/sqlite/task-store.js";
import { createSqliteCardStore } from "../store/sqlite/card-store.js";
import { createSqliteMailboxStore } from "../store/sqlite/mailbox-store.js";
import { TaskService } from "../core/tasks/task-service.js";
import { CardService } from "../core/a2a/card-service.js";
import { MailboxService } from "../core/a2a/mailbox-service.js";
import { createLifecycleService } from "../api/lifecycle-service.js";
import { createA2AHandlers } from "../api/a2a-handlers.js";
import { LifecycleService } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import type { SqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Config } from "./config.js";
import { createListener } from "./listener.js";
import type { RequestHandler } from "./listener.js";
import { createLogger } from "./logger.js";
import { createRequestLog } from "./request-log.js";
import { withStreamShutdown } from "./stream-shutdown.js";

/** Replacements for the real adapters (tests). */
export interface AppOverrides {
  logger?: Logger;
  backend?: ContainerBackend;
  workspaces?: Workspaces;
  clock?: Clock;
}

/** A running (or runnable) agentorch server. */
export interface App {
  readonly config: Config;
  readonly logger: Logger;
  /** Names this instance's containers; persisted in the store, so stable across restarts. */
  readonly instanceId: string;
  readonly agents: AgentService;
  readonly tasks: TaskService;
  readonly store: Store;
  /** Aborted when shutdown begins: long-lived streams watch it and end. */
  readonly shutdownSignal: AbortSignal;
  /** Opens the agent service (never fails for want of Docker) and listens. */
  start(): Promise<{ host: string; port: number }>;
  /** Graceful: health NOT_SERVING, streams ended, in-flight calls finished, then closes everything. Idempotent. */
  stop(): Promise<void>;
}

/** Meta key of the persisted instance id. */
export const INSTANCE_ID_KEY = "instance_id";
/** How often old events beyond AGENTORCH_EVENT_RETENTION are pruned. */
const PRUNE_INTERVAL_MS = 60_000;

/** Builds the server from config; nothing listens until start(). */
export function createApp(config: Config, overrides: AppOverrides = {}): App {
  const logger = overrides.logger ?? createLogger(config.logLevel);
  const dataDir = path.resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o750 });
  const store = openSqliteStore({ path: path.join(dataDir, "agentorch.db"), logger, clock: overrides.clock });
  try {
    return assemble(config, overrides, logger, dataDir, store);
  } catch (err) {
    store.close();
    throw err;
  }
}

function assemble(config: Config, overrides: AppOverrides, logger: Logger, dataDir: string, store: SqliteStore): App {
  let instanceId = store.getMeta(INSTANCE_ID_KEY);
  if (instanceId === undefined) {
    instanceId = randomUUID();
    store.setMeta(INSTANCE_ID_KEY, instanceId);
  }
  const backend =
    overrides.backend ?? createDockerBackend({ dockerHost: config.dockerHost, user: config.containerUser, logger });
  const workspaces =
    overrides.workspaces ??
    createFsWorkspaces({ root: path.join(dataDir, "workspaces"), containerUser: config.containerUser, logger });
  const bus = new EventBus(logger);
  const agents = new AgentService({
    store,
    backend,
    workspaces,
    clock: overrides.clock ?? systemClock,
    logger,
    bus,
    config: {
      instanceId,
      maxRunning: config.maxRunning,
      imageAllowlist: config.imageAllowlist,
      enforceIntervalMs: config.enforceIntervalMs,
      watch: config.watch,
    },
  });

  const clock = overrides.clock ?? systemClock;
  const tasks = new TaskService({
    agents,
    tasks: createSqliteTaskStore(store),
    store,
    workspaces,
    clock,
    logger,
    bus,
    reapIntervalMs: config.reapIntervalMs,
    watch: config.watch,
  });
  const cards = new CardService({ cards: createSqliteCardStore(store), agents, bus, clock, logger, tasks });
  const mailboxes = new MailboxService({ mailboxes: createSqliteMailboxStore(store), agents, bus, clock, logger, config: config.mailbox });

  const shutdown = new AbortController();
  const health = createHealthServer({ engine: agents });
  const served: DescService[] = [];
  const reflection = createReflectionServer(() => served);
  const rpcLogger = logger.child({ component: "rpc" });
  const requestLog = createRequestLog(rpcLogger);
  const connectHandler = connectNodeAdapter({
    routes(router) {
      const r = withStreamShutdown(router, shutdown.signal, served);
      registerRoutes(r, { agents, logger });
      r.service(LifecycleService, createLifecycleService({ tasks, logger, a2a: createA2AHandlers({ cards, mailboxes, logger }) }));
      // Health ends its Watch streams itself, after telling them NOT_SERVING.
      router.service(Health, health.impl);
      served.push(Health);
      r.service(ReflectionV1, reflection.v1);
      r.service(ReflectionV1Alpha, reflection.v1alpha);
    },
    grpc: true,
    grpcWeb: true,
    connect: true,
    readMaxBytes: config.maxRequestBytes,
    interceptors: [createLogInterceptor(rpcLogger)],
    contextValues: requestLog.contextValues,
    fallback(req, res) {
      const probe = req.method === "GET" && (req.url === "/healthz" || req.url?.startsWith("/healthz?"));
      const [status, body] = !probe ? [404, "not found\n"] : shutdown.signal.aborted ? [503, "shutting down\n"] : [200, "ok\n"];
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
      res.end(body);
    },
  }) as RequestHandler;
  const handler = requestLog.wrap(connectHandler);
  const listener = createListener({
    host: config.listen.host,
    port: config.listen.port,
    handler,
    logger,
    graceMs: config.shutdownGraceMs,
  });

  let pruneTimer: NodeJS.Timeout | undefined;
  const prune = () => {
    try {
      store.pruneEvents(config.eventRetention);
    } catch (err) {
      logger.warn({ err }, "pruning the event log failed");
    }
  };
  let stopping: Promise<void> | undefined;
  let coreClosed = false;
  const closeCore = async () => {
    if (coreClosed) return;
    coreClosed = true;
    clearInterval(pruneTimer);
    mailboxes.close();
    cards.close();
    await tasks.close();
    await agents.close();
    store.close();
  };

  return {
    config,
    logger,
    instanceId,
    agents,
    tasks,
    store,
    shutdownSignal: shutdown.signal,

    async start() {
      try {
        await agents.open();
        await tasks.open();
        cards.open();
        mailboxes.open();
        prune();
        pruneTimer = setInterval(prune, PRUNE_INTERVAL_MS);
        pruneTimer.unref();
        const addr = await listener.listen();
        if (!("port" in addr)) throw new Error("expected a TCP address");
        return addr;
      } catch (err) {
        await closeCore();
        throw err;
      }
    },

    stop() {
      stopping ??= (async () => {
        const started = Date.now();
        logger.info({ graceMs: config.shutdownGraceMs }, "shutting down");
        health.shutdown();
        shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
        // SendAndWait is unary: the stream shutdown signal does not reach it.
        mailboxes.close();
        await listener.close();
        await closeCore();
        logger.info({ durationMs: Date.now() - started }, "shut down");
      })();
      return stopping;
    },
  };
}
