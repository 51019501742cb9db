/**
 * Image references are checked with Docker's grammar when an agent is registered (and a
 * task names an image) and again when it starts, in the same words: INVALID_ARGUMENT
 * naming the field, never the engine's bare "invalid reference format".
 */
import { afterEach, describe, expect, it } from "vitest";
import { validateAgentConfig } from "../../src/core/agent-config.js";
import { imageReferenceProblem } from "../../src/core/image-reference.js";
import { closeCores, openAgentCore } from "../support/core-fixture.js";
import { rejection } from "../support/errors.js";

afterEach(closeCores);

describe("image references", () => {
  it.each([
    "busybox",
    "agentorch/busybox:test",
    "localhost:5000/a/b:1.2-rc_3",
    "registry.example.com/team/agent.v2__x",
    "[::1]:5000/x",
    "Registry.Local/x", // an uppercase first component is a registry host, as Docker reads it
    `x@sha256:${"a".repeat(64)}`,
    `x:tag@sha256:${"0".repeat(64)}`,
  ])("accepts %s", (image) => {
    expect(imageReferenceProblem(image)).toBeUndefined();
  });

  it.each([
    ["agentorch/BusyBox:test", "the repository path must be lowercase"],
    ["BUSYBOX", "the repository path must be lowercase"],
    ["x:", "expected [registry[:port]/]name[:tag][@digest]"],
    ["x::1", "expected"],
    ["-x", "expected"],
    ["a//b", "expected"],
    ["x:-tag", "expected"],
    ["x@sha256:abc", "expected"],
    [`a/${"b".repeat(254)}`, "longer than 255"],
  ])("refuses %s", (image, problem) => {
    expect(imageReferenceProblem(image)).toContain(problem);
  });

  it("refuses at register and at start with the same INVALID_ARGUMENT naming the field", async () => {
    const message = 'image "agentorch/BusyBox:test" is not a valid image reference: the repository path must be lowercase';
    expect(() => validateAgentConfig({ agentId: "a", image: "agentorch/BusyBox:test" })).toThrow(message);
    const { agents, store } = await openAgentCore();
    await agents.register({ agentId: "old", image: "busybox:test", command: ["sleep", "1"] });
    // An agent stored before the check existed.
    const stored = store.getAgent("old")!;
    store.updateAgent({ ...stored, config: { ...stored.config, image: "agentorch/BusyBox:test" } });
    const err = await rejection(agents.start("old"));
    expect({ kind: err.kind, message: err.message }).toEqual({ kind: "invalid_argument", message });
    expect(agents.get("old").status).toBe("idle");
  });
});
