/**
 * What to do about EACCES on the engine's unix socket, in terms an operator can act on:
 * the socket's owner, group and mode, and the process's uid and groups. The usual case is
 * the service in a container as a non-root user without the socket's group
 * (`docker run --group-add <gid>`).
 */
import { statSync } from "node:fs";

/** A sentence naming the group to add; never throws (a socket it cannot stat gets a shorter one). */
export function socketAccessHint(socketPath: string): string {
  let st: { uid: number; gid: number; mode: number };
  try {
    st = statSync(socketPath);
  } catch {
    return `permission denied on ${socketPath}`;
  }
  const uid = process.getuid?.() ?? -1;
  const groups = process.getgroups?.() ?? [];
  const socket = `${socketPath} is owned by uid ${st.uid}, group ${st.gid}, mode ${(st.mode & 0o777).toString(8).padStart(3, "0")}`;
  const self = `this process runs as uid ${uid} with groups ${groups.length > 0 ? groups.join(",") : "(none)"}`;
  if (groups.includes(st.gid)) {
    return `permission denied: ${socket}, and ${self}: it has the group already, so the socket's mode or a security module refuses it`;
  }
  return `permission denied: ${socket}, and ${self}: add group ${st.gid} (in a container: docker run --group-add ${st.gid}, compose group_add)`;
}
