/** Starting a listener's socket: a TCP address, or a unix socket path made ready first (see listener.ts). */
import { chmod, lstat, mkdir, unlink } from "node:fs/promises";
import net from "node:net";
import path from "node:path";

/**
 * Makes a unix socket path usable: its directory created 0755 (an existing one is left as
 * it is), a stale socket file removed; anything else there, or a socket that answers, is
 * refused.
 */
export async function prepareSocketPath(socketPath: string): Promise<void> {
  const dir = path.dirname(socketPath);
  // A directory we create is 0755 whatever the umask; an existing one is left as it is.
  if ((await mkdir(dir, { recursive: true, mode: 0o755 })) !== undefined) await chmod(dir, 0o755);
  const st = await lstat(socketPath).catch(() => undefined);
  if (st === undefined) return;
  if (!st.isSocket()) throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
  if (await socketAnswers(socketPath)) throw new Error(`${socketPath} is in use by another process`);
  await unlink(socketPath);
}

/** server.listen as a promise: resolves once listening, rejects with the listen error. */
export function listenOn(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen(options, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

/** True when something accepts connections on the unix socket (so it is not stale). */
function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect({ path: socketPath });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}
