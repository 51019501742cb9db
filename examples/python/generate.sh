#!/usr/bin/env bash
# Generates the Python modules of agentorch's API (messages and gRPC stubs) into $1
# (default ./agentorch_py) with Debian's protoc and grpc_python_plugin:
#   apt-get install -y python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc
# protoc must be >= 3.15 (proto3 `optional`): Debian 12's protobuf-compiler is 3.21. Not
# python3-grpc-tools: it bundles protoc 3.5, which fails on `optional`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
mkdir -p "${1:-agentorch_py}"
out="$(cd "${1:-agentorch_py}" && pwd)"
cd "$root/proto"
protoc -I . -I /usr/include \
  --python_out="$out" --grpc_out="$out" \
  --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" \
  agentorch/v1/*.proto
echo "generated agentorch.v1 modules in $out"
