"""DAG versions, run history, version diffs and run comparison, read from a metastore.

Airflow 3 records a ``dag_version`` each time a DAG's serialized form changes (Kyte writes
one each time a cell changes a DAG), with the serialized DAG (``serialized_dag``) and the
source (``dag_code``) of that version; each ``dag_run`` names the version it was created
with (``created_dag_version_id``). This module reads those tables as plain rows over a
DB-API connection (no Airflow import), so the kernel's ``%runs``, ``%dag_diff`` and
``%compare`` and the server's run selector read the same thing.

Tables read: ``dag_version``, ``serialized_dag``, ``dag_code``, ``dag_run``,
``task_instance``, ``xcom``. Nothing is written.
"""

from __future__ import annotations

import difflib
import json
import pprint
import sqlite3
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .session.metastore import Connection

__all__ = [
    "DagDiff",
    "DagVersion",
    "RunRecord",
    "TaskComparison",
    "VersionError",
    "compare_runs",
    "diff_versions",
    "get_version",
    "list_versions",
    "run_history",
    "values_equal",
]

# Serialized task keys that are not operator arguments a user wrote, or that the diff
# reports in another way (edges).
_NOT_ARGUMENTS = frozenset({"task_id", "downstream_task_ids", "_task_module", "_is_empty"})


class VersionError(LookupError):
    """A version or run that does not exist; the message lists what does."""


@dataclass(frozen=True)
class DagVersion:
    """One version of a DAG: its number (1, 2, …), graph, task arguments and source code.

    ``tasks`` maps task id to its serialized arguments as plain values (Airflow's
    ``{"__var": …, "__type": …}`` wrappers removed); ``source`` is the code Kyte stored for
    it (the DAG's cells), or ``None``.
    """

    dag_id: str
    number: int
    id: str
    created_at: str | None
    tasks: dict[str, dict[str, Any]]
    edges: frozenset[tuple[str, str]]
    source: str | None


@dataclass(frozen=True)
class RunRecord:
    """One DagRun as ``%runs`` lists it. ``duration_s`` is end − start in seconds."""

    run_id: str
    logical_date: str | None
    state: str | None
    run_type: str
    version: int | None
    start_date: str | None
    duration_s: float | None


@dataclass(frozen=True)
class DagDiff:
    """What changed from version ``old`` to ``new`` of a DAG.

    ``changed_arguments`` maps a task id present in both to ``{argument: (old, new)}``, with
    ``None`` for an argument left at its default (Airflow does not serialize defaults).
    ``code_diff`` is a unified diff of the stored source ('' when it is the same).
    """

    dag_id: str
    old: int
    new: int
    added_tasks: list[str]
    removed_tasks: list[str]
    added_edges: list[tuple[str, str]]
    removed_edges: list[tuple[str, str]]
    changed_arguments: dict[str, dict[str, tuple[Any, Any]]]
    code_diff: str

    @property
    def unchanged(self) -> bool:
        """Whether the two versions have the same structure, arguments and code."""
        return not (
            self.added_tasks
            or self.removed_tasks
            or self.added_edges
            or self.removed_edges
            or self.changed_arguments
            or self.code_diff
        )

    def summary_lines(self) -> list[str]:
        """The structural difference as lines of text, most important first."""
        lines = [f"{self.dag_id}: version {self.old} -> {self.new}"]
        lines += [f"  + task {t}" for t in self.added_tasks]
        lines += [f"  - task {t}" for t in self.removed_tasks]
        lines += [f"  + edge {a} >> {b}" for a, b in self.added_edges]
        lines += [f"  - edge {a} >> {b}" for a, b in self.removed_edges]
        for task_id, args in self.changed_arguments.items():
            for name, (before, after) in args.items():
                lines.append(f"  ~ {task_id}.{name}: {_shown(before)} -> {_shown(after)}")
        if self.unchanged:
            lines.append("  no difference")
        return lines


@dataclass(frozen=True)
class TaskComparison:
    """One task instance in two runs: state, tries, duration and whether the XComs agree.

    ``xcom_equal`` is ``None`` when neither run has a return value for it; ``xcom_diff`` is
    a readable difference when they differ.
    """

    key: str
    state_a: str | None
    state_b: str | None
    tries_a: int | None
    tries_b: int | None
    duration_a: float | None
    duration_b: float | None
    xcom_equal: bool | None
    xcom_diff: str = field(default="", repr=False)

    @property
    def same(self) -> bool:
        """Whether state and XCom agree (tries and durations may differ)."""
        return self.state_a == self.state_b and self.xcom_equal is not False


