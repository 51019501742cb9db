/**
 * Agent workspaces as directories under one root on the host. Containers write into
 * them as an unprivileged uid, and the service later reads files the container named:
 * so every read re-checks, on the file actually opened, that it lies inside the
 * workspace (a container can plant symlinks, FIFOs or swap paths between check and use).
 *
 * Where the service can mount, a workspace with a size limit is a filesystem image
 * mounted on its directory (workspace-mounts.ts); the image lives beside the root, in
 * imagesRoot, as <agent id>.img.
 */
import { constants as FS } from "node:fs";
import { access, chmod, chown, lstat, mkdir, open, readdir, realpath, rename, rm, rmdir, unlink } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { type AgentorchError, invalidArgument } from "../core/errors.js";
import type { Logger, WorkspaceOptions, Workspaces } from "../core/ports.js";
import { cannotEnforce, makeImage, mountAt, mountImage, mountNoexecBind, unmount, type WorkspaceQuotaMode } from "./workspace-mounts.js";

export interface FsWorkspacesOptions {
  /** Directory holding one sub-directory per agent. Created when missing. */
  root: string;
  /** Where workspaces kept by RemoveAgent go (as <id>-<time>); default: root's sibling "workspaces-removed". */
  removedRoot?: string;
  /** Where workspace images go; default: root's sibling "workspace-images". */
  imagesRoot?: string;
  /** "uid:gid" of the container's user, who must be able to write the workspace. */
  containerUser: string;
  /** Which workspaces are size-limited images (see WorkspaceQuotaMode). Default "asked". */
  quota?: WorkspaceQuotaMode;
  logger: Logger;
}

function parseUser(user: string): { uid: number; gid: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(user.trim());
  if (!m) throw new Error(`containerUser must be numeric "uid:gid" (got "${user}")`);
  const uid = Number(m[1]);
  return { uid, gid: m[2] === undefined ? uid : Number(m[2]) };
}

/** True when child is dir itself or below it (both absolute and normalised). */
function isInside(dir: string, child: string): boolean {
  const rel = relative(dir, child);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel) && rel.split(sep)[0] !== "..");
}

const isMissing = (err: unknown): boolean =>
  typeof err === "object" && err !== null && ["ENOENT", "ENOTDIR"].includes((err as { code?: string }).code ?? "");

const exists = (path: string) => access(path).then(() => true, () => false);

