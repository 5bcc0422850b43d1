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
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cellcode import CELL_MODULE, cell_module, compile_cell
from .cellspec import DagCellOptions
from .contracts.lint import Finding
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
    label: str = "a %%dag cell"
    """How messages name the cell, e.g. ``cell [4]`` (its execution count when it ran)."""
    task_ids: list[str] = field(default_factory=list)
    """The task ids this cell added to the DAG in its last build."""


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
    top_level_seconds: float | None = None
    """How long the DAG code itself ran (what ``dagbag_import_timeout`` limits), without
    Kyte's checks, serialization and metastore writes."""


@dataclass
class SyncResult:
    """What comparing the registry with the notebook's ``%%dag`` cells changed."""

    dag_ids: list[str] = field(default_factory=list)
    """DAGs that lost a cell's contribution (rebuilt, or removed when nothing was left)."""
    messages: list[str] = field(default_factory=list)


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
        self.file_bodies: dict[str, tuple[str, str]] = {}
        """Per file cell key: (body as run, label)."""
        self.notebook_cells: dict[str, str] | None = None
        """The notebook's ``%%dag`` cells (id -> source) as the front end last sent them."""
        self.dropped: dict[str, list[str]] = {}
        """Per DAG id: what was dropped from it since its cells last ran (for warnings)."""
        self._written: dict[str, list[str]] = {}
        self.findings: dict[str, list[Finding]] = {}
        """Per DAG id: the findings of its last lint, kept in its graph snapshot. A DAG
        defined again keeps them until its next lint replaces them (no flicker in the
        sidebar); a removed DAG loses them."""

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
        self, key: str, body: str, ns: dict[str, Any], filename: str, label: str = ""
    ) -> DefineResult:
        """Run a whole DAG file in the notebook namespace and register the DAGs it makes."""
        __tracebackhide__ = True  # a cell's error shows the cell's frames, not this one
        from airflow.sdk import DAG

        from .bridge import collecting_dags, parsing_as_dag_processor

        code = compile_cell(body, filename)
        before = {id(v) for v in ns.values() if isinstance(v, DAG)}
        main_mod = sys.modules.get("__main__")
        try:
            with cell_module(ns, self.notebook_path), parsing_as_dag_processor(), \
                    collecting_dags(CELL_MODULE) as collected:
                started = time.perf_counter()
                exec(code, ns)
                top_level = time.perf_counter() - started
                made: dict[str, DAG] = {dag.dag_id: dag for dag in collected()}
            for value in list(ns.values()):
                if isinstance(value, DAG) and id(value) not in before:
                    made.setdefault(value.dag_id, value)
        finally:
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
        self.file_bodies[key] = (body, label or "a %%dag cell")
        for dag in dags:
            self.dags[dag.dag_id] = dag
            self.dropped.pop(dag.dag_id, None)
        self._write_graphs(dags)
        return DefineResult(dags=dags, removed=removed, warnings=warnings,
                            top_level_seconds=top_level)

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
        label: str = "",
    ) -> DefineResult:
        """Add (or replace) one cell of a grown DAG and rebuild the DAG from all its cells."""
        __tracebackhide__ = True  # a cell's error shows the cell's frames, not this one
        assert options.dag_id is not None
        dag_id = options.dag_id
        owner = self._file_owner(dag_id)
        if owner is not None:
            raise DagDefinitionError(
                f"DAG {dag_id!r} is defined by a whole-file %%dag cell. Add tasks to it in that "
                f"cell, or grow a DAG with another id here."
            )
        current = self.grown.get(dag_id, GrownDag(dag_id))
        new_cell = GrownCell(key=key, body=body, options=options, filename=filename,
                             label=label or "a %%dag cell")
        cells = [new_cell if c.key == key else c for c in current.cells]
        if all(c.key != key for c in current.cells):
            cells.append(new_cell)
        # A cell that moved to another DAG id stops contributing to its old DAG.
        moved_from = [g for g in self.grown.values() if g.dag_id != dag_id
                      and any(c.key == key for c in g.cells)]
        started = time.perf_counter()
        dag = self._build(dag_id, cells, ns, current_key=key)  # the DAG's whole code
        top_level = time.perf_counter() - started
        self._check_and_sync([dag], source=_joined(cells))
        self.grown[dag_id] = GrownDag(dag_id, cells)
        self.dags[dag_id] = dag
        self.dropped.pop(dag_id, None)
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
        touched = {dag_id, *(o.dag_id for o in moved_from)}
        self._write_graphs([self.dags[d] for d in sorted(touched) if d in self.dags])
        return DefineResult(dags=[dag], removed=removed, warnings=[],
                            top_level_seconds=top_level)

    def _build(
        self, dag_id: str, cells: list[GrownCell], ns: dict[str, Any], current_key: str | None
    ) -> DAG:
        __tracebackhide__ = True  # a cell's error shows the cell's frames, not this one
        from airflow.sdk import DAG

        from .bridge import parsing_as_dag_processor

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
        owners: dict[str, GrownCell] = {}
        for c in cells:
            code = compile_cell(c.body, c.filename)
            before = set(dag.task_dict)
            try:
                with dag, _muted(c.key != current_key), cell_module(ns, self.notebook_path), \
                        parsing_as_dag_processor():
                    exec(code, ns)
            except Exception as e:
                if type(e).__name__ == "DuplicateTaskIdFound":
                    self._raise_if_owned(dag_id, str(e), owners, c, current_key)
                raise
            c.task_ids = [t for t in dag.task_dict if t not in before]
            for task_id in c.task_ids:
                base = _AUTO_SUFFIX.sub("", task_id)
                owner = owners.get(base)
                if base != task_id and owner is not None and owner.key != c.key:
                    raise DagDefinitionError(_two_cells(dag_id, base, owner, c, current_key))
                owners[task_id] = c
        return dag

    @staticmethod
    def _raise_if_owned(dag_id: str, message: str, owners: dict[str, GrownCell], cell: GrownCell,
                        current_key: str | None) -> None:
        """An explicit task id that an earlier cell already added: name that cell."""
        m = re.search(r"[Tt]ask id '([^']+)'", message)
        owner = owners.get(m.group(1)) if m else None
        if m and owner is not None and owner.key != cell.key:
            raise DagDefinitionError(_two_cells(dag_id, m.group(1), owner, cell, current_key))

    # ---- the notebook's cells (front end) ---------------------------------------------
    def sync_cells(self, cells: dict[str, str], ns: dict[str, Any]) -> SyncResult:
        """Drop what ``%%dag`` cells that left the notebook contributed.

        ``cells`` maps the id of every ``%%dag`` cell in the notebook to its source (run or
        not). A registered cell whose id is absent, or whose ``%%dag`` line now names another
        DAG, is dropped: its grown DAG is rebuilt from the remaining cells (or removed when
        none remain); a whole-file cell's DAGs are removed. Cells known only by their source
        (no cell id from the front end) are left alone.
        """
        from .cellspec import split_magic_cell

        self.notebook_cells = dict(cells)
        result = SyncResult()
        for dag_id, grown in list(self.grown.items()):
            keep: list[GrownCell] = []
            notes: list[str] = []
            for c in grown.cells:
                reason = None if c.key.startswith("src:") else _drop_reason(
                    cells.get(c.key), dag_id)
                if reason is None:
                    keep.append(c)
                else:
                    tasks = ", ".join(c.task_ids) or "no tasks"
                    notes.append(f"{c.label} {reason}; its tasks ({tasks}) were dropped "
                                 f"from DAG {dag_id!r}.")
            if not notes:
                continue
            result.dag_ids.append(dag_id)
            result.messages.extend(notes)
            if not keep:
                del self.grown[dag_id]
                self._forget(dag_id)
                result.messages.append(f"DAG {dag_id!r} has no cells left and was removed.")
                continue
            try:
                rebuilt = self._build(dag_id, keep, ns, current_key=None)
                self._check_and_sync([rebuilt], source=_joined(keep))
            except Exception as e:
                del self.grown[dag_id]
                self._forget(dag_id)
                result.messages.append(
                    f"DAG {dag_id!r} cannot be built from its remaining cells "
                    f"({type(e).__name__}: {e}); it was removed until its cells run again."
                )
                continue
            self.grown[dag_id] = GrownDag(dag_id, keep)
            self.dags[dag_id] = rebuilt
            self.dropped.setdefault(dag_id, []).extend(notes)
        for key, ids in list(self.file_cells.items()):
            source = cells.get(key)
            parts = split_magic_cell(source) if source is not None else None
            if key.startswith("src:") or (parts is not None and not _words(parts[1])):
                continue
            _, label = self.file_bodies.get(key, ("", "a %%dag cell"))
            what = "was deleted" if source is None else "now grows a DAG by id"
            for dag_id in ids:
                self._forget(dag_id)
                result.dag_ids.append(dag_id)
                result.messages.append(f"{label} {what}; DAG {dag_id!r} it defined was removed.")
            del self.file_cells[key]
            self.file_bodies.pop(key, None)
        self._write_graphs(list(self.dags.values()))
        return result

    def warnings(self, dag_id: str | None = None) -> list[str]:
        """Where the kernel's DAGs differ from the notebook's ``%%dag`` cells.

        Dropped contributions, cells edited since they ran, and cells not yet run (as the
        front end last reported the notebook). ``dag_id`` limits them to one DAG.
        """
        from .cellspec import split_magic_cell

        out: list[str] = []
        ids = [dag_id] if dag_id is not None else sorted(self.dags)
        cells = self.notebook_cells
        for d in ids:
            out.extend(self.dropped.get(d, []))
            if cells is None:
                continue
            ran = self.ran_cells(d)
            for key, body, label in ran:
                parts = split_magic_cell(cells[key]) if key in cells else None
                if parts is not None and parts[2].strip() != body.strip():
                    out.append(f"{label} was edited since it ran: DAG {d!r} still has what "
                               "it defined before. Run the cell again.")
            known = {k for k, _, _ in ran}
            for key, source in cells.items():
                parts = split_magic_cell(source)
                if key in known or parts is None or key in self._all_keys():
                    continue
                words = _words(parts[1])
                if words and words[0] == d:
                    first = parts[2].strip().splitlines()[0] if parts[2].strip() else ""
                    out.append(f"A `%%dag {d}` cell ({first[:40]!r}) has not run in this "
                               f"kernel: DAG {d!r} lacks what it defines.")
        return out

    def ran_sources(self, dag_id: str) -> list[str]:
        """The ``%%dag`` cells (magic line and body, as they ran) that defined ``dag_id`` in
        this kernel, in :meth:`ran_cells`'s order."""
        return [f"%%dag {line}".rstrip() + "\n" + body.lstrip("\n")
                for _, body, _, line in self._ran(dag_id)]

    def ran_cells(self, dag_id: str) -> list[tuple[str, str, str]]:
        """``(cell key, body, label)`` of each ``%%dag`` cell whose run defined (part of)
        ``dag_id`` in this kernel; the key is the front end's cell id, or ``src:…`` when the
        front end sent none."""
        return [(key, body, label) for key, body, label, _ in self._ran(dag_id)]

    def _ran(self, dag_id: str) -> list[tuple[str, str, str, str]]:
        """``(cell key, body, label, magic line)`` of the cells that defined ``dag_id``:
        grown cells in their order, then the whole-file cell (its line is not kept)."""
        ran: list[tuple[str, str, str, str]] = []
        if dag_id in self.grown:
            ran = [(c.key, c.body, c.label, c.options.line) for c in self.grown[dag_id].cells]
        for key, ids in self.file_cells.items():
            if dag_id in ids:
                body, label = self.file_bodies.get(key, ("", "a %%dag cell"))
                ran.append((key, body, label, ""))
        return ran

    def _all_keys(self) -> set[str]:
        keys = set(self.file_cells)
        for g in self.grown.values():
            keys.update(c.key for c in g.cells)
        return keys

    def _write_graphs(self, dags: list[DAG]) -> None:
        """Rewrite the snapshots whose warnings changed."""
        for dag in dags:
            warnings = self.warnings(dag.dag_id)
            if self._written.get(dag.dag_id) != warnings:
                self._written[dag.dag_id] = warnings
                write_graph(self.session, dag, warnings, self.findings.get(dag.dag_id))

    def set_findings(self, dag_id: str, findings: list[Finding]) -> bool:
        """Keep a DAG's lint findings and rewrite its graph snapshot with them.

        Returns False (nothing written) when the DAG is no longer registered.
        """
        dag = self.dags.get(dag_id)
        if dag is None:
            return False
        self.findings[dag_id] = list(findings)
        warnings = self._written.setdefault(dag_id, self.warnings(dag_id))
        write_graph(self.session, dag, warnings, self.findings[dag_id])
        return True

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
            dag.template_searchpath = template_folders(dag, self.notebook_path)
            try:
                bridge.check_dag(dag)
            except Exception as e:
                raise DagDefinitionError(f"DAG {dag.dag_id!r} is not valid: {e}") from e
        bridge.sync_dags(dags)
        for dag in dags:
            self._written[dag.dag_id] = self.warnings(dag.dag_id)
            write_graph(self.session, dag, self._written[dag.dag_id], self.findings.get(dag.dag_id))
            self.session.audit(
                "dag.define",
                dag_id=dag.dag_id,
                code_hash=code_hash(source),
                tasks=len(dag.task_dict),
            )

    def _forget(self, dag_id: str) -> None:
        self.dags.pop(dag_id, None)
        self.findings.pop(dag_id, None)
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


