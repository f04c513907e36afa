#!/usr/bin/env bash
# Performance suite runner. A later issue fills in suites, thresholds and comparisons;
# for now it runs the old generator's three scenarios back to back and keeps each
# results file in a dated folder. DSN: --dsn or LOADENGINE_DSN, else the embedded server.
set -euo pipefail
cd "$(dirname "$0")"
dsn_args=()
if [ "${1:-}" = "--dsn" ]; then dsn_args=(--dsn "$2"); shift 2; fi
out="results/$(date -u +%Y%m%dT%H%M%SZ)-standard"
mkdir -p "$out"
loadengine=${LOADENGINE:-.venv/bin/loadengine}
status=0
for profile in smoke medium high-load; do
  echo "== $profile"
  "$loadengine" run --profile "$profile" "${dsn_args[@]}" --output "$out/$profile.json" || status=$?
done
echo "results in $out"
exit $status
