#!/usr/bin/env bash
# Install everything Kyte needs on a fresh machine and run every test suite.
#   bash scripts/test.sh            all suites (Python, front-end unit, browser UI)
#   KYTE_SKIP_UI=1 bash ...         skip the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n==> %s\n' "$*"; }

# 1. System packages: Debian's Chromium for the browser tests (Playwright cannot download one).
if [[ "${KYTE_SKIP_UI:-0}" != 1 ]] && ! command -v chromium >/dev/null 2>&1; then
  step "Installing Chromium"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# 2. Python environment with Kyte (this also builds the JupyterLab extension).
step "Installing Kyte and its test dependencies into .venv"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[test]"

# Sessions made by the tests live in a scratch root, never in the user's data dir.
export KYTE_SESSIONS_ROOT="${KYTE_SESSIONS_ROOT:-$(mktemp -d)/kyte-sessions}"

# 3. Front-end unit tests and browser tests.
if [[ -f labextension/package.json ]]; then
  step "Front-end unit tests"
  (cd labextension && jlpm install --immutable >/dev/null 2>&1 || jlpm install && jlpm test)
  if [[ "${KYTE_SKIP_UI:-0}" != 1 && -x labextension/ui-tests/run.sh ]]; then
    step "Browser UI tests (Galata + Chromium)"
    bash labextension/ui-tests/run.sh
  fi
fi

# 4. Python tests: kernels, server, export (last, so its summary closes the output).
step "Python tests"
python -m pytest -p no:cacheprovider "$@"
