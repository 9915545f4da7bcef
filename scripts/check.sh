#!/usr/bin/env bash
# Every check and test, as CI runs them: set-up, ruff, mypy (strict), promtool on the
# exposition, unit, agent and integration tests (a real Kafka broker, a real worker).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/setup.sh
echo "== ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict" >&2
.venv/bin/mypy
echo "== pytest" >&2
.venv/bin/python -m pytest -p no:cacheprovider "$@"
echo "check: all passed in $(( $(date +%s) - started ))s" >&2