def _shown(value: Any) -> str:
    # Airflow leaves arguments at their defaults out of the serialized form.
    return "(default)" if value is None else repr(value)


def _plain(value: Any) -> Any:
    """A serialized value without Airflow's ``{"__var": …, "__type": …}`` wrappers."""
    if isinstance(value, dict):
        if "__var" in value and "__type" in value:
            return _plain(value["__var"])
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _load_serialized(data: Any, compressed: bytes | None) -> dict[str, Any]:
    if data is None and compressed is not None:
        data = zlib.decompress(compressed)
    doc = json.loads(data) if isinstance(data, str | bytes) else data
    dag: dict[str, Any] = doc["dag"]
    return dag


def _version_from_row(dag_id: str, row: Any) -> DagVersion:
    tasks: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str]] = set()
    try:
        dag = _load_serialized(row["data"], row["data_compressed"]) if row["sid"] else {}
        for raw in dag.get("tasks", []):
            t = raw.get("__var", raw)
            task_id = str(t["task_id"])
            edges.update((task_id, str(d)) for d in t.get("downstream_task_ids") or [])
            tasks[task_id] = {k: _plain(v) for k, v in t.items() if k not in _NOT_ARGUMENTS}
    except (KeyError, TypeError, ValueError, AttributeError, zlib.error):
        tasks, edges = {}, set()
    return DagVersion(
        dag_id=dag_id,
        number=int(row["version_number"]),
        id=str(row["id"]),
        created_at=_ts(row["created_at"]),
        tasks=tasks,
        edges=frozenset(edges),
        source=row["source_code"],
    )


_VERSION_SQL = (
    "SELECT v.id, v.version_number, v.created_at, s.id AS sid, s.data, s.data_compressed, "
    "c.source_code FROM dag_version v "
    "LEFT JOIN serialized_dag s ON s.dag_version_id = v.id "
    "LEFT JOIN dag_code c ON c.dag_version_id = v.id "
    "WHERE v.dag_id = ?"
)


def _rows(con: Connection, sql: str, params: Iterable[Any]) -> list[Any]:
    con.row_factory = sqlite3.Row
    return con.execute(sql, tuple(params)).fetchall()


def list_versions(con: Connection, dag_id: str) -> list[DagVersion]:
    """Every recorded version of ``dag_id``, oldest first (empty if it has none)."""
    rows = _rows(con, _VERSION_SQL + " ORDER BY v.version_number", (dag_id,))
    return [_version_from_row(dag_id, r) for r in rows]


def get_version(con: Connection, dag_id: str, number: int) -> DagVersion:
    """Version ``number`` of ``dag_id``; raises :class:`VersionError` naming the known ones."""
    rows = _rows(con, _VERSION_SQL + " AND v.version_number = ?", (dag_id, number))
    if rows:
        return _version_from_row(dag_id, rows[0])
    known = [str(v.number) for v in list_versions(con, dag_id)]
    have = f"its versions are {', '.join(known)}" if known else "it has no recorded version yet"
    raise VersionError(f"DAG {dag_id!r} has no version {number}; {have}.")


def diff_versions(old: DagVersion, new: DagVersion) -> DagDiff:
    """The structural and code difference from ``old`` to ``new``."""
    changed: dict[str, dict[str, tuple[Any, Any]]] = {}
    for task_id in sorted(old.tasks.keys() & new.tasks.keys()):
        a, b = old.tasks[task_id], new.tasks[task_id]
        args = {
            k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)
        }
        if args:
            changed[task_id] = args
    code = "".join(
        difflib.unified_diff(
            (old.source or "").splitlines(keepends=True),
            (new.source or "").splitlines(keepends=True),
            fromfile=f"{old.dag_id} version {old.number}",
            tofile=f"{new.dag_id} version {new.number}",
        )
    )
    return DagDiff(
        dag_id=new.dag_id,
        old=old.number,
        new=new.number,
        added_tasks=sorted(new.tasks.keys() - old.tasks.keys()),
        removed_tasks=sorted(old.tasks.keys() - new.tasks.keys()),
        added_edges=sorted(new.edges - old.edges),
        removed_edges=sorted(old.edges - new.edges),
        changed_arguments=changed,
        code_diff=code,
    )


def run_history(con: Connection, dag_id: str, limit: int = 50) -> list[RunRecord]:
    """The DAG's runs, newest first, each with the number of the version it ran."""
    rows = _rows(
        con,
        "SELECT r.run_id, r.logical_date, r.state, r.run_type, r.start_date, r.end_date, "
        "v.version_number FROM dag_run r "
        "LEFT JOIN dag_version v ON v.id = r.created_dag_version_id "
        "WHERE r.dag_id = ? ORDER BY r.id DESC LIMIT ?",
        (dag_id, limit),
    )
    return [
        RunRecord(
            run_id=r["run_id"],
            logical_date=_ts(r["logical_date"]),
            state=r["state"],
            run_type=r["run_type"],
            version=r["version_number"],
            start_date=_ts(r["start_date"]),
            duration_s=_seconds(r["start_date"], r["end_date"]),
        )
        for r in rows
    ]


