/**
 * Agent workspaces as directories under one root on the host. Containers write into
 * them as an unprivileged uid, and the service later reads files the container named:
 * so every read re-checks, on the file actually opened, that it lies inside the
 * workspace (a container can plant symlinks, FIFOs or swap paths between check and use).
 */
import { constants as FS } from "node:fs";
import { chmod, chown, lstat, mkdir, open, readdir, realpath, rename, rm, unlink } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { type AgentorchError, invalidArgument } from "../core/errors.js";
import type { Logger, Workspaces } from "../core/ports.js";

export interface FsWorkspacesOptions {
  /** Directory holding one sub-directory per agent. Created when missing. */
  root: string;
  /** Where workspaces kept by RemoveAgent go (as <id>-<time>); default: root's sibling "workspaces-removed". */
  removedRoot?: string;
  /** "uid:gid" of the container's user, who must be able to write the workspace. */
  containerUser: string;
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

/** Creates the workspace adapter; nothing touches the disk until the first call. */
export function createFsWorkspaces(options: FsWorkspacesOptions): Workspaces {
  const root = resolve(options.root);
  const removedRoot = resolve(options.removedRoot ?? join(dirname(root), "workspaces-removed"));
  const owner = parseUser(options.containerUser);
  const log = options.logger.child({ component: "workspaces" });
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
  let warnedNotRoot = false;

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
    async create(agentId) {
      const dir = dirOf(agentId);
      await mkdir(dir, { recursive: true, mode: 0o750 });
      if (asRoot) {
        await chown(dir, owner.uid, owner.gid);
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
    },

    async remove(agentId) {
      const dir = dirOf(agentId);
      await rm(dir, { recursive: true, force: true });
      log.debug({ agentId, dir }, "workspace removed");
    },

    async setAside(agentId) {
      const dir = dirOf(agentId);
      await mkdir(removedRoot, { recursive: true, mode: 0o700 });
      const kept = join(removedRoot, `${agentId}-${new Date().toISOString().replace(/[:.]/g, "")}`);
      try {
        await rename(dir, kept);
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw err;
      }
      log.info({ agentId, kept }, "workspace kept aside");
      return kept;
    },

    async list() {
      try {
        return (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
      } catch (err) {
        if (isMissing(err)) return [];
        throw err;
      }
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
