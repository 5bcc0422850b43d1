#!/usr/bin/env bash
# Install Kyte on a fresh machine and open JupyterLab on the guided tour notebook.
#   bash scripts/run.sh                 (extra arguments go to `jupyter lab`)
#   KYTE_PORT=9000 bash scripts/run.sh  (a port of your choice; the first free one from 8888)
#   bash scripts/run.sh --print-url     (only print the tour's URL and the command, run nothing)
# It prints the tour's URL (the notebook, with the login token): open it in any browser.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

DRY_RUN=0
if [[ "${1:-}" == "--print-url" ]]; then
  DRY_RUN=1
  shift
fi

TOUR="examples/tour.ipynb"
HOST=127.0.0.1
# A free port of our own, so the URL printed is the one the server listens on.
PORT="${KYTE_PORT:-$(python3 -c '
import socket
for port in range(8888, 8988):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
')}"
# A token of our own, so the URL printed logs in (JupyterLab would print only the Launcher's).
TOKEN="${KYTE_TOKEN:-$(python3 -c 'import secrets; print(secrets.token_hex(24))')}"
URL="http://$HOST:$PORT/lab/tree/$TOUR?token=$TOKEN"

EXTRA=(--ip="$HOST" --port="$PORT" --port-retries=0 --no-browser
  --IdentityProvider.token="$TOKEN")
[[ $(id -u) -eq 0 ]] && EXTRA+=(--allow-root)

banner() {
  echo
  echo "==> The Kyte tour: open this URL in your browser"
  echo
  echo "    $URL"
  echo
}

if [[ $DRY_RUN -eq 1 ]]; then
  banner
  echo "jupyter lab ${EXTRA[*]} $*"
  exit 0
fi

if [[ ! -x .venv/bin/jupyter-lab ]] || ! .venv/bin/python -c "import kyte_jupyter" 2>/dev/null; then
  echo "==> Installing Kyte into .venv (about two minutes the first time)"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
fi
# Kernels inherit this PATH: `!jupyter kyte export` and JupyterLab's terminals find Kyte.
export PATH="$PWD/.venv/bin:$PATH"
echo "==> Starting JupyterLab with Kyte on $TOUR"
# The URL once more when the server is up (its own log names only the Launcher's URL).
(
  for _ in $(seq 1 120); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://$HOST:$PORT/api', timeout=1)" 2>/dev/null; then
      banner
      exit 0
    fi
    sleep 1
  done
) &
exec .venv/bin/jupyter lab "${EXTRA[@]}" "$@"
