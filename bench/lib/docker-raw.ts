/**
 * The raw Docker baseline: dockerode create + start with exactly the container options
 * agentorch uses (buildCreateOptions, the defaults the core fills in, a workspace bind
 * mount, a token in the environment), so the only difference measured is agentorch
 * itself. Every container carries the benchmark's own label and is removed by it.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync } from "node:fs";
import path from "node:path";
import Dockerode from "dockerode";
import { buildCreateOptions, LABELS, SOCKET_MOUNT_POINT } from "../../src/backends/docker/container-options.js";
import { validateAgentConfig } from "../../src/core/agent-config.js";
import type { ContainerSpec } from "../../src/core/ports.js";
import { trackLabel } from "./cleanup.js";

/** The label every container a benchmark creates carries (the service's get agentorch.instance). */
export const BENCH_LABEL = "agentorch.bench";

/** The image the benchmarks run (made by scripts/make-test-image.sh). */
export const BENCH_IMAGE = process.env.AGENTORCH_TEST_IMAGE ?? "agentorch/busybox:test";
/** The container user agentorch uses by default. */
export const CONTAINER_USER = process.env.AGENTORCH_CONTAINER_USER ?? "65534:65534";

/** A request the engine has not answered in this long fails the benchmark instead of hanging it. */
const ENGINE_TIMEOUT_MS = 120_000;

/**
 * A client on the engine the service uses (DOCKER_HOST unix:// or the default socket),
 * connecting the way the service's client does: through Node's global HTTP agent, which
 * keeps connections alive and reuses them. Measured here at 16 in flight (96 containers,
 * two rounds or more each): a keep-alive-less agent gave 7.7-8.1 create+starts/s, a
 * separate keep-alive agent 7.1-7.5/s, the global agent 7.9-12.7/s (median 10.8); earlier
 * baselines used the first two and made raw Docker look slower than agentorch.
 */
export function rawDocker(): Dockerode {
  const common = { timeout: ENGINE_TIMEOUT_MS };
  const host = process.env.DOCKER_HOST;
  if (host !== undefined && host.startsWith("unix://")) return new Dockerode({ ...common, socketPath: host.slice("unix://".length) });
  if (host !== undefined && host !== "") return new Dockerode(common);
  return new Dockerode({ ...common, socketPath: "/var/run/docker.sock" });
}

/** True when the engine answers and the benchmark image exists. */
export async function dockerReady(): Promise<{ ok: true } | { ok: false; why: string }> {
  const docker = rawDocker();
  try {
    await docker.ping();
  } catch (err) {
    return { ok: false, why: `no Docker engine answers (${(err as Error).message})` };
  }
  try {
    await docker.getImage(BENCH_IMAGE).inspect();
  } catch {
    return { ok: false, why: `image ${BENCH_IMAGE} is missing (run scripts/make-test-image.sh)` };
  }
  return { ok: true };
}

/** Creates and starts containers the way agentorch would, under one benchmark label. */
export class RawDocker {
  readonly docker = rawDocker();
  /** The value of BENCH_LABEL (and of agentorch.instance) on this baseline's containers. */
  readonly runId = `bench-${process.pid}-${randomBytes(4).toString("hex")}`;
  /** The label (key=value) every container of this baseline carries. */
  readonly label = `${BENCH_LABEL}=${this.runId}`;

  private readonly socketDir: string;

  /** Workspaces and a socket directory (mounted like the service's) are made under root. */
  constructor(private readonly root: string) {
    trackLabel(this.label);
    this.socketDir = path.join(root, "run");
    mkdirSync(this.socketDir, { recursive: true });
  }

  /** The spec AgentService builds for a plain agent (see AgentService.containerSpec): same defaults, mounts, env names. */
  spec(agentId: string, command: string[] = ["sleep", "3600"]): ContainerSpec {
    const config = validateAgentConfig({ agentId, name: agentId, image: BENCH_IMAGE, command });
    const hostPath = path.join(this.root, "workspaces", agentId);
    mkdirSync(hostPath, { recursive: true });
    chmodSync(hostPath, 0o777);
    return {
      image: config.image,
      command: config.command,
      env: {
        AGENTORCH_AGENT_ID: agentId,
        AGENTORCH_TOKEN: randomBytes(32).toString("base64url"),
        AGENTORCH_SOCKET: `${SOCKET_MOUNT_POINT}/agentorch.sock`,
      },
      policy: config.policy,
      resources: config.resources,
      workspace: { hostPath, mountPoint: config.workspace.mountPoint, readOnly: config.workspace.readOnly },
      socketDir: this.socketDir,
      labels: { agentId, instanceId: this.runId },
    };
  }

  /** create + start; resolves with the container id once the engine says it started. */
  async createAndStart(agentId: string): Promise<string> {
    const options = buildCreateOptions(this.spec(agentId), CONTAINER_USER);
    options.Labels = { ...options.Labels, [BENCH_LABEL]: this.runId };
    const container = await this.docker.createContainer(options);
    await container.start();
    return container.id;
  }

  async remove(containerId: string): Promise<void> {
    await this.docker.getContainer(containerId).remove({ force: true, v: true });
  }

  /** Removes every container of this baseline; returns how many. */
  async cleanup(): Promise<number> {
    return removeLabelled(this.docker, this.label);
  }
}

/** Force-removes every container with this label (key=value); returns how many. */
export async function removeLabelled(docker: Dockerode, label: string, concurrency = 16): Promise<number> {
  const found = await docker.listContainers({ all: true, filters: { label: [label] } });
  let next = 0;
  const worker = async () => {
    while (next < found.length) {
      const c = found[next++]!;
      await docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch((err: { statusCode?: number }) => {
          if (err.statusCode !== 404 && err.statusCode !== 409) throw err;
        });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return found.length;
}

/** Removes the containers of an agentorch instance (after the service has stopped). */
export function removeInstance(docker: Dockerode, instanceId: string): Promise<number> {
  return removeLabelled(docker, `${LABELS.instance}=${instanceId}`);
}
