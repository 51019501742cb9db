/**
 * Responses shared by many watch streams: built once per change and, for binary
 * protocols, encoded once. The encoded form must serialize to exactly the bytes of the
 * plain message; JSON streams must get the plain message.
 */
import { create, equals, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { AgentStatus } from "../../gen/agentorch/v1/agent_pb.js";
import { EventType } from "../../gen/agentorch/v1/events_pb.js";
import { WatchAgentsResponseSchema } from "../../gen/agentorch/v1/orchestrator_service_pb.js";
import { isBinaryCall, preEncoded, SharedResponses } from "../../src/api/shared-response.js";

function sample(revision: bigint, name = "ünïcødé") {
  return create(WatchAgentsResponseSchema, {
    event: {
      type: EventType.ADDED,
      revision,
      agent: { agentId: "a-1", name, status: AgentStatus.RUNNING, exitCode: 0, config: { agentId: "a-1", image: "busybox", command: ["sleep", "1"], env: { A: "1", B: "" } } },
    },
  });
}

describe("preEncoded", () => {
  it("serializes to exactly the bytes of the message, which decode back to an equal message", () => {
    for (const message of [sample(1n), sample(2n ** 40n, "x".repeat(70_000)), create(WatchAgentsResponseSchema, { event: { type: EventType.BOOKMARK, revision: 7n } })]) {
      const bytes = toBinary(WatchAgentsResponseSchema, message);
      const shell = preEncoded(WatchAgentsResponseSchema, message);
      expect(shell).not.toBe(message);
      expect(Buffer.from(toBinary(WatchAgentsResponseSchema, shell)).equals(Buffer.from(bytes))).toBe(true);
      expect(equals(WatchAgentsResponseSchema, fromBinary(WatchAgentsResponseSchema, toBinary(WatchAgentsResponseSchema, shell)), message)).toBe(true);
    }
  });

  it("returns an empty message as it is", () => {
    const empty = create(WatchAgentsResponseSchema);
    expect(preEncoded(WatchAgentsResponseSchema, empty)).toBe(empty);
  });
});

describe("SharedResponses", () => {
  it("builds once per key and version; binary callers share one encoding, JSON callers get the plain message", () => {
    const shared = new SharedResponses(WatchAgentsResponseSchema);
    const key = {};
    let builds = 0;
    const build = (revision: bigint) => () => {
      builds++;
      return sample(revision);
    };
    const plain = shared.get(key, "1:added", false, build(1n));
    const binary = shared.get(key, "1:added", true, build(1n));
    expect(shared.get(key, "1:added", true, build(1n))).toBe(binary);
    expect(shared.get(key, "1:added", false, build(1n))).toBe(plain);
    expect(builds).toBe(1);
    expect(toJson(WatchAgentsResponseSchema, plain)).toMatchObject({ event: { type: "EVENT_TYPE_ADDED", revision: "1", agent: { agentId: "a-1" } } });
    expect(toBinary(WatchAgentsResponseSchema, binary)).toEqual(toBinary(WatchAgentsResponseSchema, plain));

    // A new version of the same key is built again.
    const next = shared.get(key, "2:changed", false, build(2n));
    expect(builds).toBe(2);
    expect(next.event?.revision).toBe(2n);
    // No key (an event without an entity): built every time.
    shared.get(undefined, "3:removed", true, build(3n));
    shared.get(undefined, "3:removed", true, build(3n));
    expect(builds).toBe(4);
  });

  it("tells binary protocols from JSON ones by the request's content type", () => {
    const h = (ct: string) => new Headers({ "content-type": ct });
    for (const ct of ["application/grpc", "application/grpc+proto", "application/grpc-web+proto", "application/connect+proto", "application/proto"]) {
      expect(isBinaryCall(h(ct)), ct).toBe(true);
    }
    for (const ct of ["application/grpc+json", "application/grpc-web+json", "application/connect+json", "application/json", "application/connect+json; charset=utf-8", "Application/JSON"]) {
      expect(isBinaryCall(h(ct)), ct).toBe(false);
    }
  });
});
