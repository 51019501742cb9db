#!/usr/bin/env node
// The `agentorch` executable. Installed from the package (`npm install agentorch-*.tgz`), it
// runs the compiled CLI in dist/. In a source checkout (src/ beside it, tsx installed as a
// devDependency) it runs the TypeScript sources through tsx, so what runs is always what is
// checked out, never a stale build; AGENTORCH_COMPILED=1 makes a checkout use dist/ too.
import { existsSync } from "node:fs";

const compiled = new URL("../dist/src/cli/main.js", import.meta.url);
const sources = new URL("../src/cli/main.ts", import.meta.url);

async function tsxRegister() {
  try {
    return (await import("tsx/esm/api")).register;
  } catch {
    return undefined;
  }
}

const register = existsSync(sources) && process.env.AGENTORCH_COMPILED !== "1" ? await tsxRegister() : undefined;
if (register) {
  register();
  await import(sources.href);
} else if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  console.error("agentorch: dist/ is missing: run `npm run build` (or `npm ci` for the tsx development setup)");
  process.exit(1);
}
