#!/usr/bin/env bash
# Sets everything up, then runs every check: ruff, mypy, unit, integration and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy contracts services devtools bench tests
exec .venv/bin/pytest -p no:cacheprovider "$@"
