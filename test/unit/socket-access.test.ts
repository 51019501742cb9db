/**
 * EACCES on the engine's unix socket: the UNAVAILABLE error names the socket's owner, group
 * and mode and the process's uid and groups, and the group to add (docker run --group-add).
 * The real case, the image run without the group, is in test/e2e/image.test.ts.
 */
import { chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { toAgentorchError } from "../../src/backends/docker/docker-errors.js";
import { socketAccessHint } from "../../src/backends/docker/socket-access.js";

describe("EACCES on the engine's socket", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "agentorch-sock-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("names the socket's group to add, and the process's uid and groups", () => {
    const file = path.join(dir, "docker.sock");
    writeFileSync(file, "");
    const groups = process.getgroups?.() ?? [];
    // A group this process is not in (as root, chown can give the file any group).
    const gid = process.getuid?.() === 0 ? 4242 : undefined;
    if (gid !== undefined) chownSync(file, 0, gid);
    const hint = socketAccessHint(file);
    if (gid !== undefined && !groups.includes(gid)) {
      expect(hint).toContain(`group ${gid}`);
      expect(hint).toContain(`docker run --group-add ${gid}`);
    }
    expect(hint).toContain(`this process runs as uid ${process.getuid?.()}`);
    expect(socketAccessHint(path.join(dir, "missing.sock"))).toBe(`permission denied on ${path.join(dir, "missing.sock")}`);
  });

  it("is part of the UNAVAILABLE error a refused connection becomes", () => {
    const file = path.join(dir, "docker.sock");
    const refused = Object.assign(new Error(`connect EACCES ${file}`), { code: "EACCES" });
    const err = toAgentorchError(refused, `unix://${file}`, "ping");
    expect(err.kind).toBe("unavailable");
    expect(err.message).toMatch(new RegExp(`^Docker engine unreachable at unix://${file}: EACCES \\(permission denied: ${file} is owned by uid \\d+, group \\d+, mode \\d{3}`));
    // Over TCP there is no socket file to look at.
    expect(toAgentorchError(refused, "tcp://10.0.0.1:2375", "ping").message).toBe("Docker engine unreachable at tcp://10.0.0.1:2375: EACCES");
  });
});
