#!/usr/bin/env node
// Lint step: package-lock.json must list every optional dependency of every package it
// holds (the platform binaries of @bufbuild/buf, esbuild, rolldown…). npm only records
// the ones its registry serves, and `npm ci` refuses a lock that misses one on a machine
// whose registry has it ("Missing: @bufbuild/buf-darwin-arm64 from lock file"). A lock
// regenerated where some are not served would break every other machine: fail here.
import { readFileSync } from "node:fs";

const lockPath = process.argv[2] ?? "package-lock.json";
const lock = JSON.parse(readFileSync(lockPath, "utf8"));
const packages = lock.packages ?? {};

/** Node's resolution: the nearest node_modules/<name> walking up from the dependent. */
function resolves(from, name) {
  let base = from;
  for (;;) {
    if (packages[base ? `${base}/node_modules/${name}` : `node_modules/${name}`]) return true;
    if (!base) return false;
    const i = base.lastIndexOf("/node_modules/");
    base = i >= 0 ? base.slice(0, i) : "";
  }
}

const missing = [];
for (const [where, meta] of Object.entries(packages)) {
  for (const name of Object.keys(meta.optionalDependencies ?? {})) {
    if (!resolves(where, name)) missing.push(`${name} (optional dependency of ${where || "the root"})`);
  }
}
if (missing.length > 0) {
  console.error(`${lockPath} lacks ${missing.length} optional package(s); npm ci fails where the registry serves them:`);
  for (const m of missing) console.error(`  - ${m}`);
  console.error("Restore the complete lock (e.g. from a machine whose registry serves every platform package) instead of committing one made here.");
  process.exit(1);
}
console.log(`check-lock: ${lockPath} lists every optional dependency of its ${Object.keys(packages).length} packages`);
