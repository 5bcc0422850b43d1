"""Read what a session home holds — DAG graphs, runs, task states, logs — without Airflow.

The server extension answers the sidebar from here. Sources, as ``docs/design.md`` lays them
out:

* graph snapshots ``kyte/graphs/<dag_id>.json`` written by the kernel (and, for DAG files
  dropped into the session's ``dags/`` folder, the serialized DAG Airflow stored for them);
* runs and task-instance states in ``airflow.db``, opened read-only with :mod:`sqlite3` (the
  metastore is in WAL mode, so a reader sees a task go ``running`` while a kernel writes),
  or in the session's PostgreSQL database, read with :mod:`psycopg` through the same SQL
  (:func:`kyte_jupyter.session.metastore.connect_readonly`);
* task logs under ``logs/``, read by byte range so a client can follow a growing log.

Replies are the models of :mod:`kyte_jupyter.contracts.rest` (built, so validated, here).
Ids are checked against Airflow's id rules (:mod:`kyte_jupyter.contracts.ids`) before they
touch the file system or the metastore.

Nothing here imports Airflow or jupyter_server. Every call does blocking I/O: callers on an
event loop run it in a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import ValidationError

from ..contracts.graph import GraphSnapshot
from ..contracts.ids import id_problem
from ..contracts.rest import (
    DagRun,
    DagRunSummary,
    DagView,
    LogMatch,
    LogRange,
    LogSearch,
    Node,
    TaskInstance,
)
from ..session import Session
from ..session.metastore import Connection
from .errors import (
    BadRequestError,
    ForbiddenError,
    MetastoreError,
    NotFoundError,
    StateError,
)
from .forced import forced_outcomes, instance_key, task_forced
from .graphs import graph_from_serialized
from .logs import (
    HEAD_BYTES,
    MAX_SEARCH_MATCHES,
    LogFiles,
    is_record_log,
    log_path_parts,
    render_log_text,
    search,
    utf8_complete_len,
)

#: Task-instance states after which a try has ended (its log will not grow).
FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
_TRY_ENDED_STATES = FINISHED_STATES | {"up_for_retry", "up_for_reschedule"}

#: How Airflow's grid view sums up the states of a mapped task's instances: the first state
#: of this list that any instance is in wins (``None`` is "no state yet").
STATE_PRIORITY: tuple[str | None, ...] = (
    "failed",
    "upstream_failed",
    "up_for_retry",
    "up_for_reschedule",
    "running",
    "restarting",
    "deferred",
    "awaiting_input",
    "queued",
    "scheduled",
    None,
    "success",
    "skipped",
    "removed",
)


DEFAULT_LOG_LIMIT = 1024 * 1024
MAX_LOG_LIMIT = 8 * 1024 * 1024
DEFAULT_RUNS_LIMIT = 100
MAX_RUNS_LIMIT = 10_000
#: Longest search text.
MAX_SEARCH_LENGTH = 1000
#: Airflow's INTEGER columns (map_index, try_number) are 32-bit in its other databases.
MAX_INT32 = 2**31 - 1


def check_ids(**ids: str) -> None:
    """Raise :class:`BadRequestError` unless each ``label=value`` is a valid Airflow id."""
    for label, value in ids.items():
        problem = id_problem(label, value)
        if problem is not None:
            raise BadRequestError(problem)


def aggregate_state(states: Iterable[str | None]) -> str | None:
    """One state for many task instances (a mapped task), as Airflow's grid view sums them."""
    present = set(states)
    for state in STATE_PRIORITY:
        if state in present:
            return state
    return None


def _ts(value: Any) -> str | None:
    """A metastore timestamp as ISO 8601. SQLite rows hold naive UTC (``2026-01-02 03:04:05``)."""
    if value is None:
        return None
    text = str(value).strip().replace(" ", "T", 1)
    if not text:
        return None
    tail = text[10:]
    if text.endswith("Z") or "+" in tail or "-" in tail:
        return text
    return text + "+00:00"


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bytes):
        return None  # pickled conf of an old Airflow: not readable without Airflow
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


