/**
 * `agentorch version`: the client's version and the server's, as `docker version` and
 * `kubectl version` show them. The service sends its version with every response (the
 * agentorch-version header); the CLI reads it from a health check, the cheapest call.
 * With no server at the address, the client's version is printed and the command fails
 * as every other does (one line on stderr, exit 6); --client never connects.
 */
import { readFileSync } from "node:fs";
import { ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import { contextOf } from "./context.js";
import { parseFormat, printDocument, useStructuredFormat } from "./output.js";

/** The header the service sets on every response (src/server/version.ts). */
export const VERSION_HEADER = "agentorch-version";

/** The package's version: its package.json is two levels up from src/cli, three from dist/src/cli. */
export function clientVersion(): string {
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

/** Adds `version` to the root. */
export function addVersionCommand(root: Command): void {
  root
    .command("version")
    .description("print the client's and the server's versions, and the server's address")
    .option("--client", "only the client's version (no connection)")
    .addHelpText("after", "\nWith no server at the address: the client's version, then the usual error (exit 6).")
    .action(async (o: { client?: boolean }, cmd: Command) => {
      const client = clientVersion();
      if (o.client) {
        const format = parseFormat(cmd.optsWithGlobals<{ output: string }>().output);
        if (format === "json" || format === "yaml") {
          useStructuredFormat(format);
          printDocument({ client });
        } else process.stdout.write(`client: ${client}\n`);
        return;
      }
      const ctx = contextOf(cmd);
      if (!ctx.json) process.stdout.write(`client: ${client}\n`);
      let server: string | null = null;
      try {
        await ctx.clients.health.check({ service: "" }, { ...ctx.unary, onHeader: (h) => (server = h.get(VERSION_HEADER)) });
      } catch (err) {
        // A refused call (e.g. no token) still carries the header.
        server = err instanceof ConnectError ? err.metadata.get(VERSION_HEADER) : null;
        if (server === null) throw err;
      }
      const shown = server ?? "unknown (the server sends no version: older than this client?)";
      if (ctx.json) printDocument({ client, server: shown, address: ctx.addr });
      else process.stdout.write(`server: ${shown} at ${ctx.addr}\n`);
    });
}
