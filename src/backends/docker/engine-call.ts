/**
 * What every engine call shares: the client, the endpoint it names in errors, and one
 * way of logging a call (starting / done / failed with the container id and duration,
 * as testcontainers does) and of mapping its failure to an AgentorchError.
 */
import type { IncomingMessage } from "node:http";
import type Dockerode from "dockerode";
import type { ErrorDetails } from "../../core/errors.js";
import type { Logger } from "../../core/ports.js";
import { toAgentorchError } from "./docker-errors.js";

export interface Engine {
  docker: Dockerode;
  endpoint: string;
  logger: Logger;
}

/**
 * Runs one engine operation: logs it at debug, and rejects only with AgentorchError.
 * Expected outcomes the caller turns into success (a 404 on remove) are handled inside fn.
 */
export async function traced<T>(
  engine: Engine,
  op: string,
  details: ErrorDetails,
  fn: (log: Logger) => Promise<T>,
): Promise<T> {
  const log = engine.logger.child({ op, ...details });
  const started = performance.now();
  log.debug({}, `docker ${op}: starting`);
  try {
    const result = await fn(log);
    log.debug({ durationMs: Math.round(performance.now() - started) }, `docker ${op}: done`);
    return result;
  } catch (err) {
    const mapped = toAgentorchError(err, engine.endpoint, op, details);
    log.debug(
      { durationMs: Math.round(performance.now() - started), kind: mapped.kind, err: mapped.cause ?? mapped },
      `docker ${op}: failed`,
    );
    throw mapped;
  }
}

/** Throws the signal's reason as an AbortError-like error when it has fired. */
export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const err = new Error("operation aborted");
    err.name = "AbortError";
    throw err;
  }
}

/**
 * Waits for an engine request that was sent without the signal, but stops waiting when
 * the signal fires (rejecting with an AbortError). The request itself runs to its end,
 * so its outcome is known: onAbandoned gets it to undo whatever it did (e.g. remove the
 * container it created). Used where aborting the HTTP request could leave the engine
 * having done the work without our knowing its result.
 */
export function raceAbort<T>(
  request: Promise<T>,
  signal: AbortSignal | undefined,
  onAbandoned: (request: Promise<T>) => void,
): Promise<T> {
  if (signal === undefined) return request;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      onAbandoned(request);
      const err = new Error("operation aborted");
      err.name = "AbortError";
      reject(err);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    request.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err as Error);
      },
    );
  });
}

/**
 * A streaming GET on the engine API (dockerode only streams logs when following).
 * Resolves with the response once its headers arrive; 2xx only, else rejects with
 * docker-modem's error (statusCode set).
 */
export function dialStream(
  engine: Engine,
  path: string,
  query: Record<string, string | number | boolean>,
  signal: AbortSignal | undefined,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    engine.docker.modem.dial(
      {
        path: `${path}?`,
        method: "GET",
        isStream: true,
        abortSignal: signal,
        statusCodes: { 200: true, 404: "no such container", 500: "server error" },
        options: { ...query },
      },
      (err, res) => {
        if (err) reject(err);
        else resolve(res as IncomingMessage);
      },
    );
  });
}

/**
 * One non-streaming engine request, with the query and the JSON body kept apart
 * (dockerode's createContainer also copies the whole body, env included, into the URL)
 * and an AbortSignal on every call (dockerode ignores it on some, e.g. image inspect).
 */
export function dial<T>(
  engine: Engine,
  request: {
    method: "GET" | "POST";
    path: string;
    query?: Record<string, string>;
    body?: object;
    statusCodes: Record<number, string | boolean>;
    signal: AbortSignal | undefined;
  },
): Promise<T> {
  const options: { _query?: object; _body?: object } = {};
  if (request.query !== undefined && Object.keys(request.query).length > 0) options._query = request.query;
  // docker-modem sends the whole options object as the body of a POST that has no _body.
  if (request.method === "POST") options._body = request.body ?? {};
  return new Promise((resolve, reject) => {
    engine.docker.modem.dial(
      {
        path: `${request.path}?`,
        method: request.method,
        abortSignal: request.signal,
        statusCodes: request.statusCodes,
        options,
      },
      (err, res) => {
        if (err) reject(err);
        else resolve(res as T);
      },
    );
  });
}
