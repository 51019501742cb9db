/** A TCP port on 127.0.0.1 on which nothing listens, for a process the test starts itself. */
import net from "node:net";

/** Binds port 0, reads the port the kernel chose, and closes it again. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}
