#!/usr/bin/env bash
# Run the Kyte UI tests (Galata/Playwright in Debian's Chromium).
#
# Needs: the Python package installed with its built front end (pip install -e . plus
# `jupyter labextension develop --overwrite .`, or pip install .), node 20, jlpm on PATH, and
# /usr/bin/chromium (apt-get install -y chromium), or CHROMIUM_PATH set.
# Usage: labextension/ui-tests/run.sh [playwright args...], e.g. `run.sh --update-snapshots`.
# Exits non-zero when a test fails.
set -euo pipefail

cd "$(dirname "$0")"

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
# A port of its own (other Jupyter servers or test runs may be using 8891 on this machine).
if [ -z "${KYTE_UI_PORT:-}" ]; then
  KYTE_UI_PORT="$(python3 -c '
import socket
for port in range(8891, 8991):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
')"
fi
export KYTE_UI_PORT

if [ ! -x "$CHROMIUM_PATH" ]; then
  echo "run.sh: no Chromium at $CHROMIUM_PATH (apt-get install -y chromium, or set CHROMIUM_PATH)" >&2
  exit 2
fi
if ! command -v jlpm >/dev/null; then
  echo "run.sh: jlpm not on PATH (activate the Python environment that has jupyterlab)" >&2
  exit 2
fi
root="$(cd ../.. && pwd)"
if ! jupyter labextension list 2>&1 | grep -q "kyte-jupyter.*enabled.*OK"; then
  if [ -f "$root/kyte_jupyter/labextension/package.json" ]; then
    # An editable install whose built assets are not linked yet.
    jupyter labextension develop --overwrite "$root"
  else
    echo "run.sh: the kyte-jupyter labextension is not built; build it first:" >&2
    echo "  pip install -e . (or: cd labextension && jlpm install && jlpm build:prod)" >&2
    exit 2
  fi
fi

# A fresh root for notebooks and for the notebooks' Airflow homes, removed afterwards.
work="$(mktemp -d -t kyte-ui-XXXXXX)"
trap 'rm -rf "$work"' EXIT
export JUPYTERLAB_GALATA_ROOT_DIR="$work/notebooks"
export KYTE_UI_SESSIONS_ROOT="$work/sessions"
mkdir -p "$JUPYTERLAB_GALATA_ROOT_DIR" "$KYTE_UI_SESSIONS_ROOT"

jlpm install --immutable 2>/dev/null || jlpm install
jlpm playwright test "$@"
