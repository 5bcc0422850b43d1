"""Static checks before a run and before export (SPEC §8).

One module per check: :mod:`.airflow_rules` (ruff's ``AIR`` rules on cell code),
:mod:`.dag_checks` (what Airflow checks at parse time), :mod:`.templates` (every template field
rendered with a sample context), :mod:`.sql` (rendered SQL parsed by sqlfluff),
:mod:`.policies` (the deployment's cluster policies). :func:`lint_dag` runs them on one DAG;
:func:`lint_notebook` (in :mod:`.notebook`) lints a notebook file outside a kernel.

Importing this package imports neither Airflow nor sqlfluff; the checks do, when they run.
"""

from __future__ import annotations

from .findings import CHECKS, CellSource, Finding, LintConfig, has_errors, sort_findings
from .runner import lint_cells, lint_dag
from .templates import RenderedTask, render_fields

__all__ = [
    "CHECKS",
    "CellSource",
    "Finding",
    "LintConfig",
    "RenderedTask",
    "has_errors",
    "lint_cells",
    "lint_dag",
    "render_fields",
    "sort_findings",
]
