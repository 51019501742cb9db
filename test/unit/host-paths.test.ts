/**
 * The service in a container: bind sources are translated from the service's paths to the
 * engine host's (host-paths.ts), without Docker: mountinfo texts as a container and as a
 * host see them, the mounts an inspect reports, a fake engine. The real thing, with the
 * image, is test/e2e/image.test.ts. Also AGENTORCH_HOST_DATA_DIR's parsing.
 */
import type Dockerode from "dockerode";
import { describe, expect, it } from "vitest";
import { isAgentorchError } from "../../src/core/errors.js";
import type { ContainerSpec } from "../../src/core/ports.js";
import type { Engine } from "../../src/backends/docker/engine-call.js";
import { containerIdFromMountinfo, createHostPaths, hostMounts, mapToHost, withHostPaths } from "../../src/backends/docker/host-paths.js";
import { parseDeployConfig } from "../../src/server/config-deploy.js";
import { ConfigError, loadConfig } from "../../src/server/config.js";
import { createTestLogger, type LogLine } from "../fakes/clock-and-logger.js";

const ID = "3f4e1c0a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";

/** /proc/self/mountinfo inside a Docker container (overlay root, the engine's files, a data dir bind). */
const IN_DOCKER = [
  `1190 1012 0:56 / / rw,relatime master:527 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X,upperdir=/var/lib/docker/overlay2/abc/diff`,
  `1191 1190 0:60 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw`,
  `1204 1190 254:0 /srv/agentorch /var/lib/agentorch rw,relatime - ext4 /dev/vda rw`,
  `1205 1190 254:0 /var/lib/docker/containers/${ID}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw`,
  `1206 1190 254:0 /var/lib/docker/containers/${ID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw`,
  `1207 1190 254:0 /var/lib/docker/containers/${ID}/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw`,
  "",
].join("\n");

/** The host's own mountinfo lists the containers' shm mounts under their ids: not a clue. */
const ON_HOST = [
  `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw`,
  `640 22 0:50 / /var/lib/docker/containers/${ID}/mounts/shm rw,nosuid,nodev,noexec,relatime shared:300 - tmpfs shm rw,size=65536k`,
  `641 22 0:51 / /var/lib/docker/overlay2/abc/merged rw,relatime shared:301 - overlay overlay rw`,
  "",
].join("\n");

type InspectMounts = Dockerode.ContainerInspectInfo["Mounts"];

/** An engine whose only container is ours, with these mounts; counts inspects, fails while `down`. */
function fakeEngine(mounts: InspectMounts, opts: { known?: boolean } = {}) {
  const state = { inspects: 0, down: false, lines: [] as LogLine[] };
  const docker = {
    getContainer: (id: string) => ({
      inspect: async () => {
        state.inspects++;
        if (state.down) throw Object.assign(new Error("connect ECONNREFUSED /var/run/docker.sock"), { code: "ECONNREFUSED" });
        if (opts.known === false || id !== ID) throw Object.assign(new Error("no such container"), { statusCode: 404 });
        return { Id: ID, Mounts: mounts, Config: { Hostname: ID.slice(0, 12) } };
      },
    }),
  } as unknown as Dockerode;
  const engine: Engine = { docker, endpoint: "unix:///var/run/docker.sock", logger: createTestLogger(state.lines) };
  return { engine, state };
}

const bind = (Source: string, Destination: string) => ({ Type: "bind", Source, Destination, Mode: "", RW: true, Propagation: "rprivate" });
const MOUNTS = [
  bind("/var/run/docker.sock", "/var/run/docker.sock"),
  bind("/srv/agentorch", "/var/lib/agentorch"),
  { Type: "volume", Name: "agentorch-work", Source: "/var/lib/docker/volumes/agentorch-work/_data", Destination: "/var/lib/agentorch/workspaces", Driver: "local", Mode: "z", RW: true, Propagation: "" },
  { Type: "tmpfs", Source: "", Destination: "/tmp", Mode: "", RW: true, Propagation: "" },
] as InspectMounts;

