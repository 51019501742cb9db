/**
 * The composition root: builds the store, the Docker backend, the workspaces, the event
 * bus and the agent service from the configuration, registers the API routes (agent API,
 * health, reflection) on one Connect handler, and serves it on one port. Tests start it
 * on port 0 with a temporary data directory (test/support/server.ts).
 */
import { randomUUID } from "node:crypto";
import { setMaxListeners } from "node:events";
import { chmodSync, mkdirSync } from "node:fs";
import path from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createHealthServer } from "../api/health.js";
import { createLogInterceptor } from "../api/interceptors.js";
import { createAuth } from "../api/auth.js";
import { AgentTokenIndex, OperatorTokens } from "../core/auth.js";
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
import { createA2AHandlers } from "../api/a2a-handlers.js";
import type { SqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Config } from "./config.js";
import { agentSocketPath, assertSecureListen, isLoopbackHost, listenSecurity, parseOperatorCredentials } from "./config.js";
import { checkIdentitiesUsable, loadTlsMaterial, secureContextOptions } from "./config-tls.js";
import type { TlsMaterial } from "./config-tls.js";
import { createListener } from "./listener.js";
import type { RequestHandler } from "./listener.js";
import { withVersionHeader } from "./version.js";
import { createLogger } from "./logger.js";
import { createRequestLog } from "./request-log.js";
import { withSpecGrpcMessage } from "./grpc-message.js";
import { validateBinaryRequests } from "./request-validation.js";
import { BodyBudget, guardRequests } from "./request-guard.js";
import { withBrowserGuard } from "./browser-guard.js";
import { createMetrics } from "./metrics.js";
import type { Metrics } from "./metrics.js";
import { createMetricsServer, isMetricsPath, metricsAccess, serveMetrics } from "./metrics-http.js";
import { clientCertificateOf } from "./tls-peer.js";

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
  /** The Prometheus metrics (GET /metrics). */
  readonly metrics: Metrics;
  /** Where /metrics is served when AGENTORCH_METRICS_LISTEN is set, once started; else undefined. */
  metricsAddress(): { host: string; port: number } | undefined;
  /** Opens the agent service (never fails for want of Docker) and listens. */
  start(): Promise<{ host: string; port: number }>;
  /** Graceful: health NOT_SERVING, streams ended, in-flight calls finished, then closes everything. Idempotent. */
  stop(): Promise<void>;
  /**
   * Reads the operator tokens again (AGENTORCH_TOKENS, AGENTORCH_TOKENS_FILE; SIGHUP) and
   * swaps them in. On an error (an unreadable file, a bad line, no tokens left while the
   * listener is not loopback) the old set stays, and the error is thrown.
   */
  reloadTokens(env?: Record<string, string | undefined>): { tokens: number; certIdentities: number };
  /**
   * Reads the TLS certificate, key and client CA files again (SIGHUP) and uses them for new
   * handshakes; open connections keep theirs. On an error the old ones stay, and the error
   * is thrown. Undefined when the service does not serve TLS.
   */
  reloadTls(): TlsMaterial["summary"] | undefined;
}

/** Meta key of the persisted instance id. */
export const INSTANCE_ID_KEY = "instance_id";
/** How often old events beyond AGENTORCH_EVENT_RETENTION are pruned. */
const PRUNE_INTERVAL_MS = 60_000;
/** Where containers see the agent socket's directory (mounted read-only) and the socket. */
export const CONTAINER_SOCKET_DIR = "/run/agentorch";
/**
 * The agent socket is connectable by every uid (containers run as AGENTORCH_CONTAINER_USER,
 * not as the service's user): every call on it must present a running agent's token, and
 * on the host the socket sits in the data directory (0700), out of other users' reach.
 */
const AGENT_SOCKET_MODE = 0o666;

/** A listener's connection bounds from the configuration. */
function connectionLimits(config: Config, maxConnections: number, maxConnectionsSetting: string) {
  return {
    maxConnections,
    maxConnectionsSetting,
    http2IdleTimeoutMs: config.net.http2IdleTimeoutMs,
    keepAliveTimeoutMs: config.net.http1KeepAliveTimeoutMs,
    maxConcurrentStreams: config.net.maxConcurrentStreams,
  };
}

