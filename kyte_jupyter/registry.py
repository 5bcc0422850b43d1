"""The DAGs a notebook defines, cell by cell.

Two kinds of ``%%dag`` cells feed the registry:

* *file cells* (``%%dag`` alone): ordinary DAG-file code; every DAG the cell creates is
  registered, and re-running the cell replaces the DAGs it made before.
* *grown cells* (``%%dag DAG_ID …``): the body runs inside ``with DAG(DAG_ID):``. A DAG is the
  union of its cells in first-run order. Every run of such a cell rebuilds the DAG from a
  fresh ``DAG`` object by replaying all of its cells, so a re-run replaces exactly what that
  cell contributed (see docs/design.md).

On any error the registry keeps the previous, valid DAG objects.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cellspec import DagCellOptions
from .session import Session, _atomic_write, _now, code_hash

if TYPE_CHECKING:
    from airflow.sdk import DAG


class DagDefinitionError(Exception):
    """A cell could not define its DAG; the message says why and what to do."""


@dataclass
class GrownCell:
    """One ``%%dag DAG_ID`` cell's contribution."""

    key: str
    body: str
    options: DagCellOptions
    filename: str


@dataclass
class GrownDag:
    """A DAG defined by one or more ``%%dag DAG_ID`` cells."""

    dag_id: str
    cells: list[GrownCell] = field(default_factory=list)


@dataclass
class DefineResult:
    """What one ``%%dag`` cell did."""

    dags: list[DAG]
    removed: list[str]
    warnings: list[str]


Compiler = Callable[[str], str]
"""Registers a cell body for tracebacks and returns the file name to compile it under."""


