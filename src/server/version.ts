/**
 * The service's version, sent with every response as the `agentorch-version` header (an
 * RPC's, an error's, a refused call's alike), so a client learns it from any call it makes:
 * `agentorch version` reads it from a health check.
 */
import { readFileSync } from "node:fs";
import type { RequestHandler } from "./listener.js";

/** The response header that carries the version. */
export const VERSION_HEADER = "agentorch-version";

/** The package's version: package.json is two levels up from src/server, three from dist/src/server. */
export function serverVersion(): string {
  for (const up of ["../../package.json", "../../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "agentorch") return pkg.version ?? "unknown";
    } catch {
      // not there: try the next
    }
  }
  return "unknown";
}

/** Sets the version header on every response of handler. */
export function withVersionHeader(handler: RequestHandler, version: string = serverVersion()): RequestHandler {
  return (req, res) => {
    res.setHeader(VERSION_HEADER, version);
    return handler(req, res);
  };
}
