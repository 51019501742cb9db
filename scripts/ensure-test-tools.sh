#!/usr/bin/env bash
# Installs the Debian packages the tests use beside Node and Docker, when missing and
# we are root: Python grpcio + protobuf + protoc + grpc_python_plugin (the Python client
# tests and the recipe in examples/python); mkfs.ext4 and losetup (workspace size limits,
# which the service also needs in production when it runs as root); docker-compose (the image
# test runs deploy/compose.yaml) unless the compose plugin is there; openssl (the TLS tests make
# their certificates with it). Without root
# it says what is missing; the tests then skip those suites loudly (CI refuses to).
set -euo pipefail
log() { printf 'ensure-test-tools: %s\n' "$*" >&2; }
need=()
/usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null || need+=(python3-grpcio python3-protobuf)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v grpc_python_plugin >/dev/null 2>&1 || need+=(protobuf-compiler-grpc)
PATH="$PATH:/usr/sbin:/sbin" command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
PATH="$PATH:/usr/sbin:/sbin" command -v losetup >/dev/null 2>&1 || need+=(mount)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -eq 0 ]; then log "all present"; exit 0; fi
if [ "$(id -u)" != 0 ]; then log "missing ${need[*]} and not root: install them with apt-get"; exit 1; fi
log "installing ${need[*]} from Debian"
export DEBIAN_FRONTEND=noninteractive
# The package lists may be stale (apt-get update once), and another apt may hold the lock a moment.
for i in $(seq 1 30); do
  if apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then log "installed"; exit 0; fi
  if [ "$i" = 1 ]; then apt-get update -qq >/dev/null 2>&1 || true; fi
  sleep 5
done
log "could not install ${need[*]}"; exit 1
