/**
 * How the command line fails: one line on stderr that says what went wrong and what to
 * do, and an exit code per family of gRPC codes, so scripts can tell "no such agent"
 * from "no server" without parsing text. The table is printed by `agentorch --help`.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** Exit codes of every command (task outcomes are in TASK_EXIT). */
export const EXIT = {
  ok: 0,
  /** Anything not listed below (INTERNAL, UNKNOWN, UNIMPLEMENTED, …). */
  other: 1,
  /** Bad flags or arguments, INVALID_ARGUMENT, OUT_OF_RANGE. */
  usage: 2,
  /** NOT_FOUND. */
  notFound: 3,
  /** ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED: the object is not in a state that allows it. */
  conflict: 4,
  /** UNAUTHENTICATED, PERMISSION_DENIED. */
  denied: 5,
  /** UNAVAILABLE, DEADLINE_EXCEEDED, or no server at the address. */
  unavailable: 6,
  /** RESOURCE_EXHAUSTED. */
  exhausted: 7,
  /** Interrupted (Ctrl-C). */
  interrupted: 130,
} as const;

/** The exit-code table as shown in the root --help. */
export const EXIT_CODES_HELP = `Exit codes:
  0    success (for a task: COMPLETED)
  1    other errors (internal, unimplemented, …)
  2    usage error, INVALID_ARGUMENT, OUT_OF_RANGE
  3    NOT_FOUND
  4    ALREADY_EXISTS, FAILED_PRECONDITION (wrong state)
  5    UNAUTHENTICATED, PERMISSION_DENIED
  6    UNAVAILABLE: no server at the address, engine down, timed out
  7    RESOURCE_EXHAUSTED (limits, full queue or mailbox)
  10   task FAILED       (tasks submit --wait, tasks watch, tasks retry --wait)
  11   task CANCELED
  12   task REJECTED
  130  interrupted (Ctrl-C)`;

/** A failure the CLI itself detected, already worded for the user. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    message: string,
    readonly exitCode: number = EXIT.usage,
  ) {
    super(message);
  }
}

/** A usage error: bad flag value, missing argument. Exit 2. */
export function usageError(message: string): CliError {
  return new CliError(message, EXIT.usage);
}

/** The exit code for a gRPC/Connect code. */
export function exitCodeFor(code: Code): number {
  switch (code) {
    case Code.InvalidArgument:
    case Code.OutOfRange:
      return EXIT.usage;
    case Code.NotFound:
      return EXIT.notFound;
    case Code.AlreadyExists:
    case Code.FailedPrecondition:
    case Code.Aborted:
      return EXIT.conflict;
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      return EXIT.denied;
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return EXIT.unavailable;
    case Code.ResourceExhausted:
      return EXIT.exhausted;
    default:
      return EXIT.other;
  }
}

/** Socket errors that mean nothing (or nothing usable) listens at the address. */
const NO_SERVER_ERRNOS = new Set(["ECONNREFUSED", "ENOENT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ECONNRESET", "EPIPE", "ETIMEDOUT"]);

function errnoOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z_]+$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** What the CLI knows about the call that failed, to word the message. */
export interface ErrorContext {
  /** The address as the user gave it (or its default). */
  addr: string;
  /** Whether a token was sent. */
  tokenSent: boolean;
  /** Whether the CLI connected with TLS, and presented a client certificate. */
  tls?: boolean;
  clientCertSent?: boolean;
}

/** Codes of the first error in the cause chain that has one (OpenSSL's and Node's TLS codes too). */
function codesOf(err: unknown): string[] {
  const codes: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    e = (e as { cause?: unknown }).cause;
  }
  return codes;
}

/** Certificate verification codes that mean: the CLI does not trust the CA that issued the server's certificate. */
const UNTRUSTED = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
]);

