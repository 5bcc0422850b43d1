"""Lint one DAG object with the cells that define it: every check, findings placed in cells.

This is what the ``%%dag`` cell, ``%lint``, the CLI and export call. It is cheap when nothing
changed: ruff and sqlfluff answers are cached by source, the policy module by file.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..bridge import lint as _airflow
from . import airflow_rules, dag_checks, policies, sql, templates
from .findings import CellSource, Finding, LintConfig, sort_findings
from .locate import locate_dag, locate_task

if TYPE_CHECKING:
    from airflow.sdk import DAG


def lint_cells(
    cells: Sequence[CellSource], config: LintConfig | None = None, dag_id: str | None = None
) -> list[Finding]:
    """ruff's AIR findings for the given cells (no DAG needed)."""
    config = config or LintConfig()
    out: list[Finding] = []
    for cell in cells:
        out.extend(airflow_rules.check_cell(cell, config, dag_id))
    return out


def lint_dag(
    dag: DAG,
    cells: Sequence[CellSource] = (),
    config: LintConfig | None = None,
    *,
    parse_seconds: float | None = None,
    logical_date: _dt.datetime | None = None,
    conf: Mapping[str, Any] | None = None,
    with_cells: bool = True,
) -> list[Finding]:
    """Every finding for ``dag``, placed in ``cells`` (the cells whose code defines it).

    ``parse_seconds`` is how long the DAG's top-level code took (checked against
    ``dagbag_import_timeout``); ``logical_date`` defaults to the DAG's next one. With
    ``with_cells`` false, ruff is not run on the cells (the caller lints them once for many
    DAGs).
    """
    config = config or LintConfig()
    found: list[Finding] = []
    if config.enabled(dag_checks.CHECK):
        found += dag_checks.check_schedule(dag, config)
        found += dag_checks.check_parse_time(dag.dag_id, parse_seconds, config)
    env = templates.template_env(dag, config)
    if config.enabled(dag_checks.CHECK):
        found += dag_checks.check_params(dag, env, config)
    if config.enabled(templates.CHECK) or config.enabled(sql.CHECK):
        run = _airflow.next_run(dag, logical_date)
        contexts = templates.SampleContexts(run, conf)
        for task in dag.tasks:
            rendered = templates.render_task(task, run, config, contexts, env)
            if config.enabled(templates.CHECK):
                found += templates.findings_of(rendered, config)
            found += sql.check_task(task, rendered, config)
    found += policies.check_dag(dag, config)
    found = _without_duplicates(found)
    placed = [_place(f, cells) for f in found]
    if with_cells:
        placed += lint_cells(cells, config, dag.dag_id)
    return sort_findings(placed)


def _without_duplicates(found: list[Finding]) -> list[Finding]:
    """A param read but not declared is one finding, not also an undefined-name one."""
    params = {(f.task_id, f.field) for f in found if f.rule == "undeclared-param"}
    return [
        f
        for f in found
        if not (
            f.check == templates.CHECK and f.rule == "undefined" and (f.task_id, f.field) in params
        )
    ]


def _place(finding: Finding, cells: Sequence[CellSource]) -> Finding:
    if finding.cell is not None or not cells or finding.dag_id is None:
        return finding
    if finding.task_id is not None:
        cell, line = locate_task(cells, finding.task_id)
    else:
        cell, line = locate_dag(cells, finding.dag_id)
    if cell is None:
        return finding
    return finding.model_copy(update={"cell": cell.number, "cell_id": cell.cell_id, "line": line})
