#!/usr/bin/env node
// Lint step: no import cycle among the TypeScript files under a directory (src/ unless
// told). Two modules that import each other cannot be read, tested or replaced one at a
// time, and a cycle of value imports can leave a binding undefined at load time.
//
// Imports are read with TypeScript's own pre-processor (typescript is already a dev
// dependency; no plugin is needed): `import … from`, `export … from`, side-effect imports,
// `import()` calls and `import("…")` types; comments and strings are not mistaken for
// imports. Type-only imports count too: a type that crosses both ways still ties the two
// modules' concepts together (the agent-service <-> agent-supervisor cycle was half type
// imports), and the cure is the same, a narrow interface where the dependency belongs.
// Only relative specifiers are followed ("./x.js" is x.ts); packages cannot close a cycle.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import ts from "typescript";

const root = path.resolve(process.argv[2] ?? "src");

/** Every .ts file under dir (no declaration files). */
function sources(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) out.push(...sources(file));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(file);
  }
  return out;
}

/** The file a relative specifier names, as Node ESM + TypeScript resolve it here; undefined outside the tree. */
function resolve(from, specifier) {
  if (!specifier.startsWith(".")) return undefined;
  const base = path.resolve(path.dirname(from), specifier);
  const candidates = [base.replace(/\.(m|c)?js$/, ".$1ts"), base, `${base}.ts`, path.join(base, "index.ts")];
  return candidates.find((c) => c.endsWith(".ts") && existsSync(c) && statSync(c).isFile());
}

const files = sources(root);
const known = new Set(files);
/** file -> the files it imports (inside the tree). */
const edges = new Map();
for (const file of files) {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
  const targets = new Set();
  for (const { fileName } of importedFiles) {
    const target = resolve(file, fileName);
    if (target && known.has(target)) targets.add(target);
  }
  edges.set(file, [...targets].sort());
}

/** Tarjan's strongly connected components; iterative, so a deep chain cannot overflow the stack. */
function components() {
  let next = 0;
  const index = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const out = [];
  for (const start of files) {
    if (index.has(start)) continue;
    const work = [{ node: start, i: 0 }];
    index.set(start, next);
    low.set(start, next++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work.at(-1);
      const targets = edges.get(frame.node);
      if (frame.i < targets.length) {
        const t = targets[frame.i++];
        if (!index.has(t)) {
          index.set(t, next);
          low.set(t, next++);
          stack.push(t);
          onStack.add(t);
          work.push({ node: t, i: 0 });
        } else if (onStack.has(t)) {
          low.set(frame.node, Math.min(low.get(frame.node), index.get(t)));
        }
        continue;
      }
      work.pop();
      const parent = work.at(-1);
      if (parent) low.set(parent.node, Math.min(low.get(parent.node), low.get(frame.node)));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component = [];
        let member;
        do {
          member = stack.pop();
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        const selfImport = component.length === 1 && edges.get(member).includes(member);
        if (component.length > 1 || selfImport) out.push(component.sort());
      }
    }
  }
  return out;
}

/** One cycle through the component's first file, as a path back to it (breadth-first: a shortest one). */
function cycleThrough(component) {
  const inside = new Set(component);
  const start = component[0];
  const previous = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift();
    for (const t of edges.get(node)) {
      if (!inside.has(t)) continue;
      if (t === start) {
        const cycle = [start];
        for (let n = node; n !== start; n = previous.get(n)) cycle.splice(1, 0, n);
        cycle.push(start);
        return cycle;
      }
      if (!previous.has(t)) {
        previous.set(t, node);
        queue.push(t);
      }
    }
  }
  return [start, start];
}

/** Paths as the reader knows them: from the working directory, or from the root when it lies elsewhere. */
const rel = (f) => {
  const fromCwd = path.relative(process.cwd(), f);
  return fromCwd.startsWith("..") ? path.relative(path.dirname(root), f) : fromCwd;
};
const cycles = components();
if (cycles.length > 0) {
  console.error(`check-cycles: ${cycles.length} import cycle(s) under ${rel(root) || "."}:`);
  for (const component of cycles) {
    console.error(`  - ${cycleThrough(component).map(rel).join(" -> ")}`);
    if (component.length > 2) console.error(`    (all of: ${component.map(rel).join(", ")})`);
  }
  console.error("Break each one: move the shared piece to a module both can import, or depend on a narrow interface.");
  process.exit(1);
}
console.log(`check-cycles: no import cycle among the ${files.length} files under ${rel(root) || "."}`);
