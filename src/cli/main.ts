/**
 * The `agentorch` command line: `serve` runs the service; every other command is a client
 * of a running one (--addr/--token or AGENTORCH_ADDR/AGENTORCH_TOKEN). Failures end as one
 * line on stderr and an exit code per gRPC code family (see errors.ts).
 */
import { Command, CommanderError, Option } from "commander";
import { addAgentsCommands } from "./agents.js";
import { addCardsCommands } from "./cards.js";
import { DEFAULT_ADDR, wantsTls } from "./client.js";
import type { TlsFlags } from "./client.js";
import { addCompletionCommand } from "./completion.js";
import { addConfigCommands } from "./config.js";
import { setTrailingArgs, takesTrailingArgs, trailingArgs } from "./context.js";
import { describeError, EXIT, EXIT_CODES_HELP, usageError } from "./errors.js";
import { addHealthCommand } from "./health.js";
import { exitOnInterrupt } from "./live.js";
import { addMessagesCommands } from "./messages.js";
import { FORMAT_HELP } from "./output.js";
import { addServeCommand } from "./serve.js";
import { addTasksCommands } from "./tasks.js";
import { addVersionCommand, clientVersion } from "./version.js";

const ROOT_HELP = `
Examples:
  agentorch serve                                            run the service (127.0.0.1:50051)
  agentorch agents register hello --image agentorch/busybox:test -- sh -c 'echo hi; sleep 300'
  agentorch agents start hello && agentorch agents logs -f hello
  agentorch agents ls -o json
  agentorch tasks submit "say ok" --image agentorch/busybox:test --wait -- sh -c 'echo ok'
  agentorch agents watch

Ids: wherever a command takes an agent or task id, a unique prefix of it will do.

TLS: an https:// address, --tls, or any --tls-* option connects with TLS (the service's
AGENTORCH_TLS_CERT); --tls-cert and --tls-key present a client certificate (mutual TLS).
  agentorch --addr https://agentorch.internal:50051 --tls-ca ca.pem --tls-cert me.pem --tls-key me.key agents ls

Environment:
  AGENTORCH_ADDR    default for --addr
  AGENTORCH_TOKEN   default for --token
  AGENTORCH_CLI_TLS_CA, AGENTORCH_CLI_TLS_CERT, AGENTORCH_CLI_TLS_KEY
                    defaults for --tls-ca, --tls-cert, --tls-key
  NO_COLOR          never colour (output is plain whenever stdout is not a terminal)

${EXIT_CODES_HELP}`;

/** Builds the whole command tree. */
function buildProgram(): Command {
  const program = new Command("agentorch")
    .description("run AI agents in hardened Docker containers: the agentorch service and its command line")
    .version(clientVersion(), "-V, --version", "print the client's version (`agentorch version`: the server's too)")
    .addOption(new Option("--addr <address>", "the service: HOST:PORT, http(s)://HOST:PORT or unix:/path.sock").env("AGENTORCH_ADDR").default(DEFAULT_ADDR))
    .addOption(new Option("--token <token>", "bearer token sent with every call").env("AGENTORCH_TOKEN"))
    .addOption(new Option("--tls", "connect with TLS (also implied by https:// and by the --tls-* options)"))
    .addOption(new Option("--tls-ca <file>", "PEM CA certificates to trust for the service's certificate (default: the system's)").env("AGENTORCH_CLI_TLS_CA"))
    .addOption(new Option("--tls-cert <file>", "PEM client certificate, for mutual TLS (with --tls-key)").env("AGENTORCH_CLI_TLS_CERT"))
    .addOption(new Option("--tls-key <file>", "PEM private key of --tls-cert").env("AGENTORCH_CLI_TLS_KEY"))
    .addOption(new Option("-o, --output <format>", FORMAT_HELP).default("table"))
    .helpOption("-h, --help", "show help for a command")
    .helpCommand("help [command]", "show help for a command")
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // Usage errors are printed by main() as one line, like every other error.
      outputError: () => {},
    })
    .addHelpText("after", ROOT_HELP);

  addServeCommand(program);
  addAgentsCommands(program);
  addTasksCommands(program);
  addCardsCommands(program);
  addMessagesCommands(program);
  addConfigCommands(program);
  addHealthCommand(program);
  addVersionCommand(program);
  addCompletionCommand(program);

  program.hook("preAction", (_root, action) => {
    if (action.name() !== "serve") exitOnInterrupt();
    if (!takesTrailingArgs(action) && trailingArgs().length > 0) {
      throw usageError(`${commandPath(action)} takes no command after --`);
    }
  });
  return program;
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** The deepest command the words name ("agentorch agents register"), for a usage hint. */
function commandFor(program: Command, words: readonly string[]): Command {
  let cmd = program;
  for (const w of words) {
    if (w.startsWith("-")) continue;
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (!sub) break;
    cmd = sub;
  }
  return cmd;
}

/** Runs the command line; resolves with the exit code (serve never resolves). */
async function run(argv: readonly string[]): Promise<number> {
  const dd = argv.indexOf("--");
  const words = dd >= 0 ? argv.slice(0, dd) : [...argv];
  setTrailingArgs(dd >= 0 ? argv.slice(dd + 1) : []);
  const program = buildProgram();
  try {
    process.exitCode = undefined;
    await program.parseAsync(words, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : EXIT.ok;
  } catch (err) {
    const opts = program.opts<{ addr?: string; token?: string } & TlsFlags>();
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return EXIT.ok; // --help, --version
      if (err.code === "commander.help") return EXIT.usage; // a group without a subcommand: its help went to stderr
      const cmd = commandFor(program, words);
      const text = err.message.replace(/^error: /, "").replace(/\n+/g, " ");
      process.stderr.write(`agentorch: ${text}: see \`${commandPath(cmd)} --help\`\n`);
      return EXIT.usage;
    }
    const addr = opts.addr ?? DEFAULT_ADDR;
    const { message, exitCode } = describeError(err, { addr, tokenSent: Boolean(opts.token), tls: wantsTls(addr, opts), clientCertSent: Boolean(opts.tlsCert) });
    process.stderr.write(`agentorch: ${message}\n`);
    return exitCode;
  }
}

// A reader that goes away (`agentorch tasks ls | head`) is not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(EXIT.ok);
  throw err;
});

process.exit(await run(process.argv.slice(2)));
