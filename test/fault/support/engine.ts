/**
 * The Docker engine a fault suite runs its service against: a private dockerd of its own
 * (test/support/dockerd.ts) whenever one can be run (root, dockerd, unshare), else the
 * machine's engine.
 *
 * Why not the shared engine: the fault suites cycle containers hard (kills, restarts, 64
 * clients starting and stopping), and Debian's docker.io 20.10.24 has libnetwork's
 * getSvcRecords/processEndpointDelete deadlock (moby/moby#46661, fixed upstream in
 * libnetwork#2679): under heavy container churn next to bridge-networked containers, every
 * later start and `docker info` hangs until dockerd is restarted. It happened twice on the
 * shared engine of this machine while these suites and other engineers' ran together. On
 * a private engine a fault run cannot hang the engine other suites use, and theirs cannot
 * hang it. AGENTORCH_FAULT_ENGINE=shared forces the machine's engine.
 */
import type Dockerode from "dockerode";
import { testDocker } from "../../support/docker.js";
import { privateDockerdSupport, startPrivateDockerd } from "../../support/dockerd.js";

export interface FaultEngine {
  /** DOCKER_HOST for the service (undefined: the tests' default engine). */
  dockerHost: string | undefined;
  /** A raw client on the same engine, for looking at containers independently of the service. */
  docker: Dockerode;
  isPrivate: boolean;
  /** Removes a service instance's containers: on the shared engine; a private one takes them along when closed. */
  removeContainersOf(instanceId: string): Promise<void>;
  /** Stops and deletes a private engine (its containers go with it); nothing for the shared one. */
  close(): Promise<void>;
}

/** Starts the engine for one test file (call in beforeAll, close in afterAll). */
export async function faultEngine(): Promise<FaultEngine> {
  const support = privateDockerdSupport();
  if (process.env.AGENTORCH_FAULT_ENGINE !== "shared" && support.ok) {
    const d = await startPrivateDockerd();
    return { dockerHost: d.dockerHost, docker: d.docker, isPrivate: true, removeContainersOf: async () => undefined, close: () => d.destroy() };
  }
  if (process.env.AGENTORCH_FAULT_ENGINE !== "shared") {
    console.warn(`[fault] no private dockerd (${support.ok ? "" : support.why}); using the machine's engine`);
  }
  const docker = testDocker();
  return {
    dockerHost: process.env.DOCKER_HOST || undefined,
    docker,
    isPrivate: false,
    removeContainersOf: (instanceId) => removeInstanceContainers(docker, instanceId),
    close: async () => undefined,
  };
}

/** Force-removes every container labelled with this service instance; gives up after 30 s (a hung engine). */
async function removeInstanceContainers(docker: Dockerode, instanceId: string): Promise<void> {
  const work = (async () => {
    const list = await docker.listContainers({ all: true, filters: { label: [`agentorch.instance=${instanceId}`] } });
    await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  })();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
  clearTimeout(timer);
}

/**
 * Throws a clear error when the engine no longer answers `GET /info` (what the libnetwork
 * deadlock above blocks first), so a hung engine is not mistaken for a fault of agentorch.
 */
export async function assertEngineResponsive(docker: Dockerode, timeoutMs = 15_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<"hung">((resolve) => {
    timer = setTimeout(() => resolve("hung"), timeoutMs);
  });
  try {
    const answer = await Promise.race([docker.info().then(() => "ok" as const), hung]);
    if (answer === "hung") {
      throw new Error(`the Docker engine stopped answering (GET /info took over ${timeoutMs} ms): most likely libnetwork's deadlock (moby/moby#46661) in docker.io 20.10, not a fault of agentorch`);
    }
  } finally {
    clearTimeout(timer);
  }
}
