/**
 * The agentorch process: configuration from the environment, the server, and signal
 * handling. SIGTERM/SIGINT stop gracefully and exit 0 (containers keep running and are
 * adopted at the next start); a second signal exits 1 at once. SIGHUP reloads the
 * operator tokens and the TLS certificate, key and client CA.
 */
import path from "node:path";
import { pathToFileURL } from "node:url";
import { createApp } from "./app.js";
import { ConfigError, loadConfig } from "./config.js";
import type { Config } from "./config.js";
import { createLogger } from "./logger.js";

function readConfig(argv: readonly string[]): Config {
  try {
    return loadConfig(process.env, argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`agentorch: invalid configuration: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
}

/**
 * Runs the service in this process until a signal stops it (then the process exits).
 * `argv` holds the flags (--listen, --data-dir); the rest comes from the environment.
 */
export async function runServer(argv: readonly string[]): Promise<void> {
  const config = readConfig(argv);
  const logger = createLogger(config.logLevel);
  // A client's bad input must never take the process down: log what escaped and go on.
  process.on("uncaughtException", (err) => logger.error({ err }, "uncaught exception"));
  process.on("unhandledRejection", (reason) => logger.error({ err: reason }, "unhandled rejection"));

  const app = createApp(config, { logger });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, "second signal; exiting now");
      process.exit(1);
    }
    logger.info({ signal }, "signal received; stopping");
    app.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  // SIGHUP reloads the operator tokens (e.g. after editing AGENTORCH_TOKENS_FILE) and the TLS
  // files (a renewed certificate); each on its own: a bad file keeps the old set in force.
  process.on("SIGHUP", () => {
    try {
      app.reloadTokens();
    } catch (err) {
      logger.error({ err: err instanceof Error ? err.message : String(err) }, "reloading operator tokens failed; the previous tokens stay in force");
    }
    try {
      app.reloadTls();
    } catch (err) {
      logger.error({ err: err instanceof Error ? err.message : String(err) }, "reloading the TLS certificate failed; the previous one stays in use");
    }
  });

  let addr: { host: string; port: number };
  try {
    addr = await app.start();
  } catch (err) {
    logger.error({ err, listen: `${config.listen.host}:${config.listen.port}` }, "agentorch failed to start");
    process.exit(1);
  }
  const host = addr.host.includes(":") ? `[${addr.host}]` : addr.host;
  logger.info(
    {
      listen: `${host}:${addr.port}`,
      tls: config.tls === undefined ? "off" : `on (client certificates: ${config.tls.clientAuth})`,
      dataDir: path.resolve(config.dataDir),
      docker: config.dockerHost,
      dockerReachable: app.agents.engineHealthy(),
      instanceId: app.instanceId,
      pid: process.pid,
    },
    "agentorch started",
  );
}

// Run when executed directly (npm start), not when imported (agentorch serve).
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  runServer(process.argv.slice(2)).catch((err: unknown) => {
    console.error("agentorch: fatal:", err);
    process.exit(1);
  });
}
