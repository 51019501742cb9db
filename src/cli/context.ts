/**
 * What every client command gets from the root options: the clients for --addr/--token,
 * the -o format, the words after `--` (a container command), and a status line for live
 * output. Built lazily so that `--help` and usage errors never open a connection.
 */
import type { Command } from "commander";
import type { CallOptions } from "@connectrpc/connect";
import { createClients, UNARY_TIMEOUT_MS } from "./client.js";
import type { Clients, TlsFlags } from "./client.js";
import { parseFormat, useStructuredFormat } from "./output.js";
import type { Format } from "./output.js";
import { StatusLine } from "./live.js";

/** The root options as commander hands them over. */
export interface GlobalOptions extends TlsFlags {
  addr: string;
  token?: string;
  output: string;
}

/** What a command action works with. */
export interface Ctx {
  clients: Clients;
  format: Format;
  /** -o json or -o yaml: print the proto message (printJson), never a table or prose. */
  json: boolean;
  /** -o wide: tables show more columns. */
  wide: boolean;
  addr: string;
  /** Options for a unary call (a deadline, so a silent network cannot hang the CLI). */
  unary: CallOptions;
  /** A status line on stdout; inactive when piped or for -o json/yaml. */
  status: StatusLine;
}

let trailing: string[] = [];

/** Set by main: the words after the first `--` on the command line. */
export function setTrailingArgs(words: string[]): void {
  trailing = words;
}

/** The words after `--` (a container command for register and submit). */
export function trailingArgs(): string[] {
  return trailing;
}

const takesTrailing = new WeakSet<Command>();

/** Marks a command as taking a container command after `--`; others refuse one. */
export function acceptsTrailingArgs(cmd: Command): Command {
  takesTrailing.add(cmd);
  return cmd;
}

/** Whether cmd takes words after `--`. */
export function takesTrailingArgs(cmd: Command): boolean {
  return takesTrailing.has(cmd);
}

/** The context of the command being run. */
export function contextOf(cmd: Command): Ctx {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const format = parseFormat(opts.output);
  const json = format === "json" || format === "yaml";
  if (json) useStructuredFormat(format);
  return {
    clients: createClients(opts.addr, opts.token, opts),
    format,
    json,
    wide: format === "wide",
    addr: opts.addr,
    unary: { timeoutMs: UNARY_TIMEOUT_MS },
    status: new StatusLine(process.stdout, !json && process.stdout.isTTY === true),
  };
}
