/**
 * HTTP/1.1 requests answered before their body was read: the answer closes the connection
 * (see answerEarlyWithClose). Kept apart from the listener, which calls it for every
 * HTTP/1.1 request.
 */
import type http from "node:http";

/** After the FIN that ends an HTTP/1.1 connection answered early, how long what the client still sends is read and dropped. */
const LINGER_MS = 5000;

/**
 * An HTTP/1.1 request answered before its body was read (refused as too large, a bad
 * envelope, a body that did not arrive in time) leaves its connection unusable: the client
 * would first have to finish sending a body nobody reads. So the answer says "Connection:
 * close", and the connection is closed as nginx's lingering close does it: FIN after the
 * answer, then what the client still sends is read and dropped for a moment (LINGER_MS) or
 * until it closes its side. Closing at once would reset the connection with body bytes
 * unread, and a reset makes the client's kernel drop an answer its program had not read yet
 * (seen with clients busy elsewhere: "socket hang up" / ECONNRESET instead of the status).
 */
export function answerEarlyWithClose(req: http.IncomingMessage, res: http.ServerResponse): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: http.ServerResponse, ...args: unknown[]) {
    if (bodyStillExpected(req)) {
      this.shouldKeepAlive = false;
      req.socket.destroySoon = () => lingeringClose(req);
    }
    return (writeHead as (...a: unknown[]) => http.ServerResponse).apply(this, args);
  } as typeof res.writeHead;
}

/** A body was announced and has not all been read (a bodyless request is "complete" only after its handler ran). */
function bodyStillExpected(req: http.IncomingMessage): boolean {
  if (req.complete) return false;
  return req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
}

function lingeringClose(req: http.IncomingMessage): void {
  const socket = req.socket;
  if (socket.destroyed) return;
  // The rest of the body is read and dropped. A reader that gave up (an async iterator left
  // mid-body) keeps its "readable" listener, and while one is there resume() does nothing.
  req.removeAllListeners("readable");
  setImmediate(() => req.on("data", () => undefined).resume());
  socket.end();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once("end", () => socket.destroy()); // the client closed its side: nothing more to drop
  socket.once("close", () => clearTimeout(timer));
}
