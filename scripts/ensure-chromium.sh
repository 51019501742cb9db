#!/usr/bin/env bash
# Makes sure a headless Chromium exists for the browser tests (test/e2e/browser.test.ts):
# installs Debian's `chromium` when missing and we are root. Exits non-zero, saying so,
# when it cannot be had (the test then skips loudly; under CI it fails instead).
set -euo pipefail
log() { printf 'ensure-chromium: %s\n' "$*" >&2; }
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  log "no chromium and not root: install Debian's chromium package to run the browser tests"; exit 1
fi
log "installing chromium from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
