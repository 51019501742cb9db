/**
 * Bind mounts name paths on the engine's host, not in the service's file system. When the
 * service runs in a container beside the engine it drives, its data directory (workspaces,
 * the agent socket) is itself a mount from the host, often at another path: /srv/agentorch
 * on the host is /var/lib/agentorch inside. Every bind source handed to the engine goes
 * through here first, and comes out as the host's path of the same file.
 *
 * How the mapping is found, once: AGENTORCH_HOST_DATA_DIR when set (the data directory's
 * path on the host); else the service asks the engine for its own container (its id from
 * /proc/self/mountinfo, where the engine's /etc/hostname bind names it) and maps each bind
 * or local volume mount's destination to its source. Outside a container, or in one this
 * engine does not know, paths pass unchanged.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import type Dockerode from "dockerode";
import { AgentorchError } from "../../core/errors.js";
import type { ContainerSpec } from "../../core/ports.js";
import { isNotFound } from "./docker-errors.js";
import { type Engine, traced } from "./engine-call.js";

/** One mount of the service's container: `destination` inside is `source` on the host. */
export interface HostMount {
  source: string;
  destination: string;
}

/** Paths of the service's file system as the engine's host sees them. */
export interface HostPaths {
  /** The host path of `p`; a failed_precondition error when `p` is on no mount from the host. */
  toHost(p: string, signal?: AbortSignal): Promise<string>;
}

export interface HostPathOptions {
  /** AGENTORCH_HOST_DATA_DIR: the data directory's path on the host (no inspection then). */
  hostDataDir?: { inside: string; host: string };
  /** Tests: reads the text of /proc/self/mountinfo. */
  mountinfo?: () => Promise<string>;
}

const CONTAINER_FILES = new Set(["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]);
/** Docker: .../containers/<id>/hostname; Podman: .../overlay-containers/<id>/userdata/hostname. */
const CONTAINER_FILE_ROOT = /([0-9a-f]{64})(?:\/userdata)?\/(?:hostname|hosts|resolv\.conf)$/;

/**
 * The id of the container this process runs in, from the text of /proc/self/mountinfo: the
 * engine bind-mounts its own files on /etc/hostname (and hosts, resolv.conf) from a
 * directory named by the container's id. On a host, no such mount sits on /etc/hostname.
 */
export function containerIdFromMountinfo(text: string): string | undefined {
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const root = f[3];
    if (root === undefined || !CONTAINER_FILES.has(f[4] ?? "")) continue;
    const m = CONTAINER_FILE_ROOT.exec(root);
    if (m) return m[1];
  }
  return undefined;
}

/** The mounts of an inspected container that have a host path: binds, and volumes of the local driver. */
export function hostMounts(mounts: readonly Pick<Dockerode.ContainerInspectInfo["Mounts"][number], "Type" | "Source" | "Destination" | "Driver">[]): HostMount[] {
  return mounts
    .filter((m) => m.Type === "bind" || (m.Type === "volume" && (m.Driver ?? "local") === "local"))
    .filter((m) => path.isAbsolute(m.Source ?? "") && path.isAbsolute(m.Destination ?? ""))
    .map((m) => ({ source: path.normalize(m.Source), destination: path.normalize(m.Destination) }));
}

/**
 * The host path of `p` through the deepest mount that holds it (a workspaces volume mounted
 * inside the data directory's wins over the data directory's own), or undefined.
 */
export function mapToHost(mounts: readonly HostMount[], p: string): string | undefined {
  const target = path.resolve(p);
  let best: HostMount | undefined;
  for (const m of mounts) {
    const rel = path.relative(m.destination, target);
    const inside = rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
    if (inside && (best === undefined || m.destination.length > best.destination.length)) best = m;
  }
  if (best === undefined) return undefined;
  return path.join(best.source, path.relative(best.destination, target));
}

/** Where the mapping comes from: the service's container, or none (identity). */
interface Mapping {
  containerId?: string;
  mounts?: HostMount[];
}

const readMountinfo = () => readFile("/proc/self/mountinfo", "utf8").catch(() => "");

/** Creates the translation for one engine; finds the mapping on first use and keeps it. */
export function createHostPaths(engine: Engine, options: HostPathOptions = {}): HostPaths {
  const log = engine.logger.child({ component: "host-paths" });
  const override = options.hostDataDir;
  if (override !== undefined) {
    const mounts = [{ source: path.resolve(override.host), destination: path.resolve(override.inside) }];
    log.info({ dataDir: mounts[0]!.destination, hostDataDir: mounts[0]!.source }, "bind sources under the data directory are passed as host paths (AGENTORCH_HOST_DATA_DIR)");
    return { toHost: async (p) => translate({ mounts }, p, "AGENTORCH_HOST_DATA_DIR") };
  }
  const mountinfo = options.mountinfo ?? readMountinfo;
  let found: Promise<Mapping> | undefined;

  const discover = (signal?: AbortSignal): Promise<Mapping> =>
    traced(engine, "own-container", {}, async () => {
      const id = containerIdFromMountinfo(await mountinfo());
      if (id === undefined) {
        log.debug({}, "not in a container: bind sources are passed as they are");
        return {};
      }
      let raw: Dockerode.ContainerInspectInfo;
      try {
        raw = await engine.docker.getContainer(id).inspect({ abortSignal: signal });
      } catch (err) {
        if (!isNotFound(err)) throw err;
        log.info({ containerId: id, engine: engine.endpoint }, "in a container this engine does not know: bind sources are passed as they are (set AGENTORCH_HOST_DATA_DIR if they need translating)");
        return {};
      }
      const mounts = hostMounts(raw.Mounts ?? []);
      log.info({ containerId: id, mounts: mounts.map((m) => `${m.destination} -> ${m.source}`) }, "in a container of this engine: bind sources are translated to host paths");
      return { containerId: id, mounts };
    });

  return {
    async toHost(p, signal) {
      // Kept once found; an engine that could not be asked is asked again next time.
      found ??= discover(signal).catch((err: unknown) => {
        found = undefined;
        throw err;
      });
      return translate(await found, p);
    },
  };
}

function translate(mapping: Mapping, p: string, setting?: string): string {
  if (mapping.mounts === undefined) return p;
  const host = mapToHost(mapping.mounts, p);
  if (host !== undefined) return host;
  const where = setting !== undefined ? `outside the data directory (${setting} maps only that)` : `inside the service's container ${mapping.containerId?.slice(0, 12)} but on none of its mounts from the host`;
  throw new AgentorchError(
    "failed_precondition",
    `${p} is ${where}, so the Docker engine cannot bind-mount it into an agent's container: mount the data directory from the host (docker run -v /srv/agentorch:/var/lib/agentorch), or set AGENTORCH_HOST_DATA_DIR to its host path`,
  );
}

/** The spec with its bind sources (workspace, agent socket directory) as host paths. */
export async function withHostPaths(spec: ContainerSpec, paths: HostPaths, signal?: AbortSignal): Promise<ContainerSpec> {
  const workspace = { ...spec.workspace, hostPath: await paths.toHost(spec.workspace.hostPath, signal) };
  const socketDir = spec.socketDir ? await paths.toHost(spec.socketDir, signal) : spec.socketDir;
  return { ...spec, workspace, socketDir };
}
