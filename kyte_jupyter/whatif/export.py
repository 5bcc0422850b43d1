"""``jupyter kyte export --tests``: the notebook's ``%%scenario`` cells as pytest files.

The scenarios are read from the notebook (every code cell starting with
``%%scenario NAME DAG_ID``), checked against the DAG as the exported file defines it, and
written as ``test_<dag_id>.py`` next to that file (:mod:`kyte_jupyter.whatif.testgen`).
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from kyte_jupyter.whatif.spec import Scenario, parse_scenario
from kyte_jupyter.whatif.testgen import write

MAGIC = "%%scenario"


def scenario_cells(nb: Any) -> list[tuple[str, str, str]]:
    """``(name, dag_id, yaml body)`` of every ``%%scenario`` cell, in notebook order."""
    out = []
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        first, _, body = source.lstrip().partition("\n")
        if not first.startswith(MAGIC + " "):
            continue
        try:
            words = shlex.split(first[len(MAGIC):].split("#", 1)[0])
        except ValueError:
            words = []
        positional = [w for w in words if not w.startswith("--")]
        if len(positional) >= 2:
            out.append((positional[0], positional[1], body))
    return out


def _dags_in(path: Path) -> dict[str, Any]:
    """The DAG objects an exported file defines (executed as Airflow's parser would)."""
    import runpy

    if "AIRFLOW_HOME" not in os.environ and "airflow" not in __import__("sys").modules:
        os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="kyte-export-")
    from ..bridge import collecting_dags

    # As DagBag finds them: auto-registered (``with DAG(...):`` without a name, a called
    # ``@dag`` function), then any other DAG object the file's names hold.
    module = f"kyte_export_{path.stem}"
    with collecting_dags(module) as collected:
        ns = runpy.run_path(str(path), run_name=module)
        found = {dag.dag_id: dag for dag in collected()}
    for v in ns.values():
        if hasattr(v, "dag_id") and hasattr(v, "task_dict") and hasattr(v, "test"):
            found.setdefault(v.dag_id, v)
    return found


def write_tests(notebook: str | os.PathLike[str], dag_files: Iterable[Path]) -> list[Path]:
    """Write ``test_<dag_id>.py`` next to each exported DAG file that has scenarios.

    Scenarios of DAGs the export did not write (``--dag``) are left out. Raises
    :class:`WhatIfError` naming the first bad scenario; nothing is written then.
    """
    import nbformat

    nb = nbformat.read(os.fspath(notebook), as_version=4)  # type: ignore[no-untyped-call]
    cells = scenario_cells(nb)
    if not cells:
        return []
    plans: list[tuple[Path, str, Sequence[Scenario]]] = []
    for path in dag_files:
        dags = _dags_in(path)
        for dag_id, dag in dags.items():
            scenarios = [parse_scenario(name, dag, body)
                         for name, d, body in cells if d == dag_id]
            if scenarios:
                plans.append((path, dag_id, scenarios))
    return [write(path, dag_id, scenarios, source=Path(notebook).name)
            for path, dag_id, scenarios in plans]

