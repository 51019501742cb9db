#!/usr/bin/env bash
# Makes sure a Docker engine answers on /var/run/docker.sock (or $DOCKER_HOST).
# Installs docker.io and busybox-static from Debian when missing and we are root,
# starts dockerd in the background when none runs, and waits for it.
# Exits non-zero, saying what is missing, when no engine can be had.
set -euo pipefail

log() { printf 'ensure-docker: %s\n' "$*" >&2; }
# `docker version` asks the engine for its version only; `docker info` can hang on a busy engine.
engine_up() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if [ -n "${DOCKER_HOST:-}" ] && engine_up; then
  log "engine at $DOCKER_HOST answers"; exit 0
fi
if [ -S /var/run/docker.sock ] && engine_up; then
  log "engine at /var/run/docker.sock answers"; exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v busybox >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    log "no Docker engine and not root: install docker.io and busybox-static, start dockerd, then retry"; exit 1
  fi
  log "installing docker.io and busybox-static from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io busybox-static >/dev/null
fi

if [ "$(id -u)" != 0 ]; then
  log "dockerd is installed but not running, and only root can start it here"; exit 1
fi

# A dockerd that is shutting down (or a stale pid file naming a reused pid) makes a new one
# refuse to start. Only the default daemon's pid file counts: other daemons (e.g. a test's
# private engine on its own socket) may run beside it.
PIDFILE=/var/run/docker.pid
old_pid() { [ -f "$PIDFILE" ] && cat "$PIDFILE" 2>/dev/null; }
for _ in $(seq 1 50); do
  pid=$(old_pid || true)
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]; then break; fi
  sleep 0.2
done
pid=$(old_pid || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
  log "dockerd (pid $pid) exists but does not answer; waiting longer"
else
  rm -f "$PIDFILE" /var/run/docker/containerd/containerd.pid 2>/dev/null || true
  log "starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/agentorch-dockerd.log 2>&1 &
fi

for _ in $(seq 1 150); do
  if engine_up; then log "engine is up"; exit 0; fi
  sleep 0.2
done
log "dockerd did not come up in 30 s; see /var/log/agentorch-dockerd.log"
tail -n 20 /var/log/agentorch-dockerd.log >&2 || true
exit 1
