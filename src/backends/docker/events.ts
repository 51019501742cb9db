/**
 * Follows the engine's container events for one service instance and keeps following:
 * the NDJSON stream is parsed line by line, mapped to ContainerEvent, and re-opened with
 * backoff whenever it breaks, until the caller's signal fires. Nothing escapes: handler
 * exceptions and stream errors are logged, never thrown or left as unhandled rejections.
 */
import { StringDecoder } from "node:string_decoder";
import { setTimeout as sleep } from "node:timers/promises";
import type { ContainerEvent, ContainerEventType, ContainerWatchHandler, Logger } from "../../core/ports.js";
import { AgentorchError } from "../../core/errors.js";
import { fromDockerLabels, LABELS } from "./container-options.js";
import { toAgentorchError } from "./docker-errors.js";
import { type Engine, dialStream } from "./engine-call.js";

export const RECONNECT_INITIAL_MS = 250;
export const RECONNECT_MAX_MS = 5_000;

const EVENT_TYPES: readonly ContainerEventType[] = ["start", "die", "oom", "destroy", "pause", "unpause"];

interface DockerEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

/** One engine event as a ContainerEvent, or undefined for anything we do not follow. */
export function toContainerEvent(raw: DockerEvent): ContainerEvent | undefined {
  if (raw.Type !== undefined && raw.Type !== "container") return undefined;
  const action = raw.Action ?? raw.status;
  if (!EVENT_TYPES.includes(action as ContainerEventType)) return undefined;
  const containerId = raw.Actor?.ID ?? raw.id;
  if (containerId === undefined || containerId === "") return undefined;
  const attributes = raw.Actor?.Attributes ?? {};
  const time =
    typeof raw.timeNano === "number" ? Math.floor(raw.timeNano / 1e6) : typeof raw.time === "number" ? raw.time * 1000 : Date.now();
  const event: ContainerEvent = { type: action as ContainerEventType, containerId, labels: fromDockerLabels(attributes), time };
  if (action === "die") {
    const code = Number.parseInt(attributes.exitCode ?? "", 10);
    if (Number.isFinite(code)) event.exitCode = code;
  }
  return event;
}

/** Splits a byte stream into lines, keeping a partial line (and a partial UTF-8 character) across chunks. */
export class LineSplitter {
  private readonly decoder = new StringDecoder("utf8");
  private rest = "";

  push(chunk: Buffer): string[] {
    const text = this.rest + this.decoder.write(chunk);
    const parts = text.split("\n");
    this.rest = parts.pop() ?? "";
    return parts.map((l) => l.trim()).filter((l) => l !== "");
  }
}

function safely(log: Logger, what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    log.error({ err }, `container watch: ${what} handler threw`);
  }
}

/** Starts following; returns at once. Ends only when signal aborts. */
export function watchEvents(engine: Engine, instanceId: string, handler: ContainerWatchHandler, signal: AbortSignal): void {
  const log = engine.logger.child({ op: "events", instanceId });
  run(engine, instanceId, handler, signal, log).catch((err: unknown) => {
    // run() catches everything itself; this is the last line of defence.
    log.error({ err }, "container watch: stopped unexpectedly");
  });
}

async function run(engine: Engine, instanceId: string, handler: ContainerWatchHandler, signal: AbortSignal, log: Logger) {
  const filters = { type: ["container"], event: [...EVENT_TYPES], label: [`${LABELS.instance}=${instanceId}`] };
  let delay = RECONNECT_INITIAL_MS;
  while (!signal.aborted) {
    let connectedAt: number | undefined;
    let failure: Error;
    try {
      const res = await dialStream(engine, "/events", { filters: JSON.stringify(filters) }, signal);
      connectedAt = Date.now();
      log.debug({}, "container watch: connected");
      safely(log, "onConnected", () => handler.onConnected());
      const onAbort = () => res.destroy();
      signal.addEventListener("abort", onAbort, { once: true });
      const lines = new LineSplitter();
      try {
        for await (const chunk of res) {
          for (const line of lines.push(chunk as Buffer)) {
            let raw: DockerEvent;
            try {
              raw = JSON.parse(line) as DockerEvent;
            } catch {
              log.warn({ line: line.slice(0, 200) }, "container watch: unparsable event line");
              continue;
            }
            const event = toContainerEvent(raw);
            if (event !== undefined) safely(log, "onEvent", () => handler.onEvent(event));
          }
        }
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
      if (signal.aborted) break;
      failure = new AgentorchError("unavailable", `Docker engine event stream at ${engine.endpoint} ended`);
    } catch (err) {
      if (signal.aborted) break;
      failure = toAgentorchError(err, engine.endpoint, "events");
    }
    log.warn({ err: failure, retryInMs: delay }, "container watch: disconnected");
    safely(log, "onDisconnected", () => handler.onDisconnected(failure));
    // A stream that stayed up for a while starts the backoff over.
    if (connectedAt !== undefined && Date.now() - connectedAt >= RECONNECT_MAX_MS) delay = RECONNECT_INITIAL_MS;
    try {
      await sleep(delay, undefined, { signal });
    } catch {
      break; // aborted while waiting
    }
    delay = Math.min(delay * 2, RECONNECT_MAX_MS);
  }
  log.debug({}, "container watch: stopped");
}
