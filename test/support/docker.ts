/**
 * What Docker-backed tests share: whether an engine answers, the local test image, a
 * describe that skips (loudly, see global-setup.ts) without an engine, and cleanup of
 * every container a run labelled with its own instance id. Tests look at Docker through
 * this raw client, independently of the adapter under test.
 */
import { randomBytes } from "node:crypto";
import Dockerode from "dockerode";
import { describe } from "vitest";

/** The image every Docker test runs (made by scripts/make-test-image.sh; never pulled). */
export const TEST_IMAGE = process.env.AGENTORCH_TEST_IMAGE ?? "agentorch/busybox:test";

const INSTANCE_LABEL = "agentorch.instance";

/** A raw client on the engine the tests use (DOCKER_HOST when set, else the default socket). */
export function testDocker(): Dockerode {
  const host = process.env.DOCKER_HOST;
  if (host === undefined || host === "") return new Dockerode({ socketPath: "/var/run/docker.sock" });
  if (host.startsWith("unix://")) return new Dockerode({ socketPath: host.slice("unix://".length) });
  return new Dockerode();
}

/** The DOCKER_HOST the adapter under test should use (undefined: its default). */
export const TEST_DOCKER_HOST = process.env.DOCKER_HOST || undefined;

/** True when an engine answers a ping within a few seconds. */
export async function dockerAvailable(): Promise<boolean> {
  try {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("ping timed out")), 3_000);
    });
    try {
      await Promise.race([testDocker().ping(), timeout]);
    } finally {
      clearTimeout(timer);
    }
    return true;
  } catch {
    return false;
  }
}

/** Decided once per test file, at import. */
export const DOCKER_AVAILABLE = await dockerAvailable();

/** describe when an engine answers, else describe.skip (global-setup.ts prints why, loudly). */
export const describeDocker: typeof describe = DOCKER_AVAILABLE ? describe : (describe.skip as unknown as typeof describe);

/** A fresh instance id for one test run, so its containers are found and removed by label. */
export function uniqueInstanceId(prefix = "test"): string {
  return `${prefix}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** Every container (running or not) labelled with this instance id. */
export async function containersOf(instanceId: string): Promise<Dockerode.ContainerInfo[]> {
  return testDocker().listContainers({ all: true, filters: { label: [`${INSTANCE_LABEL}=${instanceId}`] } });
}

/** Force-removes every container labelled with this instance id; returns how many it removed. */
export async function removeContainersOf(instanceId: string): Promise<number> {
  const docker = testDocker();
  const found = await containersOf(instanceId);
  await Promise.all(
    found.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch((err: { statusCode?: number }) => {
          if (err.statusCode !== 404 && err.statusCode !== 409) throw err;
        }),
    ),
  );
  return found.length;
}