/** A TLS failure worded for the user, or undefined when err is not one. */
function describeTlsError(err: unknown, ctx: ErrorContext): { message: string; exitCode: number } | undefined {
  const codes = codesOf(err);
  const detail = oneLine(err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err));
  const say = (message: string) => ({ message, exitCode: EXIT.unavailable });
  if (codes.some((c) => UNTRUSTED.has(c))) {
    return say(`the server's certificate is not trusted (${detail}): pass the CA that issued it with --tls-ca (or AGENTORCH_CLI_TLS_CA)`);
  }
  if (codes.includes("CERT_HAS_EXPIRED")) return say(`the server's certificate has expired (${detail}): the service must renew it (then SIGHUP)`);
  if (codes.includes("ERR_TLS_CERT_ALTNAME_INVALID")) {
    return say(`the server's certificate does not name ${ctx.addr} (${detail}): connect with a host name or address it lists`);
  }
  if (codes.some((c) => /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|UNKNOWN_PROTOCOL/.test(c))) {
    return say(`the server at ${ctx.addr} does not speak TLS (${detail}): use http:// and drop --tls and the --tls-* options`);
  }
  if (codes.some((c) => /ALERT_CERTIFICATE_REQUIRED|ALERT_HANDSHAKE_FAILURE|ALERT_BAD_CERTIFICATE|ALERT_UNKNOWN_CA/.test(c))) {
    return say(
      ctx.clientCertSent
        ? `the server refused the client certificate (${detail}): check --tls-cert/--tls-key`
        : `the server wants a client certificate (${detail}): pass --tls-cert and --tls-key`,
    );
  }
  return undefined;
}

/** Turns anything thrown by a command into the one line and exit code the user sees. */
export function describeError(err: unknown, ctx: ErrorContext): { message: string; exitCode: number } {
  if (err instanceof CliError) return { message: err.message, exitCode: err.exitCode };
  const tlsFailure = describeTlsError(err, ctx);
  if (tlsFailure !== undefined) return tlsFailure;
  if (err instanceof ConnectError) return describeConnectError(err, ctx);
  const errno = errnoOf(err);
  if (errno !== undefined && NO_SERVER_ERRNOS.has(errno)) return noServer(ctx, errno);
  const message = err instanceof Error ? err.message : String(err);
  return { message: oneLine(message), exitCode: EXIT.other };
}

function describeConnectError(err: ConnectError, ctx: ErrorContext): { message: string; exitCode: number } {
  const exitCode = exitCodeFor(err.code);
  const text = oneLine(err.rawMessage);
  const errno = errnoOf(err.cause);
  // The transport reports a socket error as UNAVAILABLE, INTERNAL or UNKNOWN depending on when it happened.
  if (errno !== undefined && NO_SERVER_ERRNOS.has(errno)) return noServer(ctx, errno);
  const inText = /\b(ECONNREFUSED|ENOENT)\b/.exec(text);
  if (inText && (err.code === Code.Unavailable || err.code === Code.Internal || err.code === Code.Unknown)) return noServer(ctx, inText[1]!);
  switch (err.code) {
    case Code.Unauthenticated:
      if (/client certificate/.test(text)) return { message: `not authenticated: ${text}`, exitCode };
      return {
        message: ctx.tokenSent
          ? `not authenticated: ${text}: check --token / AGENTORCH_TOKEN`
          : `not authenticated: ${text}: pass a token with --token or AGENTORCH_TOKEN`,
        exitCode,
      };
    case Code.PermissionDenied:
      return { message: `permission denied: ${text}`, exitCode };
    case Code.DeadlineExceeded:
      return { message: `timed out waiting for agentorch at ${ctx.addr}: ${text}`, exitCode };
    case Code.Unimplemented:
      return { message: `the agentorch at ${ctx.addr} does not serve this call (${text}): is it an older version?`, exitCode };
    case Code.Internal:
      return { message: `agentorch reported an internal error: ${text}: see the service's log`, exitCode };
    default:
      return { message: text, exitCode };
  }
}

function noServer(ctx: ErrorContext, errno: string): { message: string; exitCode: number } {
  const why = errno === "ECONNREFUSED" || errno === "ENOENT" ? "" : ` (${errno})`;
  // A TLS server (agentorch's answers cleartext clients in words) may just close the connection.
  const reset = (errno === "ECONNRESET" || errno === "EPIPE") && ctx.tls !== true && !ctx.addr.startsWith("unix:");
  const hint = reset ? "; if it serves TLS, connect with https:// or --tls" : "";
  return {
    message: `no agentorch at ${ctx.addr}${why}: is \`agentorch serve\` running? (set the address with --addr or AGENTORCH_ADDR)${hint}`,
    exitCode: EXIT.unavailable,
  };
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, "; ").trim();
}
