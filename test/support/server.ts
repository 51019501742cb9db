/**
 * Starts the real server (createApp) on a free port with a temporary data directory,
 * for end-to-end tests, and stops it. stop() resolves only once every connection is
 * closed, so a stream a test forgot to close makes the test hang instead of hiding.
 * Log lines are captured in `logs` (set AGENTORCH_TEST_LOGS=1 to also see them).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createApp } from "../../src/server/app.js";
import type { App, AppOverrides } from "../../src/server/app.js";
import { loadConfig } from "../../src/server/config.js";
import type { Config } from "../../src/server/config.js";
import { createLogger } from "../../src/server/logger.js";

/** The repository root (for proto include dirs and spawning the process). */
export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface TestServerOptions {
  /** Extra AGENTORCH_* variables, read like the real process reads them. */
  env?: Record<string, string>;
  /** Fields set after loading (win over env). */
  config?: Partial<Config>;
  overrides?: AppOverrides;
  /** Use this data directory (e.g. to restart on it); it is then never deleted. */
  dataDir?: string;
}

export interface TestServer {
  app: App;
  port: number;
  /** "127.0.0.1:PORT", for grpc-js. */
  address: string;
  /** "http://127.0.0.1:PORT", for fetch, connect transports and buf curl. */
  url: string;
  dataDir: string;
  /** Every log line so far, parsed. */
  logs: Record<string, unknown>[];
  /** Stops gracefully; resolves once every connection is closed; removes a temporary data dir. */
  stop(): Promise<void>;
}

/** Starts a server on 127.0.0.1:0. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), "agentorch-e2e-"));
  const config: Config = {
    ...loadConfig({
      ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
      AGENTORCH_LISTEN: "127.0.0.1:0",
      AGENTORCH_DATA_DIR: dataDir,
      AGENTORCH_LOG_LEVEL: process.env.AGENTORCH_TEST_LOG_LEVEL ?? "info",
      ...options.env,
    }),
    ...options.config,
  };
  const logs: Record<string, unknown>[] = [];
  const echo = process.env.AGENTORCH_TEST_LOGS === "1";
  const logger =
    options.overrides?.logger ??
    createLogger(config.logLevel, {
      write(line: string) {
        logs.push(JSON.parse(line) as Record<string, unknown>);
        if (echo) process.stderr.write(line);
      },
    });
  const app = createApp(config, { ...options.overrides, logger });
  let port: number;
  try {
    ({ port } = await app.start());
  } catch (err) {
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    app,
    port,
    address: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    dataDir,
    logs,
    stop() {
      stopped ??= app.stop().then(() => {
        if (ownDir) rmSync(dataDir, { recursive: true, force: true });
      });
      return stopped;
    },
  };
}
