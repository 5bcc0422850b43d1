#!/usr/bin/env bash
# Install Kyte on a fresh machine and open JupyterLab on the guided tour notebook.
#   bash scripts/run.sh                 (extra arguments go to `jupyter lab`)
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [[ ! -x .venv/bin/jupyter-lab ]] || ! .venv/bin/python -c "import kyte_jupyter" 2>/dev/null; then
  echo "==> Installing Kyte into .venv (about two minutes the first time)"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
fi
# Kernels inherit this PATH: `!jupyter kyte export` and JupyterLab's terminals find Kyte.
export PATH="$PWD/.venv/bin:$PATH"
EXTRA=()
[[ $(id -u) -eq 0 ]] && EXTRA+=(--allow-root)
echo "==> Starting JupyterLab with Kyte on examples/tour.ipynb"
exec .venv/bin/jupyter lab --ip=127.0.0.1 "${EXTRA[@]}" examples/tour.ipynb "$@"
