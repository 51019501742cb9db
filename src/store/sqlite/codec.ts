/**
 * Row <-> domain conversion. Agents are stored as the JSON of the whole object, so a
 * new optional field needs no migration; JSON drops undefined properties, so an absent
 * optional field reads back absent (never present-but-undefined), and numbers stay numbers.
 */
import type { Agent } from "../../core/agent.js";
import { AgentorchError } from "../../core/errors.js";

/** The stored form of an agent (also the payload of its events). */
export function encodeAgent(agent: Agent): string {
  return JSON.stringify(agent);
}

/** Parses a stored agent; a row that is not one is corruption, reported as internal. */
export function decodeAgent(json: string): Agent {
  const value = decodeJson(json);
  const config = (value as { config?: { agentId?: unknown } } | null)?.config;
  if (typeof value !== "object" || value === null || typeof config?.agentId !== "string") {
    throw new AgentorchError("internal", "store holds a malformed agent row");
  }
  return value as Agent;
}

/** Parses a stored JSON payload (event entities). */
export function decodeJson(json: string): unknown {
  try {
    return JSON.parse(json) as unknown;
  } catch (err) {
    throw new AgentorchError("internal", "store holds malformed JSON", {}, { cause: err });
  }
}

/** A view of the bytes better-sqlite3 can bind as a BLOB (it binds Buffers), without copying. */
export function toBlob(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** A plain Uint8Array over a BLOB read back (better-sqlite3 returns a fresh Buffer per read). */
export function fromBlob(blob: Buffer): Uint8Array {
  return new Uint8Array(blob.buffer, blob.byteOffset, blob.byteLength);
}
