#!/usr/bin/env bash
# The one command that passes the tests on a fresh machine: makes sure a Docker engine
# and the local test image exist (installing docker.io from Debian when run as root),
# installs dependencies, then runs lint, the gen/ check and the whole vitest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if bash scripts/ensure-docker.sh; then
  bash scripts/make-test-image.sh
else
  echo "test.sh: no Docker engine: the Docker suites will be SKIPPED (CI refuses to skip them)" >&2
fi
bash scripts/ensure-test-tools.sh || echo "test.sh: Python grpcio/protoc missing: the Python client tests will be SKIPPED (CI refuses to skip them)" >&2
bash scripts/ensure-chromium.sh || echo "test.sh: no chromium: the browser tests will be SKIPPED (CI refuses to skip them)" >&2
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  bash scripts/install-deps.sh
fi
npm test
