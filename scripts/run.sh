#!/usr/bin/env bash
# Sets everything up, then runs the whole system with a demo batch (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/resultflow run "$@"
