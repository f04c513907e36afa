#!/usr/bin/env bash
# Run a performance suite (loadengine/data/suites/<name>.toml; default: standard) unattended.
#   ./run_performance_tests.sh [SUITE] [--quick] [--repeat N] [--results-dir DIR] [--dsn DSN]
# DSN: --dsn or LOADENGINE_DSN; with neither, one embedded private server for the suite.
# Results: DIR (default results/<UTC time>-<suite>/): one results file per scenario run,
# summary.json and summary.md. Exit 0 all passed, 5 a scenario failed its thresholds,
# 1 a run crashed, 2 bad input.
set -euo pipefail
cd "$(dirname "$0")"
python=${LOADENGINE_PYTHON:-.venv/bin/python}
if [ ! -x "$python" ]; then
  make install >&2
fi
exec "$python" -m loadengine suite "$@"
