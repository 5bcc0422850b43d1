"""Airflow's own rules, through ruff's ``AIR`` rule set, on the code of a cell.

ruff is run as the tool it is (``ruff check --select AIR --stdin-filename … -``, JSON out),
never re-implemented. Its answers are cached by the hash of the code, so a cell that did not
change costs nothing the next time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from .findings import CellSource, CheckId, Finding, LintConfig, Severity

CHECK: CheckId = "airflow"

# Rules for code that is removed or breaks in Airflow 3 are errors; suggested updates (still
# working, to be removed later) and best practices are warnings.
_ERROR_RULES = frozenset({"AIR301", "AIR302", "AIR303"})

_CACHE_SIZE = 512
_cache: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
_lock = threading.Lock()


class RuffUnavailable(RuntimeError):
    """No ruff binary with the AIR rules could be found or run."""


def ruff_binary() -> str:
    """The ruff of this environment: next to the Python running us, else the ``ruff`` package's,
    else the one on ``PATH``."""
    here = Path(sys.executable).parent / ("ruff.exe" if os.name == "nt" else "ruff")
    if here.is_file():
        return str(here)
    try:
        from ruff.__main__ import find_ruff_bin

        return str(os.fspath(find_ruff_bin()))
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("ruff")
    if found is None:
        raise RuffUnavailable("ruff is not installed; `pip install 'ruff>=0.15'` for AIR rules.")
    return found


def diagnostics(code: str, preview: bool = True) -> list[dict[str, Any]]:
    """ruff's JSON diagnostics for ``code`` with the AIR rules (cached by the code's hash).

    A syntax error yields no diagnostics: Python reports it when the cell runs.
    """
    key = hashlib.sha256(f"{preview}\0{code}".encode()).hexdigest()
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    args = [
        ruff_binary(),
        "check",
        "--isolated",
        "--no-cache",
        "--select",
        "AIR",
        "--output-format",
        "json",
        "--exit-zero",
        "--stdin-filename",
        "cell.py",
    ]
    if preview:
        args.append("--preview")
    args.append("-")
    try:
        proc = subprocess.run(
            args, input=code, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuffUnavailable(f"could not run ruff: {e}") from e
    if proc.returncode != 0:
        raise RuffUnavailable(f"ruff failed: {proc.stderr.strip()[:500]}")
    found: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
    if any(d.get("code") is None for d in found):  # invalid-syntax
        found = []
    with _lock:
        _cache[key] = found
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return found


def check_cell(cell: CellSource, config: LintConfig, dag_id: str | None = None) -> list[Finding]:
    """The AIR findings of one cell, with lines counted in the cell."""
    if not config.enabled(CHECK) or not cell.code.strip():
        return []
    findings: list[Finding] = []
    if dag_id is None and len(cell.dag_ids) == 1:
        dag_id = cell.dag_ids[0]
    for d in diagnostics(cell.code, preview=config.ruff_preview):
        code = str(d["code"])
        if not config.enabled(CHECK, code):
            continue
        severity: Severity = "error" if code in _ERROR_RULES else "warning"
        row = d.get("location", {}).get("row")
        findings.append(
            Finding(
                severity=severity,
                check=CHECK,
                rule=code,
                dag_id=dag_id,
                message=f"{d['message']} ({d.get('name') or code})",
                cell=cell.number,
                cell_id=cell.cell_id,
                line=cell.cell_line(row if isinstance(row, int) else None),
            )
        )
    return findings
