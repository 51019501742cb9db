/**
 * A second opinion on "was it OOM-killed?". The engine's State.OOMKilled is set only when
 * containerd reports the OOM before the exit; under load it sometimes reports them the
 * other way round (seen here: events "die" then "oom", and OOMKilled stays false for
 * good). The engine's event history still has the "oom" event, so look there.
 */
import { unixParam, unixParamMs } from "./docker-time.js";
import { type Engine, dialStream } from "./engine-call.js";
import { LineSplitter } from "./events.js";

/**
 * True when the engine's event log holds an "oom" event for this container since it
 * started. With untilMs in the future the question stays open until then (an oom event
 * may trail the die event); it is answered as soon as one arrives.
 */
export async function oomRecorded(
  engine: Engine,
  containerId: string,
  startedAt: string,
  untilMs: number,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const since = unixParam(startedAt);
  if (since === undefined) return false;
  const filters = { type: ["container"], container: [containerId], event: ["oom"] };
  const res = await dialStream(engine, "/events", { since, until: unixParamMs(untilMs), filters: JSON.stringify(filters) }, signal);
  const onAbort = () => res.destroy();
  signal?.addEventListener("abort", onAbort, { once: true });
  const lines = new LineSplitter();
  try {
    for await (const chunk of res) {
      for (const line of lines.push(chunk as Buffer)) {
        try {
          if ((JSON.parse(line) as { Action?: string }).Action === "oom") return true;
        } catch {
          // not an event line: ignore
        }
      }
    }
    return false;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    res.destroy();
  }
}
