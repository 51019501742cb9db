// The package as a user installs it: `npm pack` (which builds dist/), then in an empty
// directory `npm install ./agentorch-*.tgz` (dependencies only: no tsx, no TypeScript) and
// `npx agentorch serve`; the compiled service answers health, and the compiled CLI talks to it.
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/server.js";
import { freePort } from "../support/free-port.js";

const run = promisify(execFile);
const work = mkdtempSync(path.join(tmpdir(), "agentorch-pack-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the packed tarball", () => {
  it("installs with its dependencies only, and `npx agentorch serve` runs the compiled build", async () => {
    await run("npm", ["pack", "--pack-destination", work], { cwd: REPO_ROOT, maxBuffer: 1 << 26 });
    const tarball = readdirSync(work).find((f) => /^agentorch-.*\.tgz$/.test(f));
    expect(tarball).toBeDefined();

    const app = path.join(work, "app");
    mkdirSync(app);
    writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "pack-test", private: true }));
    await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", path.join(work, tarball!)], { cwd: app, maxBuffer: 1 << 26 });
    const installed = path.join(app, "node_modules");
    expect(existsSync(path.join(installed, "agentorch/dist/src/server/main.js"))).toBe(true);
    expect(existsSync(path.join(installed, "agentorch/src"))).toBe(false);
    // No development tools came along: the compiled code needs none.
    for (const dev of ["tsx", "typescript", "vitest", "@bufbuild/buf"]) expect(existsSync(path.join(installed, dev)), dev).toBe(false);

    const port = await freePort();
    // The executable `npx agentorch` runs, started directly so its own exit code is seen.
    const serve = spawn(path.join(installed, ".bin/agentorch"), ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", path.join(work, "data")], {
      cwd: app,
      env: { ...process.env, AGENTORCH_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    serve.stdout.on("data", (d: Buffer) => (log += d.toString()));
    serve.stderr.on("data", (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => serve.once("exit", resolve));
    try {
      const deadline = Date.now() + 30_000;
      while (!log.includes('"msg":"agentorch started"')) {
        if (Date.now() > deadline || serve.exitCode !== null) throw new Error(`serve did not start:\n${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const { stdout } = await run("npx", ["agentorch", "--addr", `127.0.0.1:${port}`, "agents", "ls", "-o", "json"], { cwd: app });
      expect(JSON.parse(stdout)).toEqual(expect.anything());
      const version = await run("npx", ["agentorch", "--version"], { cwd: app });
      expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    } finally {
      serve.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
  }, 600_000);
});
