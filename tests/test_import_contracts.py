"""Import boundaries (issue 14.6): the import-linter contracts in pyproject.toml hold.

Core imports no jupyter_server, the server (and what it reads) imports no Airflow, and only
the bridge imports Airflow internals. import-linter cannot see imports of namespace packages
without ``__init__.py`` (``airflow.sdk._shared``), so a small AST pass covers those.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "kyte_jupyter"

#: Modules (and packages) allowed to import Airflow's private namespace packages.
BRIDGE = ("kyte_jupyter.bridge",)

pytest.importorskip("importlinter")


def test_import_linter_contracts_are_kept() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")])}  # fmt: skip
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache", str(REPO / "pyproject.toml")],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout and "5 kept" in done.stdout, done.stdout[-2000:]


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_private_airflow_namespace_imports_outside_the_bridge() -> None:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        if module.startswith(BRIDGE):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "airflow" and any(p.startswith("_") for p in parts[1:]):
                    found.add((module, name))
    assert not found, sorted(found)