_AUTO_SUFFIX = re.compile(r"__\d+$")
"""What Airflow appends to a ``@task`` id already taken in the DAG (``validate__1``)."""


def _two_cells(dag_id: str, task_id: str, first: GrownCell, second: GrownCell,
               current_key: str | None) -> str:
    def name(c: GrownCell) -> str:
        return f"this cell ({c.label})" if c.key == current_key else c.label

    return (
        f"task id {task_id!r} of DAG {dag_id!r} is defined by two cells: {name(first)} and "
        f"{name(second)}. A task belongs to one cell: rename one of them, or delete the "
        "other cell (a task function called twice in one cell is fine: Airflow numbers it)."
    )


def _drop_reason(source: str | None, dag_id: str) -> str | None:
    """Why a grown cell no longer contributes to ``dag_id``, or None if it still does."""
    from .cellspec import split_magic_cell

    if source is None:
        return "was deleted (or no longer starts with %%dag)"
    parts = split_magic_cell(source)
    if parts is None or parts[0] != "dag":
        return "is no longer a %%dag cell"
    words = _words(parts[1])
    if not words or words[0].startswith("-"):
        return "is now a whole-file %%dag cell"
    if words[0] != dag_id:
        return f"now grows DAG {words[0]!r}"
    return None


def _words(line: str) -> list[str]:
    from .cellspec import strip_comment, unquote

    return [unquote(w) or "" for w in strip_comment(line).split()]