def values_equal(a: Any, b: Any) -> bool:
    """Equality as data: pandas objects and numpy arrays by content, the rest by ``==``."""
    for obj in (a, b):
        if hasattr(obj, "equals") and callable(obj.equals) and type(a) is type(b):
            return bool(a.equals(b))
    if type(a).__module__ == "numpy" or type(b).__module__ == "numpy":
        import numpy as np

        return bool(np.array_equal(a, b))
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return repr(a) == repr(b)


def _value_diff(a: Any, b: Any) -> str:
    if hasattr(a, "compare") and type(a) is type(b):
        try:
            return str(a.compare(b))
        except (TypeError, ValueError):
            pass  # differently labelled frames: fall back to their text
    left = pprint.pformat(a, width=80).splitlines()
    right = pprint.pformat(b, width=80).splitlines()
    return "\n".join(difflib.unified_diff(left, right, "run A", "run B", lineterm=""))


def compare_runs(
    con: Connection,
    dag_id: str,
    run_a: str,
    run_b: str,
    *,
    decode: Callable[[Any], Any] = lambda v: v,
) -> list[TaskComparison]:
    """Per task instance of either run: state, tries, duration and XCom equality.

    ``decode`` turns a stored XCom value (the JSON Airflow wrote) into the Python value, e.g.
    Airflow's serde in the kernel so pandas objects are compared as data. Raises
    :class:`VersionError` when a run does not exist.
    """
    found = {
        r["run_id"]
        for r in _rows(
            con,
            "SELECT run_id FROM dag_run WHERE dag_id = ? AND run_id IN (?, ?)",
            (dag_id, run_a, run_b),
        )
    }
    for run_id in (run_a, run_b):
        if run_id not in found:
            raise VersionError(f"DAG {dag_id!r} has no run {run_id!r}; %runs {dag_id} lists them.")
    side: list[dict[str, Any]] = []
    for run_id in (run_a, run_b):
        tis = {
            _key(r["task_id"], r["map_index"]): r
            for r in _rows(
                con,
                "SELECT task_id, map_index, state, try_number, duration FROM task_instance "
                "WHERE dag_id = ? AND run_id = ?",
                (dag_id, run_id),
            )
        }
        xcoms = {
            _key(r["task_id"], r["map_index"]): r["value"]
            for r in _rows(
                con,
                "SELECT task_id, map_index, value FROM xcom WHERE dag_id = ? AND run_id = ? "
                "AND \"key\" = 'return_value'",
                (dag_id, run_id),
            )
        }
        side.append({"tis": tis, "xcoms": xcoms})
    a, b = side
    out = []
    for key in sorted(a["tis"].keys() | b["tis"].keys(), key=_order):
        ta, tb = a["tis"].get(key), b["tis"].get(key)
        equal: bool | None = None
        diff = ""
        if key in a["xcoms"] or key in b["xcoms"]:
            va, vb = (_decoded(s["xcoms"].get(key), decode) for s in side)
            equal = values_equal(va, vb)
            diff = "" if equal else _value_diff(va, vb)
        out.append(
            TaskComparison(
                key=key,
                state_a=ta["state"] if ta else None,
                state_b=tb["state"] if tb else None,
                tries_a=ta["try_number"] if ta else None,
                tries_b=tb["try_number"] if tb else None,
                duration_a=ta["duration"] if ta else None,
                duration_b=tb["duration"] if tb else None,
                xcom_equal=equal,
                xcom_diff=diff,
            )
        )
    return out


def _decoded(raw: Any, decode: Callable[[Any], Any]) -> Any:
    if raw is None:
        return None
    value = json.loads(raw) if isinstance(raw, str | bytes) else raw
    return decode(value)


def _key(task_id: str, map_index: int) -> str:
    return task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"


def _order(key: str) -> tuple[str, int]:
    task, _, rest = key.partition("[")
    return task, int(rest.rstrip("]")) if rest else -1


def _ts(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).replace(" ", "T")


def _seconds(start: Any, end: Any) -> float | None:
    if not start or not end:
        return None
    try:
        parse = datetime.fromisoformat
        return (parse(str(end)) - parse(str(start))).total_seconds()
    except ValueError:
        return None
