#!/usr/bin/env bash
# Installs the npm dependencies exactly as package-lock.json pins them, with `npm ci`:
# exact, never rewrites the lock. The lock lists every platform package of every
# dependency (buf, esbuild, rolldown…), so it installs on any machine whatever its
# registry serves; `npm run lint` checks that it stays so (scripts/check-lock.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
