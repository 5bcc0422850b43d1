"""The static checks inside a notebook's kernel: the DAGs the registry holds, with their cells.

What ``%%dag`` (after the graph), ``%lint`` and ``%render`` call. Settings come from the
kernel's environment, which the server's ``extra_env`` can set for every kernel:
``KYTE_POLICY_MODULE`` (path of an ``airflow_local_settings.py`` with cluster policies) and
``KYTE_LINT_DISABLE`` (comma-separated checks or rules to turn off; ``all`` turns the checks
after ``%%dag`` off, ``%lint`` still runs them).

sqlfluff takes seconds to import. After a ``%%dag`` cell it is imported in a background
thread; until it is ready the SQL check is left out of the cell's findings (the note says
so) and ``%lint`` waits for it. In a kernel, :func:`lint_later` then lints the cell's DAGs
again with SQL once sqlfluff is ready (on the kernel's main thread, between cells), updates
the findings under the cell and rewrites the graph snapshots.

Every lint writes each DAG's findings into its graph snapshot (:func:`publish`), where the
server and the sidebar read them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .findings import CellSource, Finding, LintConfig, sort_findings
from .runner import lint_dag

#: The note of a cell's lint that left SQL out (sqlfluff still loading).
SQL_LATER = "SQL is checked from the next run on (sqlfluff is loading); or %lint."
#: The MIME type of the findings shown under a cell.
LINT_MIME = "application/vnd.kyte.lint+json"

_warm = threading.Event()
_warm_started = threading.Lock()
_warm_thread: list[threading.Thread] = []


def config_from_env() -> LintConfig:
    """The kernel's lint settings (``KYTE_POLICY_MODULE``, ``KYTE_LINT_DISABLE``)."""
    policy = os.environ.get("KYTE_POLICY_MODULE") or None
    disabled = {p.strip() for p in os.environ.get("KYTE_LINT_DISABLE", "").split(",")}
    return LintConfig(
        policy_module=Path(policy) if policy else None,
        disable=frozenset(p for p in disabled if p),
    )


def cell_magic_disabled() -> bool:
    """Whether the checks after ``%%dag`` are off (``KYTE_LINT_DISABLE=all``)."""
    return "all" in config_from_env().disable


def sql_ready() -> bool:
    """Whether sqlfluff is imported (the SQL check then costs milliseconds)."""
    return _warm.is_set()


def warm_sql() -> None:
    """Import sqlfluff and build the ANSI parser in a background thread (once)."""
    with _warm_started:
        if _warm_thread:
            return
        thread = threading.Thread(target=_warm_up, name="kyte-sqlfluff-import", daemon=True)
        _warm_thread.append(thread)
        thread.start()


def _warm_up() -> None:
    try:
        from . import sql

        sql.parse_errors("SELECT 1", "ansi")
    finally:
        _warm.set()


def wait_sql(timeout: float = 60.0) -> None:
    """Make sure sqlfluff is ready (``%lint`` checks SQL every time)."""
    warm_sql()
    _warm.wait(timeout)


def cells_of(registry: Any, dag_id: str) -> list[CellSource]:
    """The cells that define a registered DAG, as the registry keeps them."""
    cells: list[CellSource] = []
    grown = registry.grown.get(dag_id)
    if grown is not None:
        for c in grown.cells:
            cells.append(CellSource(c.body, _first_line(c.body), None, _cell_id(c.key), (dag_id,)))
        return cells
    for key, ids in registry.file_cells.items():
        if dag_id in ids:
            body, _label = registry.file_bodies.get(key, ("", ""))
            cells.append(CellSource(body, _first_line(body), None, _cell_id(key), tuple(ids)))
    return cells


def _first_line(body: str) -> int:
    """The cell line of the body's first line: the registry keeps bodies with a newline in
    place of the ``%%dag`` line, so their lines are the cell's."""
    return 1 if body.startswith("\n") else 2


def _cell_id(key: str) -> str | None:
    return None if key.startswith("src:") else key


