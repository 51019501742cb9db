#!/usr/bin/env bash
# Makes a local stand-in for node:20-bookworm-slim, the Dockerfile's default BASE, where no
# image registry can be reached: Debian bookworm (debootstrap, minbase, from Debian's mirror)
# plus this machine's Node, npm and node headers in /usr/local as the official image has
# them, and this machine's CA bundle (npm and Node trust what this machine trusts).
#
#   bash scripts/make-base-image.sh            # prints the tag, e.g. agentorch/node-base:20.20.2-bookworm
#   docker build --build-arg BASE="$(bash scripts/make-base-image.sh)" -t agentorch .
#
# Idempotent and cached by tag (the tag names the Node version): does nothing when the image
# exists, unless --force. Needs root (debootstrap); installs debootstrap from Debian when it
# is missing. Takes a minute or two; CI makes it before the tests (.ci/run).
set -euo pipefail

log() { printf 'make-base-image: %s\n' "$*" >&2; }

NODE="$(command -v node || true)"
[ -n "$NODE" ] || { log "node not found on PATH"; exit 1; }
NODE="$(readlink -f "$NODE")"
VERSION="$("$NODE" -p 'process.versions.node')"
SUITE="${AGENTORCH_BASE_SUITE:-bookworm}"
IMAGE="${AGENTORCH_BASE_IMAGE:-agentorch/node-base:${VERSION}-${SUITE}}"
MIRROR="${AGENTORCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ "${1:-}" != "--force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE exists"; echo "$IMAGE"; exit 0
fi
[ "$(id -u)" = 0 ] || { log "debootstrap needs root"; exit 1; }

# npm and the node headers as this machine has them (Debian's or NodeSource's layout: /usr).
PREFIX="$(dirname "$(dirname "$NODE")")"
NPM_DIR="$PREFIX/lib/node_modules/npm"
HEADERS="$PREFIX/include/node"
[ -f "$NPM_DIR/bin/npm-cli.js" ] || { log "npm not found at $NPM_DIR"; exit 1; }
[ -f "$HEADERS/node.h" ] || { log "node headers not found at $HEADERS (native modules could not build offline)"; exit 1; }

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq debootstrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
fi

root="$(mktemp -d /var/tmp/agentorch-base.XXXXXX)"
cleanup() {
  # debootstrap mounts proc and sys inside the tree; never delete through a mount.
  for m in proc sys dev/pts; do umount -l "$root/$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

started=$(date +%s)
log "debootstrap $SUITE (minbase) from $MIRROR"
debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || {
  tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1
}
rm -f "$root.log"

# Node, npm (npx) and the headers node-gyp needs to build better-sqlite3 without a download.
install -m 0755 "$NODE" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules" "$root/usr/local/include" "$root/usr/local/etc"
cp -a "$NPM_DIR" "$root/usr/local/lib/node_modules/npm"
cp -a "$HEADERS" "$root/usr/local/include/node"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
mkdir -p "$root/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
# npm's global config ($prefix/etc/npmrc): this machine's CAs, the local headers for node-gyp.
cat >"$root/usr/local/etc/npmrc" <<'EOF'
cafile=/etc/ssl/certs/ca-certificates.crt
nodedir=/usr/local
update-notifier=false
fund=false
audit=false
EOF
chroot "$root" /usr/local/bin/npm --version >/dev/null 2>&1 || { log "the copied node and npm do not run in $SUITE"; exit 1; }

# As slim as the official image: no package lists, caches, docs or device nodes.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/dev/* "$root"/tmp/*
chmod 1777 "$root/tmp"

changes=(
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  -c "ENV NODE_VERSION=$VERSION"
  -c 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt'
  -c 'CMD ["node"]'
)
tar --numeric-owner -C "$root" -c . | docker import "${changes[@]}" - "$IMAGE" >/dev/null
log "built $IMAGE in $(( $(date +%s) - started )) s"
echo "$IMAGE"
