"""``%lint`` and ``%render``, and the findings shown under every ``%%dag`` cell (SPEC §8).

Thin: the checks are :mod:`kyte_jupyter.lint`; this module parses, calls and displays.
"""

from __future__ import annotations

import sys
from typing import Any

from IPython.core import magic_arguments
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from .magicargs import parse, parse_conf, parse_when


def show_findings(registry: Any, dag_ids: list[str], after_cell: bool = False,
                  seconds: float | None = None) -> int:
    """Lint DAGs and show the findings (text + JSON); never fails a ``%%dag`` cell."""
    from .lint import kernel as lint

    if after_cell and lint.cell_magic_disabled():
        return 0
    try:
        findings, notes = lint.lint_registered(registry, dag_ids, after_cell=after_cell,
                                               parse_seconds=seconds)
    except Exception as e:  # a bug in a check must not break the cell
        print(f"(lint) the checks failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 0
    text = lint.format_findings(findings, notes)
    handle = None
    if text:
        handle = display({"text/plain": text, lint.LINT_MIME: lint.payload(dag_ids, findings)},
                         raw=True, display_id=True)
    lint.publish(registry, dag_ids, findings)  # the sidebar's badges
    if lint.SQL_LATER in notes and handle is not None:
        def update(later: list[Any]) -> None:  # the findings with SQL, under the cell
            handle.update({"text/plain": lint.format_findings(later) or "(lint) no findings",
                           lint.LINT_MIME: lint.payload(dag_ids, later)}, raw=True)
        lint.lint_later(registry, dag_ids, parse_seconds=seconds, on_done=update)
    return sum(f.severity == "error" for f in findings)


@magics_class
class CheckMagics(Magics):
    """``%lint`` and ``%render``."""

    def __init__(self, shell: Any, notebook: Any) -> None:
        super().__init__(shell)
        self.notebook = notebook

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("dag_id", nargs="?", default=None,
                              help="The DAG to check (default: every DAG of the notebook).")
    @line_magic
    def lint(self, line: str) -> None:
        """Check DAGs before running them: Airflow's ruff rules, parse-time checks, templates
        rendered for the next logical date, rendered SQL, cluster policies (SPEC §8).

        Settings: ``KYTE_POLICY_MODULE`` (cluster policies), ``KYTE_LINT_DISABLE`` (checks or
        rules to turn off, comma-separated). The same checks run after every ``%%dag`` cell.

        Examples
        --------
        ::

            %lint
            %lint etl
        """
        __tracebackhide__ = True
        args = parse(self.lint, line, "%lint [DAG_ID]")
        dag_ids = [args.dag_id] if args.dag_id else self.notebook.defined_dags()
        for dag_id in dag_ids:
            self.notebook.dag(dag_id)  # a clear error for an unknown DAG
        if not show_findings(self.notebook.registry, dag_ids):
            print(f"No errors in {', '.join(dag_ids) or 'no DAGs'}.")

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("dag_id", help="The DAG the task belongs to.")
    @magic_arguments.argument("task_id", help="The task whose template fields to render.")
    @magic_arguments.argument("--logical-date", default=None,
                              help="Render for this logical date (default: the DAG's next).")
    @magic_arguments.argument("--conf", default=None, help="JSON conf of the run.")
    @line_magic
    def render(self, line: str) -> None:
        """Show a task's template fields rendered, without running it (``airflow tasks
        render``). Variables, connections and XComs show as ``kyte_sample``.

        Examples
        --------
        ::

            %render etl load
            %render etl load --logical-date 2026-01-31 --conf '{"region": "eu"}'
        """
        __tracebackhide__ = True
        args = parse(self.render, line, "%render DAG_ID TASK_ID")
        dag = self.notebook.dag(args.dag_id)
        self.notebook.task(dag, args.task_id)
        from .lint import kernel as lint
        from .lint import render_fields

        rendered = render_fields(dag, args.task_id, parse_when(args.logical_date),
                                 parse_conf(args.conf), lint.config_from_env())
        print(lint.render_text(rendered))
