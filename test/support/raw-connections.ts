/**
 * Raw client connections for the front-door tests: HTTP/2 prefaces and HTTP/1.1 requests
 * written by hand on a socket, closed cleanly, reset or left half-open, and the server's
 * open file descriptors read from /proc. Nothing here shares code with the server.
 */
import { readdirSync, readFileSync } from "node:fs";
import net from "node:net";

/** Where a raw client connects: the TCP port or the agent socket. */
export type Target = { port: number; host?: string } | { socketPath: string };

/** The HTTP/2 client preface and an empty SETTINGS frame. */
export const H2_PREFACE = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

/**
 * How a client leaves: "end" sends FIN and waits for the server's; "reset" sends RST;
 * "half-open" sends FIN and then destroys its own side without waiting.
 */
export type CloseMode = "end" | "reset" | "half-open";

function open(target: Target): net.Socket {
  return "socketPath" in target ? net.connect({ path: target.socketPath }) : net.connect({ port: target.port, host: target.host ?? "127.0.0.1" });
}

/**
 * Opens one connection, writes `hello` (default: the HTTP/2 preface), waits for the
 * server's first bytes (or `waitMs`), then leaves as `mode` says. Resolves once the
 * client's socket is closed (bounded by `waitMs` for "end").
 */
export function touchAndLeave(target: Target, mode: CloseMode, hello: Buffer | string = H2_PREFACE, waitMs = 2000): Promise<void> {
  return new Promise((resolve) => {
    const socket = open(target);
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      // Unix sockets have no RST: a reset there is an abrupt close.
      if (mode === "reset") {
        if ("socketPath" in target) socket.destroy();
        else socket.resetAndDestroy();
      }
      if (mode === "reset") return;
      if (mode === "half-open") {
        socket.end();
        socket.destroy();
      } else {
        socket.end();
        // A server that never closes its side must not hang the test: give up after waitMs.
        setTimeout(() => socket.destroy(), waitMs).unref();
      }
    };
    socket.on("connect", () => socket.write(hello));
    socket.once("data", leave);
    socket.on("data", () => undefined);
    socket.on("error", () => undefined);
    socket.once("close", () => resolve());
    setTimeout(leave, waitMs).unref();
  });
}

/** Runs `count` tasks made by `make`, at most `parallel` at once. */
export async function inParallel(count: number, parallel: number, make: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await make(next++);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
}

/** Open file descriptors of a process (Linux). */
export function fdCount(pid: number | "self" = "self"): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident set size of a process in bytes (Linux). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Polls until fn() holds or timeoutMs passes; returns the last value of fn's measure. */
export async function settle(measure: () => number, ok: (v: number) => boolean, timeoutMs: number): Promise<number> {
  const until = Date.now() + timeoutMs;
  let v = measure();
  while (!ok(v) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    v = measure();
  }
  return v;
}

/** GET /healthz over a fresh HTTP/1.1 connection; the status, or 0 when it failed or took longer than timeoutMs. */
export function healthz(target: Target, timeoutMs = 5000): Promise<number> {
  return new Promise((resolve) => {
    const socket = open(target);
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(0);
    }, timeoutMs);
    socket.on("connect", () => socket.write("GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"));
    socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
    socket.on("error", () => undefined);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0));
    });
  });
}
