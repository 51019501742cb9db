/**
 * A unix-socket relay between the service and a Docker engine, so a test can cut the
 * service off the engine (every connection dropped, new ones refused) while the engine
 * keeps running and the test changes containers behind the service's back: killed,
 * removed, an orphan added. When the relay is restored, only a reconciliation can tell
 * the service what happened.
 */
import { rmSync } from "node:fs";
import net from "node:net";

export interface EngineProxy {
  /** unix:///…: the DOCKER_HOST to give the service. */
  readonly dockerHost: string;
  /** Drops every open connection and stops listening (the socket file goes: ENOENT). */
  cut(): Promise<void>;
  /** Listens again on the same path. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

/** Starts relaying socketPath -> upstreamSocketPath. */
export async function startEngineProxy(socketPath: string, upstreamSocketPath: string): Promise<EngineProxy> {
  const open = new Set<net.Socket>();
  let server: net.Server | undefined;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      rmSync(socketPath, { force: true });
      const s = net.createServer((client) => {
        const upstream = net.connect({ path: upstreamSocketPath });
        open.add(client);
        open.add(upstream);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          open.delete(client);
          open.delete(upstream);
        };
        client.on("error", drop).on("close", drop);
        upstream.on("error", drop).on("close", drop);
        client.pipe(upstream);
        upstream.pipe(client);
      });
      s.once("error", reject);
      s.listen(socketPath, () => {
        s.off("error", reject);
        server = s;
        resolve();
      });
    });

  const stop = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = undefined;
      for (const sock of open) sock.destroy();
      open.clear();
      if (!s) return resolve();
      s.close(() => resolve());
    });

  await listen();
  return {
    dockerHost: `unix://${socketPath}`,
    cut: stop,
    restore: listen,
    close: async () => {
      await stop();
      rmSync(socketPath, { force: true });
    },
  };
}
