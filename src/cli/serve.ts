/**
 * `agentorch serve`: runs the service itself, exactly as src/server/main.ts does
 * (configuration from the environment, graceful shutdown on SIGTERM/SIGINT).
 */
import type { Command } from "commander";

const SERVE_HELP = `
Configuration (environment; flags win):
  AGENTORCH_LISTEN               HOST:PORT to serve gRPC, gRPC-Web and Connect on (default 127.0.0.1:50051)
  AGENTORCH_DATA_DIR             database and workspaces (default ./.agentorch-data)
  DOCKER_HOST                    the Docker engine (default unix:///var/run/docker.sock)
  AGENTORCH_TOKENS               operator tokens, NAME:ROLE:SHA256HEX,... (none: loopback only, no auth)
  AGENTORCH_TOKENS_FILE          the same, one entry per line (also NAME:ROLE:cert:/CN=SUBJECT identities)
  AGENTORCH_TLS_CERT, AGENTORCH_TLS_KEY
                                 PEM certificate and key: serve TLS (needed beyond loopback,
                                 unless AGENTORCH_INSECURE_LISTEN=1)
  AGENTORCH_TLS_CLIENT_CA        PEM CA of client certificates: mutual TLS
  AGENTORCH_LOG_LEVEL            fatal, error, warn, info, debug, trace, silent (default info)
  …and more: see "Configuration" in the README for every variable.

SIGTERM or Ctrl-C stops gracefully (containers keep running and are adopted at the next start);
a second signal exits at once. SIGHUP reloads the tokens and the TLS files. Logs are JSON lines on stdout.`;

/** Adds `serve` to the root. */
export function addServeCommand(root: Command): void {
  root
    .command("serve")
    .description("run the agentorch service in the foreground")
    .option("--listen <host:port>", "where to listen (overrides AGENTORCH_LISTEN)")
    .option("--data-dir <dir>", "where to keep state (overrides AGENTORCH_DATA_DIR)")
    .addHelpText("after", SERVE_HELP)
    .action(async (o: { listen?: string; dataDir?: string }) => {
      const flags = [...(o.listen !== undefined ? ["--listen", o.listen] : []), ...(o.dataDir !== undefined ? ["--data-dir", o.dataDir] : [])];
      // The one place src/cli reaches src/server (see the layout note in the README): loaded
      // on demand, so the other commands, clients of the API, never load the server's modules.
      const { runServer } = await import("../server/main.js");
      await runServer(flags);
      // The server now owns the process: it exits on a signal; never return to the CLI's exit.
      await new Promise<never>(() => {});
    });
}
