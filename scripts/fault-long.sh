#!/usr/bin/env bash
# The fault suite's long run (test/fault): more kill points, a longer load, a longer fuzz,
# more engine outages and container deaths than CI's short run. Same tests, bigger numbers
# (AGENTORCH_FAULT_LONG=1; each AGENTORCH_FAULT_* variable can still be set on its own, see
# test/fault/support/fault-config.ts). Files run one after another so the load run has the
# machine to itself. Needs root (a private dockerd, a tmpfs) and a Docker engine.
#
# Every suite appends its figures as a JSON line to $AGENTORCH_FAULT_REPORT (default:
# $TMPDIR/agentorch-fault-report-<time>.jsonl); docs/reliability.md quotes the last long run's.
#
# The defaults are 1,000 SIGKILL points and 1,011,200 fuzzed requests (gRPC, Connect JSON,
# Connect proto, gRPC-Web): several hours on a busy 2-core machine, see docs/reliability.md for
# the rates measured; set AGENTORCH_FAULT_KILLS / AGENTORCH_FAULT_FUZZ_RUNS lower for a shorter run.
#
#   scripts/fault-long.sh                 # everything
#   scripts/fault-long.sh crash-restart   # one suite (any vitest file filter)
#   AGENTORCH_FAULT_SEED=7 scripts/fault-long.sh bad-input
set -euo pipefail
cd "$(dirname "$0")/.."
export AGENTORCH_FAULT_LONG=1
export AGENTORCH_FAULT_REPORT="${AGENTORCH_FAULT_REPORT:-${TMPDIR:-/tmp}/agentorch-fault-report-$(date -u +%Y%m%dT%H%M%SZ).jsonl}"
bash scripts/ensure-docker.sh
bash scripts/make-test-image.sh
filters=()
for f in "$@"; do filters+=("test/fault/${f%.test.ts}"); done
[ "${#filters[@]}" -gt 0 ] || filters=(test/fault)
echo "fault-long: seed ${AGENTORCH_FAULT_SEED:-20261121}; figures (and progress lines) -> $AGENTORCH_FAULT_REPORT; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
npx vitest run --no-file-parallelism --reporter=default "${filters[@]}"
echo "fault-long: figures in $AGENTORCH_FAULT_REPORT" >&2
