#!/usr/bin/env bash
# Installs the npm dependencies exactly as package-lock.json pins them.
# Not `npm ci`: the registry reachable here lacks @bufbuild/buf's darwin/win32/armv7
# binary packages, so the lock cannot list them, and `npm ci` then refuses the lock as
# out of sync with buf's optionalDependencies. `npm install` with a lockfile installs the
# same pinned versions and leaves the lock unchanged (checked below).
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(sha256sum package-lock.json)
npm install --no-audit --no-fund
if [ "$before" != "$(sha256sum package-lock.json)" ]; then
  echo "install-deps: npm install changed package-lock.json; commit the lock made on Node 20" >&2
  exit 1
fi
