#!/usr/bin/env bash
# Builds the local base image agentorch/busybox:test from Debian's static busybox
# (no registry can be reached here, so nothing is pulled). Adds curl and the shared
# libraries it needs, so agents can call the service over its unix socket.
# Idempotent: does nothing when the image exists, unless --force.
set -euo pipefail
IMAGE="${AGENTORCH_TEST_IMAGE:-agentorch/busybox:test}"
if [ "${1:-}" != "--force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "make-test-image: $IMAGE exists" >&2; exit 0
fi
BUSYBOX="$(command -v busybox || true)"
if [ -z "$BUSYBOX" ] || ! file -L "$BUSYBOX" 2>/dev/null | grep -q static; then
  for c in /bin/busybox /usr/bin/busybox; do [ -x "$c" ] && BUSYBOX="$c"; done
fi
[ -n "$BUSYBOX" ] || { echo "make-test-image: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc" "$dir/workspace" "$dir/run/agentorch"
cp "$BUSYBOX" "$dir/bin/busybox"
for app in $("$dir/bin/busybox" --list); do
  [ "$app" = busybox ] || ln -sf busybox "$dir/bin/$app"
done
mkdir -p "$dir/usr/bin" "$dir/sbin" "$dir/usr/sbin"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\nagent:x:1000:1000:agent:/workspace:/bin/sh\n' >"$dir/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\nagent:x:1000:\n' >"$dir/etc/group"
# curl with its shared libraries, for Connect JSON over the unix socket.
if command -v curl >/dev/null 2>&1; then
  CURL="$(command -v curl)"
  mkdir -p "$dir/usr/local/bin"
  cp "$CURL" "$dir/usr/local/bin/curl"
  ldd "$CURL" | awk '/=>/ {print $3} $1 ~ /ld-linux/ {print $1}' | while read -r lib; do
    [ -f "$lib" ] || continue
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done
  # libnss and CA certs are not needed for http over a unix socket.
fi
chmod 1777 "$dir/tmp"
tar -C "$dir" -c . | docker import -c 'ENV PATH=/usr/local/bin:/bin:/usr/bin' - "$IMAGE" >/dev/null
echo "make-test-image: built $IMAGE" >&2
