/**
 * Re-encodes the grpc-message header/trailer the way the gRPC spec says: percent-encode
 * only bytes outside printable ASCII (0x20-0x7E) and "%" itself. connect-es encodes it
 * with encodeURIComponent, which also escapes ":", "/", ",", "?", "=", "@"…; @grpc/grpc-js
 * (and every client built on it) decodes with decodeURI, which leaves exactly those
 * escaped, so a message like "Docker engine unreachable at unix:///var/run/docker.sock"
 * reached Node gRPC clients as "unix%3A%2F%2F%2Fvar%2Frun…". Spec-minimal encoding is
 * decoded the same by every client (grpc-go, grpc-java, grpc-js, connect).
 */
import type { RequestHandler } from "./listener.js";

const HEADER = "grpc-message";

/** The spec's percent-encoding of a status message. */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function reencode(value: unknown): unknown {
  if (typeof value !== "string") return value;
  let decoded: string;
  try {
    decoded = decodeURIComponent(value);
  } catch {
    return value; // not connect's encoding: leave it alone
  }
  return encodeGrpcMessage(decoded);
}

function fixHeaders(headers: unknown): void {
  if (typeof headers !== "object" || headers === null || Array.isArray(headers)) return;
  const h = headers as Record<string, unknown>;
  if (HEADER in h) h[HEADER] = reencode(h[HEADER]);
}

/** Wraps the connect handler so every grpc-message it sends (headers or trailers) is spec-encoded. */
export function withSpecGrpcMessage(handler: RequestHandler): RequestHandler {
  return (req, res) => {
    const patch = res as unknown as { writeHead: (...a: unknown[]) => unknown; addTrailers: (h: unknown) => void };
    const writeHead = patch.writeHead.bind(res);
    const addTrailers = patch.addTrailers.bind(res);
    patch.writeHead = (...args: unknown[]) => {
      for (const a of args) fixHeaders(a);
      return writeHead(...args);
    };
    patch.addTrailers = (headers: unknown) => {
      fixHeaders(headers);
      addTrailers(headers);
    };
    handler(req, res);
  };
}
