/**
 * The workspace adapter on the real file system: directories the container user can
 * write, bounded reads, and no way out of the workspace (.., absolute paths, symlinks).
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFsWorkspaces } from "../../src/backends/fs-workspaces.js";
import { isAgentorchError } from "../../src/core/errors.js";
import { createTestLogger, type LogLine } from "../fakes/clock-and-logger.js";

const isRoot = process.getuid?.() === 0;

async function rejectsWithKind(p: Promise<unknown>, kind: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "expected a rejection").toBeDefined();
  expect(isAgentorchError(err) ? err.kind : err).toBe(kind);
}

describe("fs workspaces", () => {
  let base: string;
  let root: string;
  let outside: string;
  const lines: LogLine[] = [];
  const ws = () => createFsWorkspaces({ root, containerUser: "65534:65534", logger: createTestLogger(lines) });

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), "agentorch-ws-"));
    root = join(base, "workspaces");
    outside = join(base, "outside");
    await mkdir(outside);
    await writeFile(join(outside, "secret.txt"), "top secret");
  });
  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it("creates the directory idempotently, owned by (or open to) the container user", async () => {
    const w = ws();
    const dir = await w.create("agent-a");
    expect(dir).toBe(join(root, "agent-a"));
    expect(await w.create("agent-a")).toBe(dir);
    const st = await stat(dir);
    expect(st.isDirectory()).toBe(true);
    if (isRoot) {
      expect([st.uid, st.gid]).toEqual([65534, 65534]);
      expect(st.mode & 0o777).toBe(0o750);
      // (That the container's user really writes there is checked in docker-backend.test.ts.)
    } else {
      expect(st.mode & 0o777).toBe(0o777);
      expect(lines.filter((l) => l.level === "warn")).toHaveLength(1);
    }
  });

  it("reads files, at most maxBytes, and undefined when absent", async () => {
    const w = ws();
    const dir = await w.create("agent-read");
    await mkdir(join(dir, "sub"));
    await writeFile(join(dir, "sub", "result.json"), '{"ok":true}');
    expect(Buffer.from((await w.readFile("agent-read", "sub/result.json", 1024))!).toString()).toBe('{"ok":true}');
    expect(Buffer.from((await w.readFile("agent-read", "sub/./result.json", 5))!).toString()).toBe('{"ok"');
    expect(await w.readFile("agent-read", "missing.json", 1024)).toBeUndefined();
    expect(await w.readFile("agent-read", "nodir/missing.json", 1024)).toBeUndefined();
    expect(await w.readFile("never-created", "x", 10)).toBeUndefined();
    // A symlink that stays inside is fine.
    await symlink("sub/result.json", join(dir, "inner-link"));
    expect(Buffer.from((await w.readFile("agent-read", "inner-link", 100))!).toString()).toBe('{"ok":true}');
  });

  it("refuses paths that leave the workspace: .., absolute, symlinks out", async () => {
    const w = ws();
    const dir = await w.create("agent-esc");
    await w.create("agent-other");
    await writeFile(join(root, "agent-other", "theirs.txt"), "not yours");
    await symlink(join(outside, "secret.txt"), join(dir, "abs-link"));
    await symlink("../../outside/secret.txt", join(dir, "rel-link"));
    await symlink(outside, join(dir, "dir-link"));

    await rejectsWithKind(w.readFile("agent-esc", "../agent-other/theirs.txt", 100), "invalid_argument");
    await rejectsWithKind(w.readFile("agent-esc", "../../outside/secret.txt", 100), "invalid_argument");
    await rejectsWithKind(w.readFile("agent-esc", join(outside, "secret.txt"), 100), "invalid_argument");
    await rejectsWithKind(w.readFile("agent-esc", "abs-link", 100), "invalid_argument");
    await rejectsWithKind(w.readFile("agent-esc", "rel-link", 100), "invalid_argument");
    await rejectsWithKind(w.readFile("agent-esc", "dir-link/secret.txt", 100), "invalid_argument");
    await rejectsWithKind(w.readFile("../outside", "secret.txt", 100), "invalid_argument");

    await rejectsWithKind(w.removeFile("agent-esc", "../agent-other/theirs.txt"), "invalid_argument");
    await rejectsWithKind(w.removeFile("agent-esc", "dir-link/secret.txt"), "invalid_argument");
    await rejectsWithKind(w.removeFile("agent-esc", "/etc/passwd"), "invalid_argument");
    expect(await readFile(join(outside, "secret.txt"), "utf8")).toBe("top secret");
    expect(await readFile(join(root, "agent-other", "theirs.txt"), "utf8")).toBe("not yours");

    // Removing a link removes the link, never its target.
    await w.removeFile("agent-esc", "abs-link");
    await expect(stat(join(dir, "abs-link"))).rejects.toThrow();
    expect(await readFile(join(outside, "secret.txt"), "utf8")).toBe("top secret");
  });

  it("refuses a FIFO instead of hanging on it", async () => {
    const w = ws();
    const dir = await w.create("agent-fifo");
    execFileSync("mkfifo", [join(dir, "result.json")]);
    await rejectsWithKind(w.readFile("agent-fifo", "result.json", 100), "invalid_argument");
  });

  it("removes files and whole workspaces, quietly when already gone", async () => {
    const w = ws();
    const dir = await w.create("agent-rm");
    await writeFile(join(dir, "result.json"), "{}");
    await w.removeFile("agent-rm", "result.json");
    expect(await w.readFile("agent-rm", "result.json", 10)).toBeUndefined();
    await w.removeFile("agent-rm", "result.json");
    await mkdir(join(dir, "deep", "er"), { recursive: true });
    await writeFile(join(dir, "deep", "er", "f"), "x");
    await w.remove("agent-rm");
    await expect(stat(dir)).rejects.toThrow();
    await w.remove("agent-rm");
  });
});
