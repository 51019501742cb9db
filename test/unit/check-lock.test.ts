// The lint step's lock check: a lock that misses a platform package (as one made on a
// machine whose registry lacks them would) fails, naming the package; the committed lock passes.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runScript } from "../support/run-script.js";

const script = path.resolve("scripts/check-lock.mjs");

const check = (lockFile: string) => runScript(script, lockFile);

describe("scripts/check-lock.mjs", () => {
  it("passes the committed lock", () => {
    expect(check("package-lock.json").code).toBe(0);
  });

  it("fails a lock without one of buf's platform packages, naming it", () => {
    const lock = JSON.parse(readFileSync("package-lock.json", "utf8"));
    delete lock.packages["node_modules/@bufbuild/buf-win32-x64"];
    const file = path.join(mkdtempSync(path.join(tmpdir(), "lock-")), "package-lock.json");
    writeFileSync(file, JSON.stringify(lock));
    const { code, output } = check(file);
    expect(code).toBe(1);
    expect(output).toContain("@bufbuild/buf-win32-x64 (optional dependency of node_modules/@bufbuild/buf)");
  });

  it("resolves a nested optional dependency from its parent's own node_modules", () => {
    const lock = {
      packages: {
        "": { dependencies: { a: "1" } },
        "node_modules/a": { optionalDependencies: { b: "1" } },
        "node_modules/a/node_modules/b": { optional: true },
      },
    };
    const file = path.join(mkdtempSync(path.join(tmpdir(), "lock-")), "package-lock.json");
    writeFileSync(file, JSON.stringify(lock));
    expect(check(file).code).toBe(0);
  });
});