class Registry:
    """The session's DAGs, with the cells that define them."""

    def __init__(self, session: Session, notebook_path: str) -> None:
        self.session = session
        self.notebook_path = notebook_path
        self.dags: dict[str, DAG] = {}
        self.grown: dict[str, GrownDag] = {}
        self.file_cells: dict[str, list[str]] = {}

    # ---- lookups ------------------------------------------------------------------------
    def get(self, dag_id: str) -> DAG:
        """The DAG with this id, or a ``KeyError`` whose message lists the known ones."""
        try:
            return self.dags[dag_id]
        except KeyError:
            known = ", ".join(sorted(self.dags)) or "none yet"
            raise KeyError(
                f"No DAG {dag_id!r} in this notebook (DAGs defined: {known}). "
                "Define it in a %%dag cell and run that cell first."
            ) from None

    def origin(self, dag_id: str) -> str:
        """'grown' or 'file' for a registered DAG."""
        return "grown" if dag_id in self.grown else "file"

    # ---- file cells ---------------------------------------------------------------------
    def define_file_cell(
        self, key: str, body: str, ns: dict[str, Any], filename: str
    ) -> DefineResult:
        """Run a whole DAG file in the notebook namespace and register the DAGs it makes."""
        from airflow.sdk import DAG

        from .bridge import collecting_dags

        code = compile(body, filename, "exec")
        before = {id(v) for v in ns.values() if isinstance(v, DAG)}
        main_mod = sys.modules.get("__main__")
        # DagBag imports a DAG file under a module name that is not "__main__", so a
        # `if __name__ == "__main__": dag.test()` block must not run here either.
        real_name = ns.get("__name__", "__main__")
        ns["__name__"] = "kyte_dag_cell"
        try:
            with collecting_dags() as collected:
                exec(code, ns)
                made: dict[str, DAG] = {dag.dag_id: dag for dag in collected()}
            for value in list(ns.values()):
                if isinstance(value, DAG) and id(value) not in before:
                    made.setdefault(value.dag_id, value)
        finally:
            ns["__name__"] = real_name
            if main_mod is not None:
                sys.modules["__main__"] = main_mod
        warnings: list[str] = []
        if not made:
            raise DagDefinitionError(
                "This %%dag cell ran but defined no DAG. Create one with `with DAG(...):` or "
                "call your @dag function, or use `%%dag DAG_ID` to add tasks to a DAG."
            )
        for dag_id in made:
            if dag_id in self.grown:
                raise DagDefinitionError(
                    f"DAG {dag_id!r} is already being grown by `%%dag {dag_id}` cells. Give this "
                    "DAG another id, or move its code into those cells."
                )
            owner = self._file_owner(dag_id)
            if owner is not None and owner != key:
                warnings.append(
                    f"DAG {dag_id!r} was defined by another cell; this cell replaces it."
                )
                self.file_cells[owner].remove(dag_id)
        dags = list(made.values())
        self._check_and_sync(dags, source=body)
        previous = self.file_cells.get(key, [])
        removed = [d for d in previous if d not in made]
        for dag_id in removed:
            self._forget(dag_id)
        self.file_cells[key] = list(made)
        for dag in dags:
            self.dags[dag.dag_id] = dag
        return DefineResult(dags=dags, removed=removed, warnings=warnings)

    def _file_owner(self, dag_id: str) -> str | None:
        for key, ids in self.file_cells.items():
            if dag_id in ids:
                return key
        return None

    # ---- grown cells --------------------------------------------------------------------
    def define_grown_cell(
        self,
        key: str,
        options: DagCellOptions,
        body: str,
        ns: dict[str, Any],
        filename: str,
    ) -> DefineResult:
        """Add (or replace) one cell of a grown DAG and rebuild the DAG from all its cells."""
        assert options.dag_id is not None
        dag_id = options.dag_id
        owner = self._file_owner(dag_id)
        if owner is not None:
            raise DagDefinitionError(
                f"DAG {dag_id!r} is defined by a whole-file %%dag cell. Add tasks to it in that "
                f"cell, or grow a DAG with another id here."
            )
        current = self.grown.get(dag_id, GrownDag(dag_id))
        new_cell = GrownCell(key=key, body=body, options=options, filename=filename)
        cells = [new_cell if c.key == key else c for c in current.cells]
        if all(c.key != key for c in current.cells):
            cells.append(new_cell)
        # A cell that moved to another DAG id stops contributing to its old DAG.
        moved_from = [g for g in self.grown.values() if g.dag_id != dag_id
                      and any(c.key == key for c in g.cells)]
        dag = self._build(dag_id, cells, ns, current_key=key)
        self._check_and_sync([dag], source=_joined(cells))
        self.grown[dag_id] = GrownDag(dag_id, cells)
        self.dags[dag_id] = dag
        removed: list[str] = []
        for old in moved_from:
            old.cells = [c for c in old.cells if c.key != key]
            if not old.cells:
                del self.grown[old.dag_id]
                self._forget(old.dag_id)
                removed.append(old.dag_id)
            else:
                rebuilt = self._build(old.dag_id, old.cells, ns, current_key=None)
                self._check_and_sync([rebuilt], source=_joined(old.cells))
                self.dags[old.dag_id] = rebuilt
        return DefineResult(dags=[dag], removed=removed, warnings=[])

    def _build(
        self, dag_id: str, cells: list[GrownCell], ns: dict[str, Any], current_key: str | None
    ) -> DAG:
        from airflow.sdk import DAG

        kwargs: dict[str, Any] = {"schedule": None}
        for c in cells:
            kwargs.update(c.options.given())
        if "start_date" in kwargs and kwargs["start_date"] is not None:
            import pendulum

            d = kwargs["start_date"]
            kwargs["start_date"] = pendulum.datetime(d.year, d.month, d.day, tz="UTC")
        try:
            dag = DAG(dag_id, auto_register=False, **kwargs)
        except Exception as e:  # bad schedule string, bad default args …
            raise DagDefinitionError(f"Cannot create DAG {dag_id!r}: {e}") from e
        for c in cells:
            code = compile(c.body, c.filename, "exec")
            with dag, _muted(c.key != current_key):
                exec(code, ns)
        return dag

    # ---- shared ---------------------------------------------------------------------------
    def _check_and_sync(self, dags: list[DAG], source: str) -> None:
        from . import bridge

        for dag in dags:
            if not dag.task_dict:
                raise DagDefinitionError(
                    f"DAG {dag.dag_id!r} has no tasks yet. Add an operator or a @task inside it."
                )
            # Airflow records the code of every DAG version (dag_code) from `fileloc`; point
            # it at the cells' code, so each version's source is kept for audit.
            dag.fileloc = str(write_source(self.session, dag.dag_id, self.notebook_path, source))
            try:
                bridge.check_dag(dag)
            except Exception as e:
                raise DagDefinitionError(f"DAG {dag.dag_id!r} is not valid: {e}") from e
        bridge.sync_dags(dags)
        for dag in dags:
            write_graph(self.session, dag)
            self.session.audit(
                "dag.define",
                dag_id=dag.dag_id,
                code_hash=code_hash(source),
                tasks=len(dag.task_dict),
            )

    def _forget(self, dag_id: str) -> None:
        self.dags.pop(dag_id, None)
        with contextlib.suppress(FileNotFoundError):
            graph_path(self.session, dag_id).unlink()
        self.session.audit("dag.remove", dag_id=dag_id)