function spec(workspace: string, socketDir?: string): ContainerSpec {
  return {
    image: "agentorch/busybox:test",
    command: ["true"],
    env: {},
    policy: "container",
    resources: { memoryBytes: 0, cpus: 0, pidsLimit: 0, maxOutputBytes: 0 } as ContainerSpec["resources"],
    workspace: { hostPath: workspace, mountPoint: "/workspace", readOnly: false },
    socketDir,
    labels: { agentId: "a", instanceId: "i" },
  };
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a failure");
}

describe("finding the service's own container", () => {
  it("reads the container id from the engine's /etc/hostname bind (Docker and Podman layouts)", () => {
    expect(containerIdFromMountinfo(IN_DOCKER)).toBe(ID);
    const podman = `900 800 0:40 /containers/storage/overlay-containers/${ID}/userdata/hostname /etc/hostname rw - tmpfs tmpfs rw`;
    expect(containerIdFromMountinfo(podman)).toBe(ID);
    // /var/lib/docker on a file system of its own: the root is relative to it.
    expect(containerIdFromMountinfo(`5 1 8:1 /containers/${ID}/hosts /etc/hosts rw - ext4 /dev/sdb1 rw`)).toBe(ID);
  });

  it("finds none on a host, even though the host's mountinfo names containers", () => {
    expect(containerIdFromMountinfo(ON_HOST)).toBeUndefined();
    expect(containerIdFromMountinfo("")).toBeUndefined();
    // A host whose /etc/hostname is a mount of something else.
    expect(containerIdFromMountinfo("30 22 254:0 /etc/hostname.real /etc/hostname rw - ext4 /dev/vda rw")).toBeUndefined();
  });

  it("keeps the mounts that have a host path: binds and local volumes", () => {
    const nfs = { Type: "volume", Name: "n", Source: "/var/lib/docker/volumes/n/_data", Destination: "/mnt/n", Driver: "nfs-plugin", Mode: "", RW: true, Propagation: "" };
    expect(hostMounts([...MOUNTS, nfs] as InspectMounts)).toEqual([
      { source: "/var/run/docker.sock", destination: "/var/run/docker.sock" },
      { source: "/srv/agentorch", destination: "/var/lib/agentorch" },
      { source: "/var/lib/docker/volumes/agentorch-work/_data", destination: "/var/lib/agentorch/workspaces" },
    ]);
  });
});

describe("mapToHost", () => {
  const mounts = hostMounts(MOUNTS);

  it("maps a path through the deepest mount that holds it", () => {
    expect(mapToHost(mounts, "/var/lib/agentorch/run")).toBe("/srv/agentorch/run");
    expect(mapToHost(mounts, "/var/lib/agentorch")).toBe("/srv/agentorch");
    expect(mapToHost(mounts, "/var/lib/agentorch/workspaces/a-1")).toBe("/var/lib/docker/volumes/agentorch-work/_data/a-1");
    expect(mapToHost(mounts, "/var/lib/agentorch/workspaces-removed/a-1")).toBe("/srv/agentorch/workspaces-removed/a-1");
    expect(mapToHost(mounts, "/var/lib/agentorch/./run/../run")).toBe("/srv/agentorch/run");
  });

  it("matches on path boundaries only, and says when no mount holds the path", () => {
    expect(mapToHost(mounts, "/var/lib/agentorch2/run")).toBeUndefined();
    expect(mapToHost(mounts, "/var/lib")).toBeUndefined();
    expect(mapToHost(mounts, "/tmp/x")).toBeUndefined();
    expect(mapToHost([], "/var/lib/agentorch")).toBeUndefined();
  });
});

