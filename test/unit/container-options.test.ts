/**
 * The hardened container definition (DESIGN.md "Containers") as a pure function, checked
 * without an engine: a change that drops a hardening option fails here on any machine.
 * The same options are checked on a real container in test/integration/docker-backend.test.ts.
 * Expected values are written out, not taken from the module's constants, so a change
 * to a constant fails too.
 */
import { describe, expect, it } from "vitest";
import { buildCreateOptions, containerName, fromDockerLabels, toDockerLabels } from "../../src/backends/docker/container-options.js";
import type { ContainerSpec } from "../../src/core/ports.js";

const MiB = 1024 * 1024;

function spec(over: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    image: "agentorch/busybox:test",
    command: ["sh", "-c", "echo hi"],
    env: { A: "1", B: "x=y" },
    policy: "container",
    resources: { memoryBytes: 256 * MiB, cpus: 0.5, pidsLimit: 128, maxOutputBytes: 64 * 1024 },
    workspace: { hostPath: "/data/workspaces/a-1", mountPoint: "/workspace", readOnly: false },
    socketDir: "/data/sock",
    labels: { agentId: "a-1", instanceId: "inst-1" },
    ...over,
  };
}

describe("buildCreateOptions", () => {
  it("drops every capability, forbids new privileges and privileged mode, and runs an init", () => {
    const host = buildCreateOptions(spec(), "65534", "n").HostConfig!;
    expect(host.CapDrop).toEqual(["ALL"]);
    expect(host.CapAdd).toBeUndefined();
    expect(host.SecurityOpt).toEqual(["no-new-privileges"]);
    expect(host.Privileged).toBe(false);
    expect(host.Init).toBe(true);
  });

  it("makes the root filesystem read-only with a small, non-executable /tmp", () => {
    const host = buildCreateOptions(spec(), "65534", "n").HostConfig!;
    expect(host.ReadonlyRootfs).toBe(true);
    expect(Object.keys(host.Tmpfs!)).toEqual(["/tmp"]);
    const tmp = host.Tmpfs!["/tmp"]!.split(",");
    expect(tmp).toEqual(expect.arrayContaining(["noexec", "nosuid", "nodev"]));
    expect(tmp.find((o) => o.startsWith("size="))).toBe("size=64m");
  });

  it("runs as the given non-root user", () => {
    expect(buildCreateOptions(spec(), "65534", "n").User).toBe("65534");
    expect(buildCreateOptions(spec(), "1000:1000", "n").User).toBe("1000:1000");
  });

  it("has no network under policy CONTAINER and the bridge under CONTAINER_DIRECT", () => {
    expect(buildCreateOptions(spec(), "65534", "n").HostConfig!.NetworkMode).toBe("none");
    expect(buildCreateOptions(spec({ policy: "container_direct" }), "65534", "n").HostConfig!.NetworkMode).toBe("bridge");
  });

  it("limits pids, memory (no swap beyond it) and cpu", () => {
    const host = buildCreateOptions(spec(), "65534", "n").HostConfig!;
    expect(host.PidsLimit).toBe(128);
    expect(host.Memory).toBe(256 * MiB);
    expect(host.MemorySwap).toBe(256 * MiB);
    expect(host.NanoCpus).toBe(500_000_000);
    // cpus 0: no cpu limit at all, rather than a zero quota.
    expect(buildCreateOptions(spec({ resources: { ...spec().resources, cpus: 0 } }), "65534", "n").HostConfig!.NanoCpus).toBeUndefined();
  });

  it("bounds the engine's log files: 2 files of 4x the output cap, at least 1 MiB each", () => {
    const log = (maxOutputBytes: number) =>
      buildCreateOptions(spec({ resources: { ...spec().resources, maxOutputBytes } }), "65534", "n").HostConfig!.LogConfig;
    expect(log(64 * 1024)).toEqual({ Type: "json-file", Config: { "max-size": String(MiB), "max-file": "2" } });
    expect(log(1 * MiB)?.Config).toEqual({ "max-size": String(4 * MiB), "max-file": "2" });
  });

  it("labels the container with the agent, the instance and (for a task) the task", () => {
    expect(buildCreateOptions(spec(), "65534", "n").Labels).toEqual({
      "agentorch.managed": "true",
      "agentorch.agent-id": "a-1",
      "agentorch.instance": "inst-1",
    });
    const task = buildCreateOptions(spec({ labels: { agentId: "a-1", instanceId: "inst-1", taskId: "task-9" } }), "65534", "n");
    expect(task.Labels).toMatchObject({ "agentorch.task-id": "task-9" });
  });

  it("mounts the workspace at its mount point (rw or ro) and the socket directory read-only", () => {
    const o = buildCreateOptions(spec(), "65534", "n");
    expect(o.HostConfig!.Binds).toEqual(["/data/workspaces/a-1:/workspace:rw", "/data/sock:/run/agentorch:ro"]);
    expect(o.WorkingDir).toBe("/workspace");
    const ro = buildCreateOptions(spec({ workspace: { hostPath: "/w", mountPoint: "/src", readOnly: true }, socketDir: undefined }), "65534", "n");
    expect(ro.HostConfig!.Binds).toEqual(["/w:/src:ro"]);
  });

  it("passes image, command and env through, attaches nothing, and keeps the container after exit", () => {
    const o = buildCreateOptions(spec(), "65534", "agentorch-a-1-abcdef");
    expect(o).toMatchObject({
      name: "agentorch-a-1-abcdef",
      Image: "agentorch/busybox:test",
      Cmd: ["sh", "-c", "echo hi"],
      Env: ["A=1", "B=x=y"],
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: false,
      OpenStdin: false,
    });
    expect(o.HostConfig!.AutoRemove).toBe(false);
    // No command: the image's own, not an empty Cmd that would override it.
    expect(buildCreateOptions(spec({ command: [] }), "65534", "n").Cmd).toBeUndefined();
  });

  it("names the container after the agent when no name is given, differently each time", () => {
    const a = buildCreateOptions(spec(), "65534").name;
    expect(a).toMatch(/^agentorch-a-1-[0-9a-f]{6}$/);
    expect(containerName("a-1")).not.toBe(a);
  });
});

describe("Docker labels", () => {
  it("round-trip, with no task label for an agent container and missing labels read as empty", () => {
    for (const labels of [{ agentId: "a", instanceId: "i" }, { agentId: "a", instanceId: "i", taskId: "t" }]) {
      expect(fromDockerLabels(toDockerLabels(labels))).toEqual(labels);
    }
    expect(toDockerLabels({ agentId: "a", instanceId: "i", taskId: "" })).not.toHaveProperty("agentorch.task-id");
    expect(fromDockerLabels(undefined)).toEqual({ agentId: "", instanceId: "" });
  });
});
