/**
 * Runs bench/load-client.ts (the grpc-js load client) in its own process and returns
 * its figures.
 */
import { spawn } from "node:child_process";
import type { LoadResult, LoadSpec } from "../load-client.js";
import { trackChild } from "./cleanup.js";
import { REPO_ROOT } from "./service-process.js";

export function runLoadClient(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "bench/load-client.ts", JSON.stringify(spec)], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    });
    const untrack = trackChild(child);
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.once("exit", (code) => {
      untrack();
      if (code !== 0) return reject(new Error(`load client exited ${code}`));
      try {
        resolve(JSON.parse(out.trim().split("\n").at(-1)!) as LoadResult);
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}
