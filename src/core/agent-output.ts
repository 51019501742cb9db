/**
 * An agent's container output: the tail of the running container, or of the last one
 * as saved when it ended; followed live; saved when a container ends so it can be read
 * after the container is gone. AgentService looks the agent up and calls these.
 */
import type { Agent } from "./agent.js";
import { errorMessage, failedPrecondition } from "./errors.js";
import type { ContainerBackend, ContainerOutput, Logger, Store } from "./ports.js";

export interface OutputDeps {
  store: Store;
  backend: ContainerBackend;
  logger: Logger;
  /** Captures in flight, by agent: a read of an ended container's output waits for its capture. */
  capturing?: Map<string, Promise<unknown>>;
}

/** The last maxBytes (0 or beyond the agent's cap: the cap) of the current or the last container's output. */
export async function readOutput(deps: OutputDeps, agent: Agent, maxBytes: number, signal?: AbortSignal): Promise<ContainerOutput> {
  const agentId = agent.config.agentId;
  const cap = agent.config.resources.maxOutputBytes;
  const limit = maxBytes <= 0 || maxBytes > cap ? cap : maxBytes;
  if (!agent.containerId) throw failedPrecondition(`agent "${agentId}" has not run yet: no output`, { agentId });
  if (agent.status === "running" || agent.status === "paused" || agent.status === "stopping") {
    return deps.backend.output(agent.containerId, limit, signal);
  }
  // A read right after the exit was recorded would race the capture (it was seen to get
  // nothing from the engine while the capture got everything): wait for the capture.
  await deps.capturing?.get(agentId);
  // Saved when the container ended; until then (or if saving failed) the container may still be there.
  const saved = deps.store.getOutput(agentId) ?? (await deps.backend.output(agent.containerId, limit, signal).catch(() => undefined));
  if (!saved) return { data: new Uint8Array(), truncated: false };
  if (saved.data.byteLength <= limit) return saved;
  return { data: saved.data.subarray(saved.data.byteLength - limit), truncated: true };
}

/** The last tailBytes, then (with follow, while the agent runs) live chunks until the container stops. */
export async function* streamOutput(deps: OutputDeps, agent: Agent, tailBytes: number, follow: boolean, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  const cap = agent.config.resources.maxOutputBytes;
  const tail = tailBytes <= 0 || tailBytes > cap ? cap : tailBytes;
  if (follow && (agent.status === "running" || agent.status === "paused")) {
    yield* deps.backend.followOutput(agent.containerId, tail, signal);
    return;
  }
  const out = await readOutput(deps, agent, tail, signal);
  if (out.data.byteLength > 0) yield out.data;
}

/** Saves the container's output tail; undefined (logged) when it cannot be read. */
export async function captureOutput(deps: OutputDeps, agent: Agent, signal?: AbortSignal): Promise<ContainerOutput | undefined> {
  if (!agent.containerId) return undefined;
  const agentId = agent.config.agentId;
  const capture = saveTail(deps, agent, signal);
  deps.capturing?.set(agentId, capture);
  try {
    return await capture;
  } finally {
    if (deps.capturing?.get(agentId) === capture) deps.capturing.delete(agentId);
  }
}

async function saveTail(deps: OutputDeps, agent: Agent, signal?: AbortSignal): Promise<ContainerOutput | undefined> {
  try {
    const out = await deps.backend.output(agent.containerId, agent.config.resources.maxOutputBytes, signal);
    deps.store.saveOutput(agent.config.agentId, out);
    return out;
  } catch (err) {
    deps.logger.debug({ agentId: agent.config.agentId, err: errorMessage(err) }, "output not captured");
    return undefined;
  }
}
