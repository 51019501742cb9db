/**
 * The real agentorch process, as an operator runs it: from the TypeScript sources
 * (`node --import tsx src/server/main.ts`), or with `compiled` the build `npm start` runs
 * (`node dist/src/server/main.js`; call ensureCompiled() from ./build.ts first), for fault tests that kill it, stop it with SIGTERM and start it again on the same data
 * directory. Its JSON log lines (stdout) are parsed and kept, so a test can wait for
 * "agentorch started" (port, instance id) or for a reconciliation pass.
 *
 * With gcProbe, a test-only preload (gc-probe.ts) answers SIGUSR2 with a full GC and the
 * process's memory figures on stderr, so a load test can compare memory before and after.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { REPO_ROOT } from "../../support/server.js";
import { COMPILED_MAIN, compiledReady } from "./build.js";

export type LogLine = Record<string, unknown> & { msg?: string; level?: string; time?: string };

export interface MemorySample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** Cumulative since the process started. */
  cpuUserMs: number;
  cpuSystemMs: number;
  eventLoopActiveMs: number;
  eventLoopIdleMs: number;
}

export interface ServiceOptions {
  dataDir: string;
  /** DOCKER_HOST of the service; default: the tests' engine (DOCKER_HOST or the default socket). */
  dockerHost?: string;
  /** Extra AGENTORCH_* variables. */
  env?: Record<string, string>;
  /** Load the memory probe (SIGUSR2: GC, then memory figures on stderr). */
  gcProbe?: boolean;
  /**
   * Run the compiled build (dist/, made by ensureCompiled() in ./build.ts) with plain node
   * instead of the sources through tsx: about twice as fast to start. Default false.
   */
  compiled?: boolean;
  /** How long to wait for "agentorch started". Default 30 s. */
  startTimeoutMs?: number;
}

export interface ServiceProcess {
  readonly pid: number;
  readonly dataDir: string;
  /** Every log line so far (stdout, parsed; unparsable lines kept as { msg: text }). */
  readonly logs: LogLine[];
  /** What the process wrote to stderr (not its logs). */
  stderr(): string;
  /** Resolves once the process says it listens. */
  readonly started: Promise<StartedInfo>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly hasExited: boolean;
  kill(signal: NodeJS.Signals): void;
  /** The first log line (from now or already logged after `fromIndex`) that matches. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs: number, fromIndex?: number): Promise<LogLine>;
  /** Only with gcProbe: runs a full GC in the process and returns its memory figures. */
  memory(): Promise<MemorySample>;
  /** SIGTERM and wait for the exit (SIGKILL after timeoutMs). */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartedInfo {
  port: number;
  /** "127.0.0.1:PORT", for grpc-js. */
  address: string;
  /** "http://127.0.0.1:PORT". */
  url: string;
  instanceId: string;
  dockerReachable: boolean;
}

const PROBE = path.join(REPO_ROOT, "test", "fault", "support", "gc-probe.ts");

/** Spawns the service; `started` resolves (or rejects) once it listens (or dies first). */
export function spawnService(options: ServiceOptions): ServiceProcess {
  const env: Record<string, string | undefined> = {
    ...process.env,
    AGENTORCH_LISTEN: "127.0.0.1:0",
    AGENTORCH_DATA_DIR: options.dataDir,
    AGENTORCH_LOG_LEVEL: "info",
    ...options.env,
  };
  const dockerHost = options.dockerHost ?? process.env.DOCKER_HOST;
  if (dockerHost) env.DOCKER_HOST = dockerHost;
  else delete env.DOCKER_HOST;
  if (options.compiled && !compiledReady) throw new Error("spawnService({ compiled: true }) needs ensureCompiled() (./build.ts) to have finished first");
  const args: string[] = [];
  // The memory probe is TypeScript: it needs tsx even in front of the compiled build.
  if (!options.compiled || options.gcProbe) args.push("--import", "tsx");
  if (options.gcProbe) args.push("--expose-gc", "--import", PROBE);
  args.push(options.compiled ? COMPILED_MAIN : path.join("src", "server", "main.ts"));
  const child: ChildProcess = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });

  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  let stderr = "";
  const memoryWaiters: ((m: MemorySample) => void)[] = [];
  let hasExited = false;

  let rest = "";
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop() ?? "";
    for (const line of parts) {
      if (line.trim() === "") continue;
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        logs.push({ msg: line });
      }
      if (process.env.AGENTORCH_TEST_LOGS === "1") process.stderr.write(`[svc ${child.pid}] ${line}\n`);
    }
    for (const w of waiters) w();
  });
  let errRest = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    const parts = (errRest + chunk).split("\n");
    errRest = parts.pop() ?? "";
    for (const line of parts) {
      if (line.startsWith("AGENTORCH_MEMORY ")) {
        const sample = JSON.parse(line.slice("AGENTORCH_MEMORY ".length)) as MemorySample;
        memoryWaiters.shift()?.(sample);
        continue;
      }
      stderr += line + "\n";
    }
  });

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      hasExited = true;
      for (const w of waiters) w();
      resolve({ code, signal });
    });
  });

  const waitForLog = (pred: (l: LogLine) => boolean, timeoutMs: number, fromIndex = 0): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      let index = fromIndex;
      const check = () => {
        for (; index < logs.length; index++) {
          if (pred(logs[index]!)) {
            done();
            resolve(logs[index]!);
            return;
          }
        }
        if (hasExited) {
          done();
          reject(new Error(`service exited before the awaited log line; stderr:\n${stderr.slice(-2000)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching log line within ${timeoutMs} ms; last lines:\n${logs.slice(-10).map((l) => JSON.stringify(l)).join("\n")}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const started = waitForLog((l) => l.msg === "agentorch started", options.startTimeoutMs ?? 30_000).then((l) => {
    const listen = String(l.listen);
    const port = Number(listen.slice(listen.lastIndexOf(":") + 1));
    return {
      port,
      address: `127.0.0.1:${port}`,
      url: `http://127.0.0.1:${port}`,
      instanceId: String(l.instanceId),
      dockerReachable: l.dockerReachable === true,
    };
  });
  // A test that kills the process before it starts does not await this.
  started.catch(() => undefined);

  return {
    pid: child.pid!,
    dataDir: options.dataDir,
    logs,
    stderr: () => stderr,
    started,
    exited,
    get hasExited() {
      return hasExited;
    },
    kill(signal) {
      if (!hasExited) child.kill(signal);
    },
    waitForLog,
    memory() {
      if (!options.gcProbe) return Promise.reject(new Error("spawned without gcProbe"));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no memory sample within 10 s")), 10_000);
        memoryWaiters.push((m) => {
          clearTimeout(timer);
          resolve(m);
        });
        child.kill("SIGUSR2");
      });
    },
    async stop(timeoutMs = 30_000) {
      if (!hasExited) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Log lines with this message, from index on. */
export function countLogs(p: ServiceProcess, msg: string, fromIndex = 0): number {
  return p.logs.slice(fromIndex).filter((l) => l.msg === msg).length;
}