@contextlib.contextmanager
def _muted(mute: bool) -> Iterator[None]:
    """Hide output of cells replayed while rebuilding a grown DAG."""
    if not mute:
        yield
        return
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def _joined(cells: list[GrownCell]) -> str:
    return "\n".join(c.body.strip("\n") + "\n" for c in cells)


def write_source(session: Session, dag_id: str, notebook_path: str, source: str) -> Path:
    """Keep the code that defines a DAG (what Airflow stores as the DAG version's code)."""
    path = session.kyte_dir / "sources" / f"{dag_id}.py"
    header = f"# DAG {dag_id!r} as defined in the cells of {notebook_path}\n"
    _atomic_write(path, header + source.strip("\n") + "\n")
    return path


def graph_path(session: Session, dag_id: str) -> Path:
    """Where the graph snapshot of a DAG lives (docs/design.md)."""
    return session.graphs_dir / f"{dag_id}.json"


def graph_of(dag: DAG) -> dict[str, Any]:
    """The graph snapshot of a DAG: nodes, edges and task groups, JSON-ready."""
    nodes = []
    edges = []
    for task_id, task in dag.task_dict.items():
        group = task.task_group
        group_id = group.group_id if group is not None and not group.is_root else None
        nodes.append(
            {
                "task_id": task_id,
                "label": getattr(task, "label", task_id) or task_id,
                "operator": getattr(task, "operator_name", None) or type(task).__name__,
                "task_group": group_id,
                "is_mapped": bool(getattr(task, "is_mapped", False)),
                "is_setup": bool(getattr(task, "is_setup", False)),
                "is_teardown": bool(getattr(task, "is_teardown", False)),
                "trigger_rule": str(getattr(task, "trigger_rule", "")),
            }
        )
        for down in sorted(task.downstream_task_ids):
            edges.append([task_id, down])
    groups = []

    def walk(group: Any, parent: str | None) -> None:
        for child in group.children.values():
            if hasattr(child, "children"):
                groups.append(
                    {"group_id": child.group_id, "parent": parent, "label": child.label}
                )
                walk(child, child.group_id)

    walk(dag.task_group, None)
    schedule = getattr(dag, "timetable_summary", None) or getattr(dag, "schedule", None)
    return {
        "dag_id": dag.dag_id,
        "description": dag.description,
        "schedule": None if schedule is None else str(schedule),
        "fileloc": dag.fileloc,
        "nodes": nodes,
        "edges": edges,
        "task_groups": groups,
        "updated": _now(),
    }


def write_graph(session: Session, dag: DAG) -> None:
    """Write a DAG's graph snapshot atomically for the server and sidebar."""
    _atomic_write(graph_path(session, dag.dag_id), json.dumps(graph_of(dag), default=str))
