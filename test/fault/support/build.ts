/**
 * The compiled service (`npm run build`: tsc to dist/), for fault suites that start the
 * process many times: `node dist/src/server/main.js` starts about twice as fast as
 * `node --import tsx src/server/main.ts` and with less memory, which is what makes a
 * thousand SIGKILL-and-restart rounds fit in a long run. It is also how operators run it
 * (`npm start`).
 *
 * ensureCompiled() runs the incremental build once per test process (a few seconds when
 * nothing changed, about 25 s from scratch here), under a lock directory so that test files
 * running in parallel do not write dist/ at the same time.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, rmdirSync, statSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO_ROOT } from "../../support/server.js";

export const COMPILED_MAIN = path.join(REPO_ROOT, "dist", "src", "server", "main.js");
const LOCK = path.join(REPO_ROOT, "dist", ".build-lock");

let built: Promise<void> | undefined;

/** True once ensureCompiled() has finished in this process. */
export let compiledReady = false;

/** Builds dist/ (incrementally) once per process; resolves when dist/src/server/main.js is current. */
export function ensureCompiled(): Promise<void> {
  built ??= build().then(() => {
    compiledReady = true;
  });
  return built;
}

async function build(): Promise<void> {
  await lock();
  try {
    const tsc = path.join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc");
    const child = spawn(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    if (code !== 0) throw new Error(`npm run build (tsc -p tsconfig.build.json) failed with ${code}:\n${out.slice(-4000)}`);
    if (!existsSync(COMPILED_MAIN)) throw new Error(`the build did not make ${COMPILED_MAIN}`);
  } finally {
    unlock();
  }
}

/** mkdir is atomic: the first test process to make the directory builds; a lock older than 5 minutes is stale. */
async function lock(): Promise<void> {
  mkdirSync(path.dirname(LOCK), { recursive: true });
  for (let waited = 0; ; waited += 200) {
    try {
      mkdirSync(LOCK);
      return;
    } catch {
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > 300_000) rmdirSync(LOCK);
      } catch {
        // gone meanwhile
      }
      if (waited > 600_000) throw new Error(`could not take the build lock ${LOCK}`);
      await sleep(200);
    }
  }
}

function unlock(): void {
  try {
    rmdirSync(LOCK);
  } catch {
    // already gone
  }
}
