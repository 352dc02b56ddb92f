#!/usr/bin/env bash
# Installs what ResultFlow needs on a fresh Debian 12 machine and starts RabbitMQ if none runs.
# Idempotent: a second run installs nothing. Needs root (or sudo) only for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3.11 python3.11-venv python3-uno          # Debian's Python: the only one with `uno`
  libreoffice-writer-nogui                         # .docx -> PDF
  libreoffice-calc-nogui                           # tests: real .xls/.ods sheets from .xlsx
  fonts-crosextra-carlito fonts-liberation2        # Calibri/Arial metrics: stable pagination
  chromium                                         # end-to-end tests drive it with Playwright
  poppler-utils                                    # pdftotext/pdftoppm for looking at reports
  prometheus                                       # tests: promtool checks deploy/prometheus
  curl ca-certificates
)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! rabbit_up && ! command -v rabbitmq-server >/dev/null; then
  missing+=(rabbitmq-server)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_if_needed apt-get update -q
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Only its promtool is wanted: a Prometheus server the package started is stopped for good.
if command -v systemctl >/dev/null && systemctl is-enabled prometheus >/dev/null 2>&1; then
  sudo_if_needed systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

if ! rabbit_up; then
  echo "setup: starting RabbitMQ"
  sudo_if_needed rabbitmq-server -detached
  for _ in $(seq 1 60); do rabbit_up && break; sleep 1; done
  sudo_if_needed rabbitmqctl await_startup >/dev/null
fi

# The management API: what compose's setup job grants broker permissions through (tested).
management_up() { curl -fs -o /dev/null http://127.0.0.1:15672/; }
if ! management_up; then
  echo "setup: enabling RabbitMQ's management plugin"
  sudo_if_needed rabbitmq-plugins enable rabbitmq_management >/dev/null
  for _ in $(seq 1 30); do management_up && break; sleep 1; done
fi

# One venv on Debian's Python 3.11 with its site packages, so LibreOffice's `uno` imports.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import uno" 2>/dev/null; then
  rm -rf .venv
  /usr/bin/python3.11 -m venv --system-site-packages .venv
fi
# Exactly the locked versions, each file checked against its hash (`make lock` makes the
# lock from pyproject.toml); then the project itself, which brings nothing more.
stamp=.venv/.installed-$(cat requirements-dev.lock pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -U pip
  .venv/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements-dev.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
