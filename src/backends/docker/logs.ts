/**
 * A container's stdout+stderr: the bounded tail (output) and a live follow that starts
 * with that tail (followOutput). Both stream from the engine and demultiplex frames
 * themselves, so memory stays near the requested size whatever the container wrote.
 */
import type { IncomingMessage } from "node:http";
import type { ContainerOutput } from "../../core/ports.js";
import { isAbortError, toAgentorchError } from "./docker-errors.js";
import { type Engine, dialStream, traced } from "./engine-call.js";
import { unixParam } from "./docker-time.js";
import { LogDemuxer, TailBuffer } from "./log-demux.js";

/** Destroys the response when the signal fires, so iteration ends instead of hanging. */
function bindAbort(res: IncomingMessage, signal: AbortSignal | undefined): () => void {
  if (signal === undefined) return () => undefined;
  const onAbort = () => res.destroy();
  if (signal.aborted) onAbort();
  signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

/** Feeds every frame of a log response to onFrame; resolves at the end of the stream. */
async function readFrames(
  res: IncomingMessage,
  signal: AbortSignal | undefined,
  onFrame: (payload: Buffer) => void,
): Promise<void> {
  const unbind = bindAbort(res, signal);
  const demux = new LogDemuxer();
  try {
    for await (const chunk of res) {
      for (const frame of demux.push(chunk as Buffer)) onFrame(frame.payload);
    }
  } finally {
    unbind();
  }
  if (signal?.aborted) {
    const err = new Error("operation aborted");
    err.name = "AbortError";
    throw err;
  }
}

/** The last maxBytes of stdout+stderr, interleaved as written. */
export function readOutput(
  engine: Engine,
  containerId: string,
  maxBytes: number,
  signal?: AbortSignal,
): Promise<ContainerOutput> {
  return traced(engine, "logs", { containerId }, async () => {
    const res = await dialStream(engine, `/containers/${encodeURIComponent(containerId)}/logs`, { stdout: true, stderr: true }, signal);
    const tail = new TailBuffer(maxBytes);
    await readFrames(res, signal, (payload) => tail.push(payload));
    return tail.result();
  });
}

/** "2024-01-02T03:04:05.123456789Z " prefix (Docker's RFC3339NanoFixed) of a timestamped frame. */
interface Stamped {
  /** The timestamp text as the engine wrote it. */
  stamp: string;
  payload: Buffer;
}

function splitStamp(frame: Buffer): Stamped {
  const space = frame.indexOf(0x20);
  if (space <= 0 || space > 40) return { stamp: "", payload: frame };
  return { stamp: frame.subarray(0, space).toString("latin1"), payload: frame.subarray(space + 1) };
}

/**
 * The last tailBytes of output, then live output until the container stops or the
 * signal fires (then the iteration just ends). Continuity without gaps or repeats: the
 * tail is read with timestamps, and the follow starts at the last timestamp seen,
 * skipping the entries at that exact timestamp that the tail already contained.
 */
export async function* followOutput(
  engine: Engine,
  containerId: string,
  tailBytes: number,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const path = `/containers/${encodeURIComponent(containerId)}/logs`;
  let lastStamp = "";
  let seenAtLastStamp = 0;
  const tail = new TailBuffer(tailBytes);
  try {
    await traced(engine, "logs-tail", { containerId }, async () => {
      const res = await dialStream(engine, path, { stdout: true, stderr: true, timestamps: true }, signal);
      await readFrames(res, signal, (frame) => {
        const { stamp, payload } = splitStamp(frame);
        if (stamp === lastStamp) seenAtLastStamp++;
        else {
          lastStamp = stamp;
          seenAtLastStamp = 1;
        }
        tail.push(payload);
      });
    });
  } catch (err) {
    if (signal.aborted) return;
    throw err;
  }
  const first = tail.result().data;
  if (first.length > 0) yield first;
  if (signal.aborted) return;

  const since = unixParam(lastStamp);
  const query: Record<string, string | boolean> = { stdout: true, stderr: true, timestamps: true, follow: true };
  if (since !== undefined) query.since = since;
  let res: IncomingMessage;
  try {
    res = await traced(engine, "logs-follow", { containerId }, () => dialStream(engine, path, query, signal));
  } catch (err) {
    if (signal.aborted) return;
    throw err;
  }
  const unbind = bindAbort(res, signal);
  const demux = new LogDemuxer();
  let skip = since === undefined ? 0 : seenAtLastStamp;
  try {
    for await (const chunk of res) {
      for (const frame of demux.push(chunk as Buffer)) {
        const { stamp, payload } = splitStamp(frame.payload);
        if (skip > 0 && stamp === lastStamp) {
          skip--;
          continue;
        }
        skip = 0;
        if (signal.aborted) return;
        if (payload.length > 0) yield new Uint8Array(payload);
      }
    }
  } catch (err) {
    if (signal.aborted || isAbortError(err)) return;
    throw toAgentorchError(err, engine.endpoint, "logs-follow", { containerId });
  } finally {
    unbind();
    res.destroy();
  }
}
