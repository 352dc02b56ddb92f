#!/usr/bin/env bash
# Regenerates requirements.lock (runtime) and requirements-dev.lock (runtime + dev) from
# pyproject.toml: exact versions with every file's hash, for Python 3.11 on Linux x86_64 (the
# venv of scripts/setup.sh, the Dockerfile's image). Run after changing a dependency; to move
# every pin to the newest version the ranges allow: scripts/lock.sh --upgrade.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=build/lock-tools
if [ ! -x "$tools/bin/uv" ]; then
  /usr/bin/python3.11 -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check "uv==0.13.9"
fi
compile() {
  "$tools/bin/uv" pip compile pyproject.toml --quiet --generate-hashes --no-header \
    --python-version 3.11 --python-platform x86_64-unknown-linux-gnu "$@"
}
# Keep what is pinned already unless asked to upgrade: a lock moves only on purpose.
compile "$@" -o requirements.lock
compile --extra dev "$@" -o requirements-dev.lock
echo "lock: wrote requirements.lock and requirements-dev.lock"