class SessionState:
    """Read-only view of one session home's DAGs, runs, task states and logs."""

    def __init__(self, session: Session, *, busy_timeout: float = 1.0) -> None:
        self.session = session
        self._files = LogFiles(session.logs_folder)
        self.busy_timeout = busy_timeout

    # ---- metastore -------------------------------------------------------------------
    @contextlib.contextmanager
    def _db(self) -> Iterator[Connection]:
        path = self.session.db_path
        if self.session.metastore_url is None and not path.is_file():
            raise MetastoreError(
                f"Session {self.session.id} has no metastore ({path}). Delete the session "
                "and restart the notebook's kernel to get a fresh one."
            )
        try:
            con = self.session.connect_readonly(timeout=self.busy_timeout)
        except sqlite3.Error as e:
            raise self._translate(e) from e
        con.row_factory = sqlite3.Row
        try:
            yield con
        except sqlite3.Error as e:
            raise self._translate(e) from e
        finally:
            con.close()

    def _translate(self, e: sqlite3.Error) -> MetastoreError:
        text = str(e)
        where = self.session.db_path if self.session.metastore_url is None else "PostgreSQL"
        what = f"metastore of session {self.session.id} ({where})"
        if isinstance(e, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return MetastoreError(
                f"The {what} is locked by another process ({text}). Try again in a moment; "
                "if it stays locked, restart the notebook's kernel.",
                status=503,
            )
        if isinstance(e, sqlite3.OperationalError) and text.startswith("unable to open"):
            return MetastoreError(
                f"Could not connect to the {what}: {text}. Check that the database server "
                "is up; if the session's database was dropped, delete the session.",
                status=503,
            )
        if isinstance(e, sqlite3.OperationalError) and text.startswith("no such"):
            return MetastoreError(
                f"The {what} does not have the tables this Kyte expects ({text}). It may come "
                "from another Airflow version: delete the session to start over."
            )
        return MetastoreError(
            f"Could not read the {what}: {text}. If the file is damaged, delete the session "
            "(its runs and logs go with it) and restart the notebook's kernel."
        )

    # ---- DAGs ------------------------------------------------------------------------
    def _snapshots(self) -> dict[str, GraphSnapshot]:
        out: dict[str, GraphSnapshot] = {}
        gdir = self.session.graphs_dir
        if not gdir.is_dir():
            return out
        for path in sorted(gdir.iterdir()):
            if path.name.startswith(".") or path.suffix != ".json" or path.is_symlink():
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and not data.get("dag_id"):
                    data["dag_id"] = path.stem
                snapshot = GraphSnapshot.model_validate(data)
            except (OSError, ValueError):  # ValidationError is a ValueError
                continue  # being replaced right now, or damaged: the next poll sees it again
            out[snapshot.dag_id] = snapshot
        return out

    def _folder_dags(self, con: Connection, known: set[str]) -> dict[str, GraphSnapshot]:
        """Graphs of DAG files in the session's ``dags/`` folder, from their serialized form.

        Cell-defined DAGs are serialized too, with the notebook as ``fileloc``; they are left
        out here so that a DAG removed from the notebook (snapshot deleted) disappears.
        """
        folder = os.path.join(os.path.realpath(self.session.dags_folder), "")
        out: dict[str, GraphSnapshot] = {}
        try:
            rows = con.execute(
                "SELECT dag_id, fileloc, description, timetable_summary FROM dag "
                "WHERE NOT is_stale ORDER BY dag_id"
            ).fetchall()
        except sqlite3.OperationalError as e:
            if str(e).startswith("no such"):
                return out
            raise
        for row in rows:
            fileloc = row["fileloc"] or ""
            if row["dag_id"] in known or not os.path.realpath(fileloc).startswith(folder):
                continue
            ser = con.execute(
                "SELECT data, data_compressed FROM serialized_dag WHERE dag_id = ? "
                "ORDER BY last_updated DESC LIMIT 1",
                (row["dag_id"],),
            ).fetchone()
            if ser is None:
                continue
            graph = graph_from_serialized(ser["data"], ser["data_compressed"])
            if graph is None:
                continue
            if graph.get("description") is None:
                graph["description"] = row["description"]
            graph["dag_id"] = row["dag_id"]
            graph["schedule"] = row["timetable_summary"]
            graph["fileloc"] = fileloc
            try:
                out[row["dag_id"]] = GraphSnapshot.model_validate(graph)
            except ValidationError:
                continue
        return out

    def _latest_run(self, con: Connection, dag_id: str) -> Any:
        row: Any = con.execute(
            "SELECT run_id, state, run_type, logical_date, start_date, end_date FROM dag_run "
            "WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
            (dag_id,),
        ).fetchone()
        return row

    def dags(self) -> list[DagView]:
        """Every DAG of the session with its graph and the task states of its latest run."""
        graphs = self._snapshots()
        out = []
        with self._db() as con:
            sources = {dag_id: "notebook" for dag_id in graphs}
            folder = self._folder_dags(con, set(graphs))
            graphs.update(folder)
            sources.update({dag_id: "dags_folder" for dag_id in folder})
            for dag_id in sorted(graphs):
                out.append(self._dag_view(con, dag_id, graphs[dag_id], sources[dag_id]))
        return out

    def _dag_view(
        self, con: Connection, dag_id: str, graph: GraphSnapshot, source: str
    ) -> DagView:
        run = self._latest_run(con, dag_id)
        states: dict[str, dict[int, tuple[str | None, int]]] = {}
        forced = self._forced(dag_id, [run["run_id"]] if run is not None else []).get(
            run["run_id"] if run is not None else "", {}
        )
        if run is not None:
            for ti in con.execute(
                "SELECT task_id, map_index, state, try_number FROM task_instance "
                "WHERE dag_id = ? AND run_id = ?",
                (dag_id, run["run_id"]),
            ):
                states.setdefault(ti["task_id"], {})[ti["map_index"]] = (
                    ti["state"],
                    ti["try_number"] or 0,
                )
        nodes = []
        for raw in graph.nodes:
            tis = states.get(raw.task_id, {})
            mapped = {i: st for i, st in tis.items() if i >= 0}
            map_states: dict[str, str | None] | None = None
            if mapped or raw.is_mapped:
                map_states = {str(i): mapped[i][0] for i in sorted(mapped)}
                state = (
                    aggregate_state(st for st, _ in mapped.values())
                    if mapped
                    else tis.get(-1, (None, 0))[0]
                )
                try_number = max((t for _, t in tis.values()), default=0)
            else:
                state, try_number = tis.get(-1, (None, 0))
            nodes.append(
                Node(
                    **raw.model_dump(),
                    state=state,
                    try_number=try_number,
                    map_states=map_states,
                    forced=task_forced(forced, raw.task_id),
                )
            )
        return DagView(
            dag_id=dag_id,
            description=graph.description,
            schedule=graph.schedule,
            fileloc=graph.fileloc,
            source="dags_folder" if source == "dags_folder" else "notebook",
            updated=graph.updated,
            nodes=nodes,
            edges=graph.edges,
            task_groups=graph.task_groups,
            latest_run=None if run is None else _run_summary(run, forced),
            warnings=graph.warnings,
            findings=graph.findings,
        )

    def _forced(self, dag_id: str, run_ids: list[str]) -> dict[str, dict[str, str]]:
        """The what-if outcomes forced in these runs, from the audit trail (``state.forced``)."""
        return forced_outcomes(self.session.audit_path, dag_id, run_ids)

    def _dag_known(self, con: Connection, dag_id: str) -> bool:
        if (self.session.graphs_dir / f"{dag_id}.json").is_file():
            return True
        for sql in ("SELECT 1 FROM dag WHERE dag_id = ?", "SELECT 1 FROM dag_run WHERE dag_id = ?"):
            if con.execute(sql, (dag_id,)).fetchone() is not None:
                return True
        return False

    # ---- runs and task instances -----------------------------------------------------
    def runs(self, dag_id: str, limit: int = DEFAULT_RUNS_LIMIT) -> list[DagRun]:
        """Runs of a DAG, newest first."""
        check_ids(dag_id=dag_id)
        if not 1 <= limit <= MAX_RUNS_LIMIT:
            raise BadRequestError(f"limit must be between 1 and {MAX_RUNS_LIMIT}.")
        with self._db() as con:
            # The DAG version each run was created with (Airflow 3 records one per change).
            rows = con.execute(
                "SELECT r.run_id, r.state, r.run_type, r.logical_date, r.start_date, "
                "r.end_date, r.conf, v.version_number FROM dag_run r "
                "LEFT JOIN dag_version v ON v.id = r.created_dag_version_id "
                "WHERE r.dag_id = ? ORDER BY r.id DESC LIMIT ?",
                (dag_id, limit),
            ).fetchall()
            if not rows and not self._dag_known(con, dag_id):
                raise NotFoundError(f"Session {self.session.id} has no DAG {dag_id!r}.")
        out = []
        forced = self._forced(dag_id, [r["run_id"] for r in rows])
        for r in rows:
            conf = _json_value(r["conf"])
            out.append(
                DagRun(
                    **_run_summary(r, forced[r["run_id"]]).model_dump(),
                    conf=conf if isinstance(conf, dict) else None,
                    dag_version=r["version_number"],
                )
            )
        return out

    def _require_run(self, con: Connection, dag_id: str, run_id: str) -> None:
        row = con.execute(
            "SELECT 1 FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"DAG {dag_id!r} has no run {run_id!r} in this session.")

    def tasks(self, dag_id: str, run_id: str) -> list[TaskInstance]:
        """The task instances of one run (one row per map index)."""
        check_ids(dag_id=dag_id, run_id=run_id)
        with self._db() as con:
            self._require_run(con, dag_id, run_id)
            rows = con.execute(
                "SELECT task_id, map_index, state, try_number, start_date, end_date, duration, "
                "operator, custom_operator_name, rendered_map_index FROM task_instance "
                "WHERE dag_id = ? AND run_id = ? ORDER BY start_date IS NULL, start_date, "
                "task_id, map_index",
                (dag_id, run_id),
            ).fetchall()
        forced = self._forced(dag_id, [run_id])[run_id]
        return [
            TaskInstance(
                task_id=r["task_id"],
                map_index=r["map_index"],
                state=r["state"],
                try_number=r["try_number"] or 0,
                start_date=_ts(r["start_date"]),
                end_date=_ts(r["end_date"]),
                duration=r["duration"],
                operator=r["custom_operator_name"] or r["operator"],
                rendered_map_index=r["rendered_map_index"],
                forced=forced.get(instance_key(r["task_id"], r["map_index"])),
            )
            for r in rows
        ]

    # ---- logs --------------------------------------------------------------------------
    def _log_try(
        self, dag_id: str, run_id: str, task_id: str, try_number: int | None, map_index: int
    ) -> tuple[int, list[int], str | None, bool]:
        """``(try, tries, state, ended)`` of the try a log request is about."""
        check_ids(dag_id=dag_id, run_id=run_id, task_id=task_id)
        if not -1 <= map_index <= MAX_INT32:
            raise BadRequestError(
                f"map_index must be -1 (not mapped) or a map index from 0 to {MAX_INT32}."
            )
        if try_number is not None and not 1 <= try_number <= MAX_INT32:
            raise BadRequestError(f"try must be from 1 to {MAX_INT32}.")
        log_path_parts(dag_id, run_id, task_id, map_index, 1)  # rejects unusable ids early

        with self._db() as con:
            self._require_run(con, dag_id, run_id)
            ti = con.execute(
                "SELECT state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ? "
                "AND task_id = ? AND map_index = ?",
                (dag_id, run_id, task_id, map_index),
            ).fetchone()
            if ti is None:
                raise NotFoundError(self._no_task_message(con, dag_id, run_id, task_id, map_index))
            history = {
                r["try_number"]: r["state"]
                for r in con.execute(
                    "SELECT try_number, state FROM task_instance_history WHERE dag_id = ? "
                    "AND run_id = ? AND task_id = ? AND map_index = ?",
                    (dag_id, run_id, task_id, map_index),
                )
            }
        current = int(ti["try_number"] or 0)
        tries = (
            set(range(1, current + 1))
            | set(history)
            | self._files.attempts_on_disk(dag_id, run_id, task_id, map_index)
        )
        chosen = try_number if try_number is not None else max(tries, default=0)
        if try_number is not None and try_number not in tries:
            listed = ", ".join(map(str, sorted(tries))) or "none yet"
            raise NotFoundError(f"Task {task_id!r} has no try {try_number} (tries: {listed}).")
        # History rows are written when a try ends (retry, clear), so they win over the
        # instance's own state, which already describes the next try after a clear.
        if chosen in history:
            state, ended = history[chosen], True
        else:
            state = ti["state"] if chosen == current else None
            ended = chosen < current or state in _TRY_ENDED_STATES
        return chosen, sorted(tries), state, ended

    def log(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        *,
        try_number: int | None = None,
        map_index: int = -1,
        offset: int = 0,
        limit: int = DEFAULT_LOG_LIMIT,
    ) -> LogRange:
        """A byte range of one try's log.

        ``try_number`` defaults to the latest try. A negative ``offset`` counts from the end
        of the file (``-4096`` is its last 4 KiB), moved forward to the next line boundary
        so the range never starts inside a line. The reply's ``next_offset`` is where the
        next request should start to follow the log; ``complete`` is true once the try has
        ended and everything was read. Text is decoded as UTF-8 with replacement characters;
        a range never ends inside a character while the log can still grow.
        """
        if not 1 <= limit <= MAX_LOG_LIMIT:
            raise BadRequestError(f"limit must be between 1 and {MAX_LOG_LIMIT} bytes.")
        chosen, tries, state, ended = self._log_try(dag_id, run_id, task_id, try_number, map_index)
        if chosen == 0:
            return LogRange(
                try_number=0, tries=tries, state=state, map_index=map_index,
                text="", offset=0, next_offset=0, size=0, complete=False,
            )  # fmt: skip
        parts = log_path_parts(dag_id, run_id, task_id, map_index, chosen)
        chunk, start, size, records = self._files.read_range(parts, offset, limit)
        keep = len(chunk)
        if start + keep < size or not ended:
            keep = utf8_complete_len(chunk)
            if records and chunk.rfind(b"\n", 0, keep) >= 0:
                # A worker's JSON records render whole: stop after the last complete one.
                keep = chunk.rfind(b"\n", 0, keep) + 1
            if keep == 0 and start + len(chunk) < size:
                keep = len(chunk)  # a limit shorter than one character: still make progress
        next_offset = start + keep
        text = chunk[:keep].decode("utf-8", errors="replace")
        return LogRange(
            try_number=chosen,
            tries=tries,
            state=state,
            map_index=map_index,
            text=render_log_text(text) if records else text,
            offset=start,
            next_offset=next_offset,
            size=size,
            complete=ended and next_offset >= size,
        )

    def search_log(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        query: str,
        *,
        try_number: int | None = None,
        map_index: int = -1,
    ) -> LogSearch:
        """The lines of one try's whole log that contain ``query``, case-insensitively.

        At most :data:`MAX_SEARCH_MATCHES` lines (``truncated`` says there were more); each
        with its 1-based number and the byte offset of its start, to fetch the log there.
        """
        if not query or len(query) > MAX_SEARCH_LENGTH:
            raise BadRequestError(f"search must be 1 to {MAX_SEARCH_LENGTH} characters.")
        chosen, _, _, _ = self._log_try(dag_id, run_id, task_id, try_number, map_index)
        matches: list[LogMatch] = []
        truncated = False
        size = 0
        if chosen:
            fd = self._files.open_log(log_path_parts(dag_id, run_id, task_id, map_index, chosen))
            if fd is not None:
                with os.fdopen(fd, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    records = is_record_log(os.pread(f.fileno(), HEAD_BYTES, 0))
                    truncated = search(f, size, query.casefold(), matches, records)
        return LogSearch(
            query=query,
            matches=matches,
            truncated=truncated,
            size=size,
            try_number=chosen,
            map_index=map_index,
        )

    def _no_task_message(
        self, con: Connection, dag_id: str, run_id: str, task_id: str, map_index: int
    ) -> str:
        indexes = [
            r[0]
            for r in con.execute(
                "SELECT map_index FROM task_instance WHERE dag_id = ? AND run_id = ? "
                "AND task_id = ? ORDER BY map_index",
                (dag_id, run_id, task_id),
            )
        ]
        if not indexes:
            return f"Run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}."
        if map_index == -1:
            return f"Task {task_id!r} is mapped: pass map_index ({indexes[0]}..{indexes[-1]})."
        return f"Task {task_id!r} has no map index {map_index} in run {run_id!r}."

def _run_summary(row: Any, forced: dict[str, str] | None = None) -> DagRunSummary:
    return DagRunSummary(
        forced=forced or {},
        run_id=row["run_id"],
        state=row["state"],
        run_type=row["run_type"],
        logical_date=_ts(row["logical_date"]),
        start_date=_ts(row["start_date"]),
        end_date=_ts(row["end_date"]),
    )


__all__ = [
    "DEFAULT_LOG_LIMIT", "DEFAULT_RUNS_LIMIT", "FINISHED_STATES", "MAX_INT32", "MAX_LOG_LIMIT",
    "MAX_RUNS_LIMIT", "MAX_SEARCH_LENGTH", "MAX_SEARCH_MATCHES", "STATE_PRIORITY",
    "BadRequestError", "ForbiddenError", "MetastoreError", "NotFoundError", "SessionState",
    "StateError", "aggregate_state", "check_ids", "graph_from_serialized", "log_path_parts",
    "utf8_complete_len",
]
