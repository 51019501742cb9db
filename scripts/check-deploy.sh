#!/usr/bin/env bash
# Validates the deployment examples without a registry or a running service:
#   deploy/compose.yaml     `docker compose config` (or docker-compose) when installed
#   deploy/agentorch.service `systemd-analyze verify` when installed
#   both, and the Dockerfile  scripts/check-deploy.mjs: they agree on what matters (the socket
#                            mount and its group, the data directory, the port, tokens)
# test/e2e/image.test.ts runs it (and runs the image and the compose file for real).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'check-deploy: %s\n' "$*" >&2; }

# Values for the variables the compose file requires (any well-formed ones will do).
export DOCKER_GID="${DOCKER_GID:-0}"
export AGENTORCH_TOKENS="${AGENTORCH_TOKENS:-check:admin:$(printf '0%.0s' $(seq 64))}"
if docker compose version >/dev/null 2>&1; then
  docker compose -f deploy/compose.yaml config -q && log "compose.yaml: docker compose config ok"
elif command -v docker-compose >/dev/null 2>&1; then
  docker-compose -f deploy/compose.yaml config -q && log "compose.yaml: docker-compose config ok"
else
  log "compose.yaml: no docker compose here; checked by check-deploy.mjs only"
fi

if command -v systemd-analyze >/dev/null 2>&1 && [ -x /usr/bin/docker ]; then
  # It names unknown directives and the executables the unit runs that are missing.
  systemd-analyze verify deploy/agentorch.service && log "agentorch.service: systemd-analyze verify ok"
else
  log "agentorch.service: no systemd-analyze or no /usr/bin/docker here; checked by check-deploy.mjs only"
fi

node scripts/check-deploy.mjs
