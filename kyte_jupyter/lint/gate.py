"""The check before an export: errors refuse it (``jupyter kyte export --no-lint`` skips it).

The export runs where Airflow may not be importable or must not be imported (the server, a
test process), so the checks run in a subprocess: ``python -m kyte_jupyter.cli lint
--format json``, whose settings (``KYTE_POLICY_MODULE``) come from the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


class LintGateError(RuntimeError):
    """The checks could not run at all (not a finding)."""


def lint_subprocess(
    notebook: str | os.PathLike[str], dag_id: str | None = None, timeout: float = 600
) -> dict[str, Any]:
    """``jupyter kyte lint NOTEBOOK --format json`` in a subprocess; its JSON payload."""
    cmd = [sys.executable, "-m", "kyte_jupyter.cli", "lint", os.fspath(notebook), "--format"]
    cmd.append("json")
    if dag_id:
        cmd += ["--dag", dag_id]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LintGateError(f"could not run the checks: {e}") from e
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise LintGateError("the checks failed: " + " / ".join(tail))
    try:
        payload: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise LintGateError(f"the checks printed no JSON: {e}") from e
    return payload


def export_refusal(notebook: str | os.PathLike[str], dag_id: str | None = None) -> str | None:
    """Why the export must not happen (every error finding, one a line), or None."""
    payload = lint_subprocess(notebook, dag_id)
    errors = [f for f in payload.get("findings", []) if f.get("severity") == "error"]
    if not errors:
        return None
    lines = [f"{len(errors)} error(s) found by jupyter kyte lint:"]
    for f in errors:
        where = ", ".join(
            part
            for part in (
                f"cell {f['cell']}" + (f", line {f['line']}" if f.get("line") else "")
                if f.get("cell")
                else "",
                f"task {f['task_id']!r}" if f.get("task_id") else "",
                f"field {f['field']!r}" if f.get("field") else "",
            )
            if part
        )
        lines.append(f"  - {f['rule']} {where}: {f['message']}")
    return "\n".join(lines)
