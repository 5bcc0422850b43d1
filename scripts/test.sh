#!/usr/bin/env bash
# Install everything Kyte needs on a fresh machine and run every test suite.
#   bash scripts/test.sh            all suites (Python, front-end unit, browser UI)
#   KYTE_SKIP_UI=1 bash ...         skip the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n==> %s\n' "$*"; }

# 1. System packages from Debian: Chromium for the browser tests (Playwright cannot download
#    one); PostgreSQL and Redis for the team-mode and executor tests, which start their own
#    servers (as an unprivileged user, on 127.0.0.1 or a Unix socket) and stop them by PID.
PACKAGES=(postgresql redis-server)
[[ "${KYTE_SKIP_UI:-0}" != 1 ]] && PACKAGES+=(chromium)
MISSING=()
for pkg in "${PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || MISSING+=("$pkg")
done
if ((${#MISSING[@]})); then
  step "Installing Debian packages: ${MISSING[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${MISSING[@]}" >/dev/null
fi

# 2. Python environment with Kyte (this also builds the JupyterLab extension).
step "Installing Kyte and its test dependencies into .venv"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[test]"

# 2a. configurable-http-proxy (npm) for the JupyterHub team-mode test, local to deploy/.
step "Installing configurable-http-proxy into deploy/jupyterhub/node_modules"
(cd deploy/jupyterhub && npm install --no-audit --no-fund --loglevel=error >/dev/null)

# 2b. Static checks: ruff, mypy --strict (the import boundaries run as a pytest test).
step "ruff and mypy"
python -m ruff check kyte_jupyter tests benchmarks
python -m mypy

# Sessions made by the tests live in a scratch root, never in the user's data dir.
export KYTE_SESSIONS_ROOT="${KYTE_SESSIONS_ROOT:-$(mktemp -d)/kyte-sessions}"

# 3. Front-end unit tests and browser tests.
if [[ -f labextension/package.json ]]; then
  step "Front-end unit tests"
  (cd labextension && { jlpm install --immutable >/dev/null 2>&1 || jlpm install; } \
    && jlpm lint:check && jlpm test)
  if [[ "${KYTE_SKIP_UI:-0}" != 1 && -x labextension/ui-tests/run.sh ]]; then
    step "Browser UI tests (Galata + Chromium)"
    bash labextension/ui-tests/run.sh
  fi
fi

# 4. Python tests: kernels, server, export (last, so its summary closes the output).
# One worker per core (pytest-xdist), each taking whole test files, so a file's module-scoped
# kernels and servers are started once. Most tests wait on kernels and subprocesses.
# The selection in tests/postgres_selection.txt runs a second time with every session's
# metastore on PostgreSQL (a server the fixtures start); both runs always run.
status=0
if [[ $# -eq 0 ]]; then
  step "Python tests again, metastore on PostgreSQL (tests/postgres_selection.txt)"
  KYTE_TEST_METASTORE=postgres python -m pytest -p no:cacheprovider -q \
    -n "${KYTE_TEST_WORKERS:-auto}" --dist loadfile \
    $(grep -v '^#' tests/postgres_selection.txt) || status=$?
fi
step "Python tests"
python -m pytest -p no:cacheprovider -n "${KYTE_TEST_WORKERS:-auto}" --dist loadfile \
  --durations=25 "$@" || status=$?
exit "$status"
