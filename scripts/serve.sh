#!/usr/bin/env bash
# Runs agentorch on this machine: the README's one command.
#  - makes sure a Docker engine and the local base image exist where the machine allows
#    it (installing and starting dockerd needs root); if not, says what is missing and
#    starts anyway: the service runs without Docker and answers container RPCs UNAVAILABLE;
#  - installs the npm dependencies when node_modules is missing or older than the lockfile;
#  - then execs `npm start` (extra arguments are passed on: --listen HOST:PORT, --data-dir DIR).
# Configuration: AGENTORCH_* variables and DOCKER_HOST (see README "Configuration").
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'serve: %s\n' "$*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "Node.js 20 and npm are required and were not found on PATH"; exit 1
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  log "Node.js >= 20 is required (found $(node --version))"; exit 1
fi

docker_ok=0
if bash scripts/ensure-docker.sh; then
  if bash scripts/make-test-image.sh; then
    docker_ok=1
  else
    log "could not make the local base image (scripts/make-test-image.sh failed; it needs busybox-static)"
  fi
fi
if [ "$docker_ok" = 0 ]; then
  log "WARNING: no usable Docker engine; agentorch starts anyway, container RPCs answer UNAVAILABLE and health reports docker NOT_SERVING until an engine answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}"
fi

if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing dependencies"
  bash scripts/install-deps.sh
fi

exec npm start -- "$@"
