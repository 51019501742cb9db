/**
 * A ContainerBackend decorator that reports every engine call (its operation, how long it
 * took, and how it failed) to an observer, so the Docker API's latency and errors can be
 * measured without touching the adapter. It knows nothing of Prometheus: the composition
 * root turns the reports into metrics.
 *
 * Request/response calls report their duration; the two long-lived ones report only
 * failures: followOutput (a follow that ends with an error) and watch (each time the
 * event stream breaks: operation "events"). A call abandoned because its caller's signal
 * aborted is the caller's doing, not the engine's: it is not reported, unless the signal
 * was a time limit (AbortSignal.timeout): that is the engine being too slow ("timeout").
 */
import { isAgentorchError } from "../core/errors.js";
import type { ContainerBackend, ContainerWatchHandler } from "../core/ports.js";

/** The operations reported: the backend's methods, and "events" for the watch stream. */
export type BackendOperation =
  | "ping"
  | "image_exists"
  | "spawn"
  | "kill"
  | "pause"
  | "unpause"
  | "remove"
  | "inspect"
  | "wait"
  | "output"
  | "follow_output"
  | "list"
  | "events";

/** One engine call's outcome. */
export interface BackendCall {
  operation: BackendOperation;
  /** Seconds from call to settlement; absent for long-lived calls (follow_output, events). */
  durationSeconds?: number;
  /** undefined when it succeeded; else the AgentorchError kind ("unavailable", "not_found"…), or "unknown". */
  errorKind?: string;
}

/** Receives every engine call's outcome; must not throw (a throw is swallowed). */
export type BackendCallObserver = (call: BackendCall) => void;

/** Wraps backend so each call is reported to observe. The wrapper is a ContainerBackend like any other. */
export function instrumentBackend(backend: ContainerBackend, observe: BackendCallObserver): ContainerBackend {
  const report = (call: BackendCall) => {
    try {
      observe(call);
    } catch {
      // Measuring must never break the call it measures.
    }
  };
  const timed = async <T>(operation: BackendOperation, signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      const result = await call();
      report({ operation, durationSeconds: (performance.now() - started) / 1000 });
      return result;
    } catch (err) {
      if (!isAbort(err, signal)) {
        report({ operation, durationSeconds: (performance.now() - started) / 1000, errorKind: kindOf(err, signal) });
      }
      throw err;
    }
  };

  return {
    get endpoint() {
      return backend.endpoint;
    },
    ping: (signal) => timed("ping", signal, () => backend.ping(signal)),
    imageExists: (image, signal) => timed("image_exists", signal, () => backend.imageExists(image, signal)),
    spawn: (spec, signal) => timed("spawn", signal, () => backend.spawn(spec, signal)),
    kill: (containerId, signal) => timed("kill", signal, () => backend.kill(containerId, signal)),
    pause: (containerId, signal) => timed("pause", signal, () => backend.pause(containerId, signal)),
    unpause: (containerId, signal) => timed("unpause", signal, () => backend.unpause(containerId, signal)),
    remove: (containerId, signal) => timed("remove", signal, () => backend.remove(containerId, signal)),
    inspect: (containerId, signal) => timed("inspect", signal, () => backend.inspect(containerId, signal)),
    wait: (containerId, signal) => timed("wait", signal, () => backend.wait(containerId, signal)),
    output: (containerId, maxBytes, signal) => timed("output", signal, () => backend.output(containerId, maxBytes, signal)),
    list: (instanceId, signal) => timed("list", signal, () => backend.list(instanceId, signal)),

    async *followOutput(containerId, tailBytes, signal) {
      try {
        yield* backend.followOutput(containerId, tailBytes, signal);
      } catch (err) {
        if (!isAbort(err, signal)) report({ operation: "follow_output", errorKind: kindOf(err, signal) });
        throw err;
      }
    },

    watch(instanceId, handler, signal) {
      const observed: ContainerWatchHandler = {
        onEvent: (event) => handler.onEvent(event),
        onConnected: () => handler.onConnected(),
        onDisconnected: (err) => {
          if (!signal.aborted) report({ operation: "events", errorKind: kindOf(err) });
          handler.onDisconnected(err);
        },
      };
      backend.watch(instanceId, observed, signal);
    },
  };
}

function kindOf(err: unknown, signal?: AbortSignal): string {
  if (timedOut(signal)) return "timeout";
  return isAgentorchError(err) ? err.kind : "unknown";
}

/** A call its caller gave up on. One cut short by its own time limit (AbortSignal.timeout) is an engine failure. */
function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  if (timedOut(signal)) return false;
  if (signal?.aborted) return true;
  return typeof err === "object" && err !== null && (err as { name?: unknown }).name === "AbortError";
}

function timedOut(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true && (signal.reason as { name?: unknown } | undefined)?.name === "TimeoutError";
}