def _joined(cells: list[GrownCell]) -> str:
    return "\n".join(c.body.strip("\n") + "\n" for c in cells)


def notebook_folder(notebook_path: str) -> str:
    """The folder a notebook's DAGs live in, as a DAG file's folder (its templates' home)."""
    path = os.path.abspath(notebook_path or os.getcwd())
    return path if os.path.isdir(path) else os.path.dirname(path)


def template_folders(dag: DAG, notebook_path: str) -> list[str]:
    """Where Jinja finds a notebook DAG's template files, as for a DAG file next to it.

    Airflow searches the DAG file's folder, then ``template_searchpath``. A notebook's DAG
    file is the notebook: its folder comes first, and relative ``template_searchpath``
    entries resolve from it.
    """
    folder = notebook_folder(notebook_path)
    given = dag.template_searchpath
    entries = [given] if isinstance(given, str) else list(given or [])
    out = [folder]
    for entry in entries:
        path = os.path.normpath(os.path.join(folder, os.path.expanduser(str(entry))))
        if path not in out:
            out.append(path)
    return out


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


def write_graph(
    session: Session,
    dag: DAG,
    warnings: list[str] | None = None,
    findings: list[Finding] | None = None,
) -> None:
    """Write a DAG's graph snapshot atomically for the server and sidebar."""
    graph = graph_of(dag)
    graph["warnings"] = list(warnings or [])
    graph["findings"] = [f.model_dump(mode="json") for f in findings or []]
    _atomic_write(graph_path(session, dag.dag_id), json.dumps(graph, default=str))
