/**
 * vitest globalSetup: makes sure Docker-backed tests either run for real or are skipped
 * loudly. In CI (process.env.CI set) an absent engine fails the run: CI must run them.
 * With an engine, the local test image is built when missing (no registry is reachable).
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dockerAvailable, TEST_IMAGE } from "./support/docker.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

let skipped = false;

function warnSkipped(where: string): void {
  const bar = "!".repeat(78);
  console.warn(
    [
      "",
      bar,
      "!!  NO DOCKER ENGINE ANSWERS at " + where,
      "!!  Every test that needs Docker is SKIPPED: the container backend, the",
      "!!  integration and end-to-end suites are NOT being checked by this run.",
      "!!  Start one with: sudo bash scripts/ensure-docker.sh",
      bar,
      "",
    ].join("\n"),
  );
}

export async function setup(): Promise<void> {
  if (!(await dockerAvailable())) {
    const where = process.env.DOCKER_HOST || "unix:///var/run/docker.sock";
    if (process.env.CI) {
      throw new Error(`CI is set but no Docker engine answers at ${where}: the Docker tests must run in CI (start dockerd first, see scripts/ensure-docker.sh)`);
    }
    skipped = true;
    warnSkipped(where);
    return;
  }
  const made = spawnSync("bash", ["scripts/make-test-image.sh"], {
    cwd: ROOT,
    env: { ...process.env, AGENTORCH_TEST_IMAGE: TEST_IMAGE },
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (made.status !== 0) {
    throw new Error(`scripts/make-test-image.sh could not make ${TEST_IMAGE} (exit ${made.status ?? made.signal})`);
  }
}

export function teardown(): void {
  // Said again at the end, where it is not scrolled away. Each suite removes its own containers.
  if (skipped) warnSkipped(process.env.DOCKER_HOST || "unix:///var/run/docker.sock");
}