/** Builds the server from config; nothing listens until start(). */
export function createApp(config: Config, overrides: AppOverrides = {}): App {
  const logger = overrides.logger ?? createLogger(config.logLevel);
  assertSecureListen(config.listen, listenSecurity(config));
  if (config.metricsListen) assertSecureListen(config.metricsListen, listenSecurity(config), "AGENTORCH_METRICS_LISTEN");
  const dataDir = path.resolve(config.dataDir);
  // Only the service's user: the database, workspaces and agent socket directory live here.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
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
  const metrics = createMetrics(() => served);
  const backend = metrics.instrumentBackend(
    overrides.backend ??
      createDockerBackend({
        dockerHost: config.dockerHost,
        user: config.containerUser,
        logger,
        ...(config.hostDataDir === undefined ? {} : { hostDataDir: { inside: dataDir, host: config.hostDataDir } }),
      }),
  );
  const workspaces =
    overrides.workspaces ??
    createFsWorkspaces({ root: path.join(dataDir, "workspaces"), containerUser: config.containerUser, quota: config.workspaceQuota, logger });
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
      mountPrefixes: config.workspaceMountPrefixes,
      networkAllowlist: config.networkAllowlist,
      ceilings: config.agentCeilings,
      enforceIntervalMs: config.enforceIntervalMs,
      watch: config.watch,
      socketDir: path.dirname(agentSocketPath(dataDir)),
      containerSocketPath: `${CONTAINER_SOCKET_DIR}/${path.basename(agentSocketPath(dataDir))}`,
    },
  });
  // Built before the agent service opens, so it sees every token change from then on.
  const agentTokens = new AgentTokenIndex(store, bus);
  // One set for RPCs and /metrics, replaced as a whole by reloadTokens() (SIGHUP).
  const operatorTokens = new OperatorTokens(config.operatorTokens, config.certIdentities);
  const certificateRequired = config.tls?.clientAuth === "require";
  const auth = createAuth({
    operatorTokens,
    agentTokens,
    logger,
    ...(config.tls ? { clientCertificates: { of: clientCertificateOf, required: certificateRequired } } : {}),
  });
  const scrapers = metricsAccess(operatorTokens, certificateRequired);
  const tls = config.tls && { settings: config.tls, material: loadTlsMaterial(config.tls) };
  const listenerTls = tls && {
    context: secureContextOptions(tls.material),
    requestCert: tls.settings.clientAuth !== "off",
    handshakeTimeoutMs: tls.settings.handshakeTimeoutMs,
  };

  const clock = overrides.clock ?? systemClock;
  const taskStore = createSqliteTaskStore(store);
  const tasks = new TaskService({
    agents,
    tasks: taskStore,
    store,
    workspaces,
    clock,
    logger,
    bus,
    // The variables give the ceilings' starting values; UpdateLifecycleConfig's stored ones win.
    defaults: config.agentCeilings,
    reapIntervalMs: config.reapIntervalMs,
    watch: config.watch,
  });
  const cards = new CardService({ cards: createSqliteCardStore(store), agents, bus, clock, logger, tasks });
  const mailboxStore = metrics.countMessages(createSqliteMailboxStore(store));
  const onDelivered = (agentId: string) => agents.pauses.resumeSoon(agentId, "resumed by a message");
  const mailboxes = new MailboxService({ mailboxes: mailboxStore, agents, bus, clock, logger, config: config.mailbox, onDelivered });
  metrics.observe({ store, taskStore, tasks, agents, bus, mailboxStore });

  const shutdown = new AbortController();
  // Every open stream listens to it (and stops listening when it ends): no limit is the right one.
  setMaxListeners(0, shutdown.signal);
  const health = createHealthServer({ engine: agents, store });
  let served: readonly DescService[] = [];
  const rpcLogger = logger.child({ component: "rpc" });
  const bodyBudget = new BodyBudget(config.net.maxInflightBodyBytes);
  const requestLog = createRequestLog(rpcLogger, metrics.rpc);
  const connectHandler = connectNodeAdapter({
    routes(router) {
      const a2a = createA2AHandlers({ cards, mailboxes: metrics.countDeliveries(mailboxes), logger });
      served = registerRoutes(router, { agents, tasks, a2a, health: health.impl, logger }, { shutdownSignal: shutdown.signal });
      // Malformed binary messages answer INVALID_ARGUMENT, not connect's INTERNAL.
      validateBinaryRequests(router, config.maxRequestBytes);
      // Last, so it runs first: credentials and body bounds before a byte of the body is read.
      guardRequests(router, { checkHeaders: auth.checkHeaders, bodyTimeoutMs: config.net.requestBodyTimeoutMs, budget: bodyBudget });
    },
    grpc: true,
    grpcWeb: true,
    connect: true,
    readMaxBytes: config.maxRequestBytes,
    // Strict JSON: an unknown field or enum name is an error, never dropped (strict-json.ts).
    jsonOptions: { ignoreUnknownFields: false },
    interceptors: [metrics.streams, createLogInterceptor(rpcLogger, metrics.rpc), auth.interceptor],
    contextValues: auth.contextValues(requestLog.contextValues),
    fallback(req, res) {
      // Not on the agent socket (no remote address): containers have no business with metrics.
      if (!config.metricsListen && isMetricsPath(req) && req.socket.remoteAddress !== undefined) {
        serveMetrics(metrics, req, res, logger, scrapers);
        return;
      }
      const probe = req.method === "GET" && (req.url === "/healthz" || req.url?.startsWith("/healthz?"));
      // 200 while the process serves, with each part's state below "ok": a full store or a
      // missing engine must not take the instance out of a balancer that operators go through.
      const detail = () => Object.entries(health.summary()).map(([name, s]) => `${name} ${s}\n`).join("");
      const [status, body] = !probe ? [404, "not found\n"] : shutdown.signal.aborted ? [503, "shutting down\n"] : [200, `ok\n${detail()}`];
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
      res.end(body);
    },
  }) as RequestHandler;
  // grpc-message as the gRPC spec encodes it, so grpc-js clients read messages intact.
  const handler = withVersionHeader(requestLog.wrap(withSpecGrpcMessage(connectHandler)));
  const listener = createListener({
    host: config.listen.host,
    port: config.listen.port,
    handler: withBrowserGuard(handler, { loopbackOnly: operatorTokens.open, corsOrigins: config.net.corsOrigins, logger }),
    logger,
    graceMs: config.shutdownGraceMs,
    ...connectionLimits(config, config.net.maxConnections, "AGENTORCH_MAX_CONNECTIONS"),
    ...(listenerTls ? { tls: listenerTls } : {}),
  });
  const metricsServer = config.metricsListen ? createMetricsServer(metrics, config.metricsListen, logger, scrapers, listenerTls) : undefined;
  let metricsAddress: { host: string; port: number } | undefined;
  // The same API for agents in their containers; the auth interceptor knows these calls by their mark.
  const agentListener = createListener({
    socketPath: agentSocketPath(dataDir),
    socketMode: AGENT_SOCKET_MODE,
    handler: auth.agentSocketHandler(handler),
    logger: logger.child({ listener: "agent-socket" }),
    graceMs: config.shutdownGraceMs,
    ...connectionLimits(config, config.net.agentSocketMaxConnections, "AGENTORCH_AGENT_SOCKET_MAX_CONNECTIONS"),
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
    agentTokens.close();
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
    metrics,
    metricsAddress: () => metricsAddress,

    async start() {
      try {
        await agents.open();
        await tasks.open();
        cards.open();
        mailboxes.open();
        prune();
        pruneTimer = setInterval(prune, PRUNE_INTERVAL_MS);
        pruneTimer.unref();
        metricsAddress = await metricsServer?.listen();
        const addr = await listener.listen();
        if (!("port" in addr)) throw new Error("expected a TCP address");
        logListenSecurity(config, tls?.material, logger);
        const agentSocket = await agentListener.listen();
        logger.info({ ...agentSocket, containerPath: `${CONTAINER_SOCKET_DIR}/${path.basename(agentSocketPath(dataDir))}` }, "agent socket listening");
        return addr;
      } catch (err) {
        await Promise.all([listener.close(), agentListener.close()]);
        await metricsServer?.close();
        await closeCore();
        throw err;
      }
    },

    reloadTokens(env = process.env) {
      const { tokens, identities } = parseOperatorCredentials(env);
      checkIdentitiesUsable(identities, config.tls);
      assertSecureListen(config.listen, listenSecurity({ ...config, operatorTokens: tokens, certIdentities: identities }));
      operatorTokens.replace(tokens, identities);
      logger.info({ tokens: tokens.length, certIdentities: identities.length }, "operator tokens reloaded");
      return { tokens: tokens.length, certIdentities: identities.length };
    },

    reloadTls() {
      if (!tls) return undefined;
      const material = loadTlsMaterial(tls.settings);
      const context = secureContextOptions(material);
      listener.setSecureContext(context);
      metricsServer?.setSecureContext(context);
      tls.material = material;
      logger.info({ certificate: material.summary, clientCa: tls.settings.clientCaFile }, "TLS certificate reloaded; new connections use it");
      if (material.summary.expired) logger.warn({ validTo: material.summary.validTo }, "the TLS certificate has expired: clients will refuse it");
      return material.summary;
    },

    stop() {
      stopping ??= (async () => {
        const started = Date.now();
        logger.info({ graceMs: config.shutdownGraceMs }, "shutting down");
        health.shutdown();
        shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
        // SendAndWait is unary: the stream shutdown signal does not reach it.
        mailboxes.close();
        await Promise.all([listener.close(), agentListener.close()]);
        await metricsServer?.close();
        await closeCore();
        logger.info({ durationMs: Date.now() - started }, "shut down");
      })();
      return stopping;
    },
  };
}

/** The start-up lines about transport security: TLS in use, or cleartext beyond loopback asked for. */
function logListenSecurity(config: Config, material: TlsMaterial | undefined, logger: Logger): void {
  if (config.tls && material) {
    const { clientAuth, clientCaFile } = config.tls;
    logger.info({ certificate: material.summary, clientAuth, clientCa: clientCaFile }, "TLS enabled (ALPN h2, http/1.1)");
    if (material.summary.expired) logger.warn({ validTo: material.summary.validTo }, "the TLS certificate has expired: clients will refuse it");
    return;
  }
  for (const [name, address] of [["AGENTORCH_LISTEN", config.listen], ["AGENTORCH_METRICS_LISTEN", config.metricsListen]] as const) {
    if (address === undefined || isLoopbackHost(address.host)) continue;
    logger.warn(
      { setting: name, listen: `${address.host}:${address.port}` },
      "listening beyond loopback WITHOUT TLS (AGENTORCH_INSECURE_LISTEN=1): bearer tokens and data cross the network in cleartext; " +
        "only safe where a proxy or service mesh encrypts the traffic",
    );
  }
}
