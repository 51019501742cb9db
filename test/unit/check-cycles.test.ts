// The lint step's import-cycle check: a tree with a cycle (through value imports, type-only
// imports, re-exports or import() alike) fails and names the cycle; src/ passes.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runScript } from "../support/run-script.js";

const script = path.resolve("scripts/check-cycles.mjs");

const check = (dir: string) => runScript(script, dir);

/** Writes files (path -> source) into a new temp tree; returns its src directory. */
function tree(files: Record<string, string>): string {
  const src = path.join(mkdtempSync(path.join(tmpdir(), "cycles-")), "src");
  for (const [name, source] of Object.entries(files)) {
    const file = path.join(src, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, source);
  }
  return src;
}

describe("scripts/check-cycles.mjs", () => {
  it("passes src/", () => {
    const { code, output } = check("src");
    expect(code, output).toBe(0);
  });

  it("passes a tree whose imports only point one way", () => {
    const src = tree({
      "a.ts": 'import { b } from "./b.js";\nexport const a = b;\n',
      "b.ts": 'import { c } from "./lib/c.js";\nexport const b = c;\n',
      "lib/c.ts": 'import { readFileSync } from "node:fs";\nexport const c = readFileSync;\n',
    });
    expect(check(src).code).toBe(0);
  });

  it("fails a cycle of value imports across folders, naming it", () => {
    const src = tree({
      "core/service.ts": 'import { Supervisor } from "./supervisor.js";\nexport class Service { s = new Supervisor(); }\n',
      "core/supervisor.ts": 'import { helper } from "../util/helper.js";\nexport class Supervisor { h = helper; }\n',
      "util/helper.ts": 'import type { Service } from "../core/service.js";\nexport const helper = (s?: Service) => s;\n',
      "other.ts": 'import { helper } from "./util/helper.js";\nexport const o = helper;\n',
    });
    const { code, output } = check(src);
    expect(code).toBe(1);
    expect(output).toContain("1 import cycle(s)");
    expect(output).toContain("src/core/service.ts -> src/core/supervisor.ts -> src/util/helper.ts -> src/core/service.ts");
    expect(output).not.toContain("other.ts");
  });

  it("counts type-only imports, re-exports and import() as edges", () => {
    const byTypeImport = tree({
      "a.ts": 'import type { B } from "./b.js";\nexport type A = B[];\n',
      "b.ts": 'import type { A } from "./a.js";\nexport type B = { a?: A };\n',
    });
    expect(check(byTypeImport).code).toBe(1);
    const byReExport = tree({
      "a.ts": 'export { b } from "./b.js";\nexport const a = 1;\n',
      "b.ts": 'export * from "./a.js";\nexport const b = 2;\n',
    });
    expect(check(byReExport).code).toBe(1);
    const byDynamicImport = tree({
      "a.ts": 'export const load = () => import("./b.js");\n',
      "b.ts": 'import { load } from "./a.js";\nexport const again = load;\n',
    });
    expect(check(byDynamicImport).code).toBe(1);
  });

  it("fails a file that imports itself, and reports each separate cycle", () => {
    const src = tree({
      "self.ts": 'import { x } from "./self.js";\nexport const y = x;\nexport const x = 1;\n',
      "p.ts": 'import { q } from "./q.js";\nexport const p = q;\n',
      "q.ts": 'import { p } from "./p.js";\nexport const q = p;\n',
    });
    const { code, output } = check(src);
    expect(code).toBe(1);
    expect(output).toContain("2 import cycle(s)");
    expect(output).toContain("src/self.ts -> src/self.ts");
    expect(output).toContain("src/p.ts -> src/q.ts -> src/p.ts");
  });

  it("is not fooled by imports inside comments or strings", () => {
    const src = tree({
      "a.ts": 'import { b } from "./b.js";\nexport const a = b;\n',
      "b.ts": '// import { a } from "./a.js";\n/* import("./a.js") */\nexport const b = \'import { a } from "./a.js"\';\n',
    });
    expect(check(src).code).toBe(0);
  });
});
