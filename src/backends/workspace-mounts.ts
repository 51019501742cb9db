/**
 * Size limits and noexec for workspaces, where the service may mount (it runs as root).
 *
 * A workspace with a size limit is an ext4 filesystem in a sparse image file, loop-mounted
 * on the workspace directory: nodev and nosuid always, noexec when asked, and discard so
 * that files deleted inside give their space back to the host. The engine's bind mount of
 * the directory into the container inherits these flags, and a write past the size fails
 * with ENOSPC inside the agent, never filling the data directory's filesystem.
 *
 * Why loop images: an XFS project quota needs the data directory on XFS mounted with
 * prjquota, which an operator rarely has; a tmpfs does not survive a stop and spends RAM;
 * a Docker volume of the local driver cannot loop-mount. Measured here (ext4 on a virtio
 * disk): mkfs 40-230 ms and mount ~180 ms per workspace, paid at registration only; a 10 GiB
 * image takes ~4 MiB of the host's disk until files are written. That cost is why only the
 * agents that ask get one unless the admin says "all" (AGENTORCH_WORKSPACE_QUOTA).
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { failedPrecondition, resourceExhausted } from "../core/errors.js";

/**
 * AGENTORCH_WORKSPACE_QUOTA: which workspaces are size-limited images. "asked": those of
 * agents that set resources.disk_bytes; "all": every one (0 is then the admin's ceiling);
 * "off": none (asking for a size is refused).
 */
export type WorkspaceQuotaMode = "asked" | "all" | "off";

/** A mount at a path, from /proc/self/mountinfo. */
export interface MountEntry {
  options: string[];
}

const TOOL_PATH = `${process.env.PATH ?? ""}:/usr/sbin:/sbin:/usr/bin:/bin`;
const COMMAND_TIMEOUT_MS = 60_000;

/** Runs a mount tool; resolves with its stdout, rejects with its stderr. */
export function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: { ...process.env, PATH: TOOL_PATH }, timeout: COMMAND_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(" ")}: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

/** Decodes mountinfo's octal escapes (\040 for a space, …). */
const unescape = (field: string) => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

/** The topmost mount at exactly this path, or undefined when the path is not a mount point. */
export async function mountAt(path: string): Promise<MountEntry | undefined> {
  const text = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  let found: MountEntry | undefined;
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    if (fields.length > 5 && unescape(fields[4]!) === path) found = { options: fields[5]!.split(",") };
  }
  return found;
}

/** Makes a sparse ext4 image of sizeBytes whose root directory belongs to owner. */
export async function makeImage(image: string, sizeBytes: number, owner: { uid: number; gid: number }): Promise<void> {
  try {
    await run("truncate", ["-s", String(sizeBytes), image]);
    // lazy_*_init: nothing is zeroed up front (the image stays sparse, mkfs stays fast);
    // -m 0: no blocks reserved for root, the agent gets the size it asked for.
    await run("mkfs.ext4", ["-q", "-F", "-m", "0", "-E", `lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=${owner.uid}:${owner.gid}`, image]);
  } catch (err) {
    await run("rm", ["-f", image]).catch(() => undefined);
    if (/No space left/i.test(String(err))) {
      throw resourceExhausted("no space left on the data directory's filesystem for the workspace image", { reason: "DATA_DIR_FULL" });
    }
    throw err;
  }
}

const BASE_OPTIONS = ["nodev", "nosuid"];

/** The loop devices the image is attached to now (losetup -j). */
async function loopDevicesOf(image: string): Promise<string[]> {
  const out = await run("losetup", ["-j", image]).catch(() => "");
  return out
    .split("\n")
    .map((line) => /^(\/dev\/loop\d+):/.exec(line)?.[1])
    .filter((d): d is string => d !== undefined);
}

/**
 * Loop-mounts an image on dir. An image still attached (a container that just exited can
 * hold its mount a moment longer than our own was there) is mounted through that same loop
 * device: a second loop device would make a second ext4 instance on the same file, which
 * reads stale blocks (seen: a file the agent had just written read back empty) and
 * corrupts the image when both write.
 */
export async function mountImage(image: string, dir: string, noexec: boolean): Promise<void> {
  const options = ["discard", ...BASE_OPTIONS, ...(noexec ? ["noexec"] : [])];
  const [device] = await loopDevicesOf(image);
  if (device === undefined) {
    await run("mount", ["-t", "ext4", "-o", ["loop", ...options].join(","), image, dir]);
    return;
  }
  await run("mount", ["-t", "ext4", "-o", options.join(","), device, dir]);
  // The device may have been released and reused between the look and the mount.
  if (!(await loopDevicesOf(image)).includes(device)) {
    await unmount(dir);
    throw new Error(`loop device ${device} of ${image} changed while it was being mounted; try again`);
  }
}

/** Bind-mounts dir on itself with noexec (a bind takes new flags only on a remount). */
export async function mountNoexecBind(dir: string): Promise<void> {
  await run("mount", ["--bind", dir, dir]);
  try {
    await run("mount", ["-o", ["remount", "bind", ...BASE_OPTIONS, "noexec"].join(","), dir]);
  } catch (err) {
    await unmount(dir).catch(() => undefined);
    throw err;
  }
}

/** Unmounts everything mounted at dir; lazily when still busy (a container on its way out). */
export async function unmount(dir: string): Promise<void> {
  // Stacked mounts (a bind over a loop mount) come off one at a time.
  for (let i = 0; i < 4 && (await mountAt(dir)); i++) {
    await run("umount", [dir]).catch(() => run("umount", ["-l", dir]));
  }
  if (await mountAt(dir)) throw new Error(`${dir} is still mounted`);
}

/** FAILED_PRECONDITION for an agent that asks what this server cannot enforce. */
export function cannotEnforce(what: string, why: string, agentId: string) {
  return failedPrecondition(`${what} cannot be enforced on this server: ${why}`, { agentId, reason: "WORKSPACE_LIMIT_UNSUPPORTED" });
}
