/**
 * Runs a comparison server (the bare grpc-js baseline, bench/baseline-server.ts, or the
 * connect-node floor, bench/connect-floor-server.ts) as its own process, like the
 * service, so all are measured the same way (CPU, memory, latency).
 */
import { spawn } from "node:child_process";
import { trackChild } from "./cleanup.js";
import { cpuMs, rssMiB } from "./proc.js";
import { REPO_ROOT } from "./service-process.js";

export interface BaselineProcess {
  pid: number;
  address: string;
  cpuMs(): number;
  rssMiB(): number;
  stop(): Promise<void>;
}

export const BARE_GRPC_SERVER = "bench/baseline-server.ts";
export const CONNECT_FLOOR_SERVER = "bench/connect-floor-server.ts";

/** Starts a comparison server; agentsFile: the agents GetAgent answers with (format: see the script). */
export async function startBaseline(
  options: { script?: string; agentsFile?: string; nodeArgs?: string[] } = {},
): Promise<BaselineProcess> {
  const args = [...(options.nodeArgs ?? []), "--import", "tsx", options.script ?? BARE_GRPC_SERVER];
  if (options.agentsFile) args.push("--agents", options.agentsFile);
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "inherit"] });
  const untrack = trackChild(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(untrack);
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("baseline server did not start in 30 s")), 30_000);
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`baseline server exited (${code})`));
    });
  });
  const pid = child.pid!;
  let stopped: Promise<void> | undefined;
  return {
    pid,
    address: `127.0.0.1:${port}`,
    cpuMs: () => cpuMs(pid),
    rssMiB: () => rssMiB(pid),
    stop() {
      stopped ??= (async () => {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      })();
      return stopped;
    },
  };
}