def lint_registered(
    registry: Any,
    dag_ids: Iterable[str],
    *,
    after_cell: bool = False,
    parse_seconds: float | None = None,
) -> tuple[list[Finding], list[str]]:
    """Findings for registered DAGs, and notes on what was not checked.

    ``after_cell``: the checks after a ``%%dag`` cell (SQL only once sqlfluff is ready).
    """
    config = config_from_env()
    notes: list[str] = []
    if after_cell:
        warm_sql()
        if not sql_ready() and config.enabled("sql"):
            config = LintConfig(
                policy_module=config.policy_module,
                disable=config.disable | {"sql"},
                sql_dialects=config.sql_dialects,
            )
            notes.append(SQL_LATER)
    else:
        wait_sql()
    findings: list[Finding] = []
    for dag_id in dag_ids:
        dag = registry.get(dag_id)
        findings += lint_dag(dag, cells_of(registry, dag_id), config, parse_seconds=parse_seconds)
    return sort_findings(findings), notes


def publish(registry: Any, dag_ids: Iterable[str], findings: Iterable[Finding]) -> None:
    """Write each DAG's findings (``[]`` when it has none) into its graph snapshot."""
    by_dag: dict[str, list[Finding]] = {d: [] for d in dag_ids}
    for f in findings:
        if f.dag_id in by_dag:
            by_dag[f.dag_id].append(f)
    for dag_id, found in by_dag.items():
        registry.set_findings(dag_id, found)


def payload(dag_ids: Sequence[str], findings: Sequence[Finding]) -> dict[str, Any]:
    """The JSON shown under a cell as :data:`LINT_MIME`."""
    return {
        "version": 1,
        "dag_ids": list(dag_ids),
        "findings": [f.model_dump(mode="json") for f in findings],
    }


def _main_loop() -> Any:
    """The kernel's main-thread IOLoop, or None outside a kernel (a plain IPython shell)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - the magics need IPython
        return None
    kernel = getattr(get_ipython(), "kernel", None)
    return getattr(kernel, "io_loop", None)


def lint_later(
    registry: Any,
    dag_ids: Sequence[str],
    *,
    parse_seconds: float | None = None,
    on_done: Callable[[list[Finding]], None] | None = None,
) -> bool:
    """Lint ``dag_ids`` again with the SQL check once sqlfluff is ready.

    The lint runs on the kernel's main thread (a callback of its IOLoop, so between cells,
    never beside user code), only for DAGs still defined as they were; it writes the
    snapshots and calls ``on_done`` with the findings. Returns False (nothing scheduled)
    outside a kernel.
    """
    loop = _main_loop()
    if loop is None:
        return False
    dags = {d: registry.dags.get(d) for d in dag_ids}

    def run() -> None:
        current = [d for d, dag in dags.items() if dag is not None and registry.dags.get(d) is dag]
        if not current:
            return
        try:
            findings, _ = lint_registered(registry, current, parse_seconds=parse_seconds)
        except Exception:  # a bug in a check: the cell already said what it could
            return
        publish(registry, current, findings)
        if on_done is not None:
            on_done(findings)

    def wait() -> None:
        wait_sql()
        loop.add_callback(run)

    threading.Thread(target=wait, name="kyte-lint-later", daemon=True).start()
    return True


def format_findings(findings: Sequence[Finding], notes: Sequence[str] = ()) -> str:
    """Findings as text lines for a cell's output (empty when there is nothing to say)."""
    lines = [
        f"{'✗' if f.severity == 'error' else '!'} {f.rule}"
        f"{' line ' + str(f.line) if f.line else ''}"
        f"{' task ' + repr(f.task_id) if f.task_id else ''}"
        f"{' field ' + repr(f.field) if f.field else ''}: {f.message}"
        for f in findings
    ]
    lines += [f"(lint) {n}" for n in notes]
    return "\n".join(lines)


def render_text(rendered: Any) -> str:
    """``airflow tasks render``'s layout: each field's name, then its rendered value."""
    parts: list[str] = []
    for f in rendered.fields.values():
        head = f"# {'-' * 58}\n# property: {f.name}\n# {'-' * 58}"
        body = f"ERROR ({f.rule}): {f.error}" if f.error else str(f.value)
        parts.append(f"{head}\n{body}")
    if rendered.context_error:
        parts.append(f"cannot build the template context: {rendered.context_error}")
    when = f"{rendered.logical_date:%Y-%m-%d %H:%M %Z}"
    return f"# {rendered.dag_id}.{rendered.task_id} rendered for {when}\n" + "\n".join(parts)
