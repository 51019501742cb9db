/**
 * Runs agentorch as the real process (`node --import tsx src/server/main.ts`) on a free
 * port with a temporary data directory, as users run it: its CPU and memory are then
 * its own, and it logs at its shipped level (info: one line per RPC) into a file, as a
 * service writing to a log collector would. stop() sends SIGTERM, waits for the exit
 * and removes the data directory.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { trackChild, trackLabel } from "./cleanup.js";
import { cpuMs, rssMiB } from "./proc.js";

/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface ServiceOptions {
  /** Extra AGENTORCH_* variables. */
  env?: Record<string, string>;
  /** Extra node flags, e.g. ["--cpu-prof", "--cpu-prof-dir", dir]. */
  nodeArgs?: string[];
  /** How long to wait until it accepts connections. */
  readyTimeoutMs?: number;
  /** The entry point, relative to the repository root (experiments); default src/server/main.ts. */
  entry?: string;
  /** Run the compiled build (dist/src/server/main.js, `npm run build`) with plain node, no tsx. */
  compiled?: boolean;
}

export interface ServiceProcess {
  pid: number;
  /** From spawn until the port accepted a connection (ms). */
  readyMs: number;
  /** "127.0.0.1:PORT" */
  address: string;
  port: number;
  /** Labels this instance's containers (agentorch.instance). */
  instanceId: string;
  dataDir: string;
  logPath: string;
  rssMiB(): number;
  cpuMs(): number;
  /** Parsed log lines so far (re-read from the file). */
  logs(): Record<string, unknown>[];
  stop(): Promise<void>;
}

/** Starts the service; resolves once it listens. */
export async function startService(options: ServiceOptions = {}): Promise<ServiceProcess> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "agentorch-bench-"));
  // Chosen here, not by the service: at log level "silent" it does not say where it listens.
  const port = await freePort();
  const logPath = path.join(dataDir, "service.log");
  const logFd = openSync(logPath, "a");
  let child: ChildProcess;
  try {
    const entry = options.compiled ? ["dist/src/server/main.js"] : ["--import", "tsx", options.entry ?? "src/server/main.ts"];
    child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...entry], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        AGENTORCH_LISTEN: `127.0.0.1:${port}`,
        AGENTORCH_DATA_DIR: path.join(dataDir, "data"),
        ...options.env,
      },
      stdio: ["ignore", logFd, logFd],
    });
  } finally {
    closeSync(logFd);
  }
  const untrack = trackChild(child);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  void exited.then(untrack);
  const readLogs = (): Record<string, unknown>[] => {
    const out: Record<string, unknown>[] = [];
    for (const line of readFileSync(logPath, "utf8").split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line being written right now
      }
    }
    return out;
  };
  const cleanup = () => rmSync(dataDir, { recursive: true, force: true });

  const spawnedAt = performance.now();
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  let ready = false;
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  while (!ready) {
    if (exitCode !== undefined || Date.now() > deadline) {
      const tail = readFileSync(logPath, "utf8").slice(-2000);
      child.kill("SIGKILL");
      cleanup();
      throw new Error(`agentorch did not start (${exitCode !== undefined ? `exit ${exitCode}` : "timeout"}):\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 10));
    ready = await answers(port);
  }
  const readyMs = performance.now() - spawnedAt;
  const address = `127.0.0.1:${port}`;
  const pid = child.pid!;
  const instanceId = readInstanceId(path.join(dataDir, "data", "agentorch.db"));
  trackLabel(`agentorch.instance=${instanceId}`);
  let stopped: Promise<void> | undefined;
  return {
    pid,
    readyMs,
    address,
    port,
    instanceId,
    dataDir,
    logPath,
    rssMiB: () => rssMiB(pid),
    cpuMs: () => cpuMs(pid),
    logs: readLogs,
    stop() {
      stopped ??= (async () => {
        if (exitCode === undefined) {
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
          await exited;
          clearTimeout(timer);
        }
        cleanup();
      })();
      return stopped;
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** The instance id the service persisted (it labels its containers with it). */
function readInstanceId(dbPath: string): string {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare("SELECT value FROM meta WHERE key = ?").get("instance_id") as { value: string } | undefined;
    if (!row) throw new Error(`no instance id in ${dbPath}`);
    return row.value;
  } finally {
    db.close();
  }
}