describe("createHostPaths", () => {
  it("in a container of the engine: translates the workspace and the socket directory, inspecting once", async () => {
    const { engine, state } = fakeEngine(MOUNTS);
    const paths = createHostPaths(engine, { mountinfo: async () => IN_DOCKER });
    const out = await withHostPaths(spec("/var/lib/agentorch/workspaces/a", "/var/lib/agentorch/run"), paths);
    expect(out.workspace).toEqual({ hostPath: "/var/lib/docker/volumes/agentorch-work/_data/a", mountPoint: "/workspace", readOnly: false });
    expect(out.socketDir).toBe("/srv/agentorch/run");
    expect(await paths.toHost("/var/lib/agentorch/run")).toBe("/srv/agentorch/run");
    expect(state.inspects).toBe(1);
    expect(state.lines.some((l) => l.msg?.includes("translated to host paths"))).toBe(true);
  });

  it("refuses a path on none of the container's mounts (the engine would bind the host's own path)", async () => {
    const { engine } = fakeEngine([bind("/srv/other", "/data")] as InspectMounts);
    const paths = createHostPaths(engine, { mountinfo: async () => IN_DOCKER });
    const err = await failure(paths.toHost("/var/lib/agentorch/workspaces/a"));
    expect(isAgentorchError(err, "failed_precondition")).toBe(true);
    expect(err.message).toContain("/var/lib/agentorch/workspaces/a is inside the service's container 3f4e1c0a9b8d but on none of its mounts");
    expect(err.message).toContain("AGENTORCH_HOST_DATA_DIR");
  });

  it("on a host, passes paths unchanged without asking the engine", async () => {
    const { engine, state } = fakeEngine(MOUNTS);
    const paths = createHostPaths(engine, { mountinfo: async () => ON_HOST });
    const out = await withHostPaths(spec("/var/lib/agentorch/workspaces/a", "/var/lib/agentorch/run"), paths);
    expect(out.workspace.hostPath).toBe("/var/lib/agentorch/workspaces/a");
    expect(out.socketDir).toBe("/var/lib/agentorch/run");
    expect(await withHostPaths(spec("/w"), paths)).toEqual(spec("/w"));
    expect(state.inspects).toBe(0);
  });

  it("in a container the engine does not know (another engine's), passes paths unchanged", async () => {
    const { engine } = fakeEngine(MOUNTS, { known: false });
    const paths = createHostPaths(engine, { mountinfo: async () => IN_DOCKER });
    expect(await paths.toHost("/var/lib/agentorch/run")).toBe("/var/lib/agentorch/run");
  });

  it("asks again after the engine could not be reached (UNAVAILABLE meanwhile)", async () => {
    const { engine, state } = fakeEngine(MOUNTS);
    const paths = createHostPaths(engine, { mountinfo: async () => IN_DOCKER });
    state.down = true;
    const err = await failure(paths.toHost("/var/lib/agentorch/run"));
    expect(isAgentorchError(err, "unavailable")).toBe(true);
    state.down = false;
    expect(await paths.toHost("/var/lib/agentorch/run")).toBe("/srv/agentorch/run");
    expect(state.inspects).toBe(2);
  });

  it("with AGENTORCH_HOST_DATA_DIR: maps the data directory without asking the engine, and nothing else", async () => {
    const { engine, state } = fakeEngine(MOUNTS);
    const paths = createHostPaths(engine, { hostDataDir: { inside: "/var/lib/agentorch", host: "/srv/x" }, mountinfo: async () => IN_DOCKER });
    expect(await paths.toHost("/var/lib/agentorch/workspaces/a")).toBe("/srv/x/workspaces/a");
    const err = await failure(paths.toHost("/elsewhere/w"));
    expect(isAgentorchError(err, "failed_precondition")).toBe(true);
    expect(err.message).toContain("outside the data directory (AGENTORCH_HOST_DATA_DIR maps only that)");
    expect(state.inspects).toBe(0);
  });
});

describe("AGENTORCH_HOST_DATA_DIR", () => {
  it("is optional, absolute and normalised; a bad value fails the start naming it", () => {
    expect(parseDeployConfig({})).toEqual({});
    expect(parseDeployConfig({ AGENTORCH_HOST_DATA_DIR: " " })).toEqual({});
    expect(parseDeployConfig({ AGENTORCH_HOST_DATA_DIR: "/srv//agentorch/" })).toEqual({ hostDataDir: "/srv/agentorch" });
    expect(loadConfig({ AGENTORCH_HOST_DATA_DIR: "/srv/agentorch" }).hostDataDir).toBe("/srv/agentorch");
    expect(loadConfig({}).hostDataDir).toBeUndefined();
    for (const bad of ["srv/agentorch", "/srv/a:b", "/srv/a,b"]) {
      const err = (() => {
        try {
          loadConfig({ AGENTORCH_HOST_DATA_DIR: bad });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe("AGENTORCH_HOST_DATA_DIR");
      expect((err as Error).message).toContain(bad);
    }
  });
});