/** Creates the workspace adapter; nothing touches the disk until the first call. */
export function createFsWorkspaces(options: FsWorkspacesOptions): Workspaces {
  const root = resolve(options.root);
  const removedRoot = resolve(options.removedRoot ?? join(dirname(root), "workspaces-removed"));
  const imagesRoot = resolve(options.imagesRoot ?? join(dirname(root), "workspace-images"));
  const owner = parseUser(options.containerUser);
  const log = options.logger.child({ component: "workspaces" });
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const quota = options.quota ?? "asked";
  let warnedNotRoot = false;
  /** Why size limits cannot be enforced here (undefined: they can); probed once, on first need. */
  let quotaProbe: Promise<string | undefined> | undefined;
  /** One create/remove at a time per agent: two would mount twice. */
  const busy = new Map<string, Promise<unknown>>();

  function serial<T>(agentId: string, work: () => Promise<T>): Promise<T> {
    const next = (busy.get(agentId) ?? Promise.resolve()).catch(() => undefined).then(work);
    busy.set(agentId, next);
    void next.finally(() => busy.get(agentId) === next && busy.delete(agentId)).catch(() => undefined);
    return next;
  }

  const imageOf = (agentId: string) => join(imagesRoot, `${agentId}.img`);

  /** Makes, mounts and removes a tiny image: the proof that this process may mount. */
  async function probeQuota(): Promise<string | undefined> {
    if (quota === "off") return "workspace size limits are off (AGENTORCH_WORKSPACE_QUOTA=off)";
    if (!asRoot) return "the service does not run as root, so it cannot mount workspace images";
    const image = join(imagesRoot, `.probe-${process.pid}.img`);
    const dir = join(imagesRoot, `.probe-${process.pid}`);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await makeImage(image, 1024 * 1024, owner);
      await mountImage(image, dir, false);
      await unmount(dir);
      return undefined;
    } catch (err) {
      return `mounting a workspace image failed (${(err as Error).message})`;
    } finally {
      await rm(image, { force: true }).catch(() => undefined);
      await rmdir(dir).catch(() => undefined);
    }
  }

  /** Why a size limit cannot be enforced, or undefined; said once in the log. */
  function quotaUnsupported(): Promise<string | undefined> {
    quotaProbe ??= (async () => {
      await mkdir(imagesRoot, { recursive: true, mode: 0o700 });
      const why = await probeQuota();
      if (why) log.warn({ why }, "workspace size limits cannot be enforced: registrations that need one are refused (AGENTORCH_WORKSPACE_QUOTA)");
      else log.info({ imagesRoot, quota }, "workspaces with a size limit are filesystem images");
      return why;
    })();
    return quotaProbe;
  }

  /** Mounts the workspace as the options ask, when it is not mounted already (after a reboot, or new). */
  async function ready(agentId: string, dir: string, want: WorkspaceOptions): Promise<void> {
    if (await mountAt(dir)) return;
    const image = imageOf(agentId);
    if (await exists(image)) return mountImage(image, dir, want.noexec);
    // A workspace made without a limit (or before limits existed) stays a plain directory:
    // a limit is given at registration only, to an empty workspace.
    const isNew = (await readdir(dir)).length === 0;
    const limited = isNew && (want.sizeAsked || quota === "all");
    const why = limited ? await quotaUnsupported() : undefined;
    if (limited && why !== undefined) throw cannotEnforce("resources.disk_bytes (a workspace size limit)", why, agentId);
    if (limited) {
      await makeImage(image, want.sizeBytes, owner);
      await mountImage(image, dir, want.noexec).catch(async (err: unknown) => {
        await rm(image, { force: true });
        throw err;
      });
      // mkfs's lost+found would show in the agent's workspace (and its git status); fsck remakes it when needed.
      await rmdir(join(dir, "lost+found")).catch(() => undefined);
      log.debug({ agentId, sizeBytes: want.sizeBytes, noexec: want.noexec }, "workspace image mounted");
      return;
    }
    if (!want.noexec) return;
    if (!asRoot) throw cannotEnforce("workspace.noexec", "the service does not run as root, so it cannot mount", agentId);
    await mountNoexecBind(dir).catch((err: unknown) => {
      throw cannotEnforce("workspace.noexec", (err as Error).message, agentId);
    });
  }

  /** Creates the directory (and mounts it as asked), writable by the container's user. */
  async function prepare(agentId: string, dir: string, want: WorkspaceOptions | undefined): Promise<string> {
    await mkdir(dir, { recursive: true, mode: 0o750 });
    if (want) await ready(agentId, dir, want);
    if (asRoot) {
      await chown(dir, owner.uid, owner.gid);
      await chmod(dir, 0o750);
    } else if (process.getuid?.() === owner.uid) {
      // Containers run as the service's own uid (the image's default): the directory is
      // theirs already, and what they make in it the service can delete.
      await chmod(dir, 0o750);
    } else {
      // Not root: we cannot give the directory to the container's uid, so open it to all.
      await chmod(dir, 0o777);
      if (!warnedNotRoot) {
        warnedNotRoot = true;
        log.warn(
          { root, containerUser: options.containerUser },
          "not running as root: workspaces are made world-writable (mode 0777) so the container user can write them",
        );
      }
    }
    log.debug({ agentId, dir }, "workspace ready");
    return dir;
  }

  /** Unmounts the workspace if mounted; the image stays. */
  async function release(dir: string): Promise<void> {
    if (await mountAt(dir)) await unmount(dir);
  }

  function dirOf(agentId: string): string {
    if (agentId === "" || agentId.includes("/") || agentId.includes("\\") || agentId.includes("..") || agentId.includes("\0")) {
      throw invalidArgument(`invalid agent id for a workspace: "${agentId}"`, { field: "agent_id" });
    }
    return join(root, agentId);
  }

  /** The lexical target of a relative path, refused when it is absolute or climbs out. */
  function target(agentId: string, relativePath: string): { dir: string; path: string } {
    const dir = dirOf(agentId);
    if (relativePath === "" || isAbsolute(relativePath) || relativePath.includes("\0")) {
      throw invalidArgument(`path "${relativePath}" must be relative to the workspace`, { agentId, field: "path" });
    }
    const path = resolve(dir, relativePath);
    if (!isInside(dir, path) || path === dir) {
      throw invalidArgument(`path "${relativePath}" leaves the workspace`, { agentId, field: "path" });
    }
    return { dir, path };
  }

  function escaped(agentId: string, relativePath: string): AgentorchError {
    return invalidArgument(`path "${relativePath}" resolves outside the workspace`, { agentId, field: "path" });
  }

  return {
    async create(agentId, want) {
      const dir = dirOf(agentId);
      return serial(agentId, () => prepare(agentId, dir, want));
    },

    async remove(agentId) {
      const dir = dirOf(agentId);
      await serial(agentId, async () => {
        await release(dir);
        await rm(dir, { recursive: true, force: true });
        await rm(imageOf(agentId), { force: true });
      });
      log.debug({ agentId, dir }, "workspace removed");
    },

    async setAside(agentId) {
      const dir = dirOf(agentId);
      return serial(agentId, async () => {
        await mkdir(removedRoot, { recursive: true, mode: 0o700 });
        const kept = join(removedRoot, `${agentId}-${new Date().toISOString().replace(/[:.]/g, "")}`);
        await release(dir);
        // An image is kept as the image (loop-mount it to look inside); the empty mount point goes.
        if (await exists(imageOf(agentId))) {
          await rename(imageOf(agentId), `${kept}.img`);
          await rm(dir, { recursive: true, force: true });
          log.info({ agentId, kept: `${kept}.img` }, "workspace image kept aside");
          return `${kept}.img`;
        }
        try {
          await rename(dir, kept);
        } catch (err) {
          if (isMissing(err)) return undefined;
          throw err;
        }
        log.info({ agentId, kept }, "workspace kept aside");
        return kept;
      });
    },

    async list() {
      const names = async (dir: string, dirs: boolean) => {
        try {
          return (await readdir(dir, { withFileTypes: true }))
            .filter((e) => (dirs ? e.isDirectory() : e.isFile() && e.name.endsWith(".img") && !e.name.startsWith(".")))
            .map((e) => (dirs ? e.name : e.name.slice(0, -4)));
        } catch (err) {
          if (isMissing(err)) return [];
          throw err;
        }
      };
      return [...new Set([...(await names(root, true)), ...(await names(imagesRoot, false))])];
    },

    async readFile(agentId, relativePath, maxBytes) {
      const { dir, path } = target(agentId, relativePath);
      let realDir: string;
      let realPath: string;
      try {
        realDir = await realpath(dir);
        realPath = await realpath(path);
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw err;
      }
      if (!isInside(realDir, realPath)) throw escaped(agentId, relativePath);
      // O_NONBLOCK: a FIFO planted by the container must not hang us; it is refused below.
      const handle = await open(realPath, FS.O_RDONLY | FS.O_NONBLOCK | FS.O_NOFOLLOW).catch((err: unknown) => {
        if (isMissing(err)) return undefined;
        if ((err as { code?: string }).code === "ELOOP") throw escaped(agentId, relativePath);
        throw err;
      });
      if (handle === undefined) return undefined;
      try {
        // Check what was actually opened: the path may have been swapped after realpath.
        const opened = await realpath(`/proc/self/fd/${handle.fd}`).catch(() => realPath);
        if (!isInside(realDir, opened)) throw escaped(agentId, relativePath);
        const stat = await handle.stat();
        if (!stat.isFile()) throw invalidArgument(`path "${relativePath}" is not a regular file`, { agentId, field: "path" });
        const size = Math.max(0, Math.min(maxBytes, stat.size));
        const buffer = Buffer.alloc(size);
        let read = 0;
        while (read < size) {
          const { bytesRead } = await handle.read(buffer, read, size - read, read);
          if (bytesRead === 0) break;
          read += bytesRead;
        }
        return new Uint8Array(buffer.buffer, buffer.byteOffset, read);
      } finally {
        await handle.close();
      }
    },

    async removeFile(agentId, relativePath) {
      const { dir, path } = target(agentId, relativePath);
      let realDir: string;
      let realParent: string;
      try {
        realDir = await realpath(dir);
        realParent = await realpath(resolve(path, ".."));
      } catch (err) {
        if (isMissing(err)) return;
        throw err;
      }
      if (!isInside(realDir, realParent)) throw escaped(agentId, relativePath);
      const final = join(realParent, basename(path));
      try {
        // unlink removes a symlink itself, never what it points to.
        if ((await lstat(final)).isDirectory()) {
          throw invalidArgument(`path "${relativePath}" is a directory`, { agentId, field: "path" });
        }
        await unlink(final);
      } catch (err) {
        if (isMissing(err)) return;
        throw err;
      }
    },
  };
}
