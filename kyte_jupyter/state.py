"""Read what a session home holds — DAG graphs, runs, task states, logs — without Airflow.

The server extension answers the sidebar from here. Sources, as ``docs/design.md`` lays them
out:

* graph snapshots ``kyte/graphs/<dag_id>.json`` written by the kernel (and, for DAG files
  dropped into the session's ``dags/`` folder, the serialized DAG Airflow stored for them);
* runs and task-instance states in ``airflow.db``, opened read-only with :mod:`sqlite3` (the
  metastore is in WAL mode, so a reader sees a task go ``running`` while a kernel writes);
* task logs under ``logs/``, read by byte range so a client can follow a growing log.

Replies are the models of :mod:`kyte_jupyter.contracts.rest` (built, so validated, here).
Ids are checked against Airflow's id rules (:mod:`kyte_jupyter.contracts.ids`) before they
touch the file system or the metastore.

Nothing here imports Airflow or jupyter_server. Every call does blocking I/O: callers on an
event loop run it in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import stat
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import ValidationError

from .contracts.graph import GraphSnapshot
from .contracts.ids import id_problem
from .contracts.rest import (
    DagRun,
    DagRunSummary,
    DagView,
    LogMatch,
    LogRange,
    LogSearch,
    Node,
    TaskInstance,
)
from .session import Session

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
#: Most lines a log search returns (the reply says ``truncated`` when more matched).
MAX_SEARCH_MATCHES = 1000
#: Longest search text.
MAX_SEARCH_LENGTH = 1000
#: A log is searched in pieces of at most this many bytes (a longer line is several pieces;
#: a match across two pieces of one line is missed), and a match shows this much of its line.
_SEARCH_PIECE = 64 * 1024
_MATCH_TEXT = 2000
#: Airflow's INTEGER columns (map_index, try_number) are 32-bit in its other databases.
MAX_INT32 = 2**31 - 1


class StateError(Exception):
    """A request for session state failed; ``status`` is the matching HTTP status."""

    status = 500


class NotFoundError(StateError):
    """No such DAG, run, task, map index or try in the session."""

    status = 404


class BadRequestError(StateError):
    """The request itself is malformed (a negative limit, a bad map index, ...)."""

    status = 400


class ForbiddenError(StateError):
    """The request would read outside the places Kyte serves (a symbolic link, say)."""

    status = 403


class MetastoreError(StateError):
    """The session's ``airflow.db`` is missing, damaged or locked."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


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


def _utf8_complete_len(data: bytes) -> int:
    """Length of the longest prefix of ``data`` that does not stop inside a UTF-8 character."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte & 0xC0 == 0x80:  # continuation byte: keep looking for the lead byte
            continue
        if byte < 0x80:
            return n
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return n if back >= need else n - back
    return n


def log_path_parts(
    dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
) -> list[str]:
    """Path components of a try's log under ``logs/``, as Airflow's default template lays it out.

    Raises :class:`BadRequestError` for ids that could not be one path component each.
    """
    for label, value in (("dag_id", dag_id), ("run_id", run_id), ("task_id", task_id)):
        if not value or "/" in value or "\\" in value or "\0" in value:
            raise BadRequestError(f"{label} {value!r} cannot name a log file.")
    parts = [f"dag_id={dag_id}", f"run_id={run_id}", f"task_id={task_id}"]
    if map_index >= 0:
        parts.append(f"map_index={map_index}")
    parts.append(f"attempt={try_number}.log")
    return parts


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def _refuse_link(path: str) -> ForbiddenError:
    return ForbiddenError(
        f"{path} is a symbolic link or not a regular file; "
        "Kyte only serves real files inside the session's logs folder."
    )


class SessionState:
    """Read-only view of one session home's DAGs, runs, task states and logs."""

    def __init__(self, session: Session, *, busy_timeout: float = 1.0) -> None:
        self.session = session
        self.busy_timeout = busy_timeout

    # ---- metastore -------------------------------------------------------------------
    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        path = self.session.db_path
        if not path.is_file():
            raise MetastoreError(
                f"Session {self.session.id} has no metastore ({path}). Delete the session "
                "and restart the notebook's kernel to get a fresh one."
            )
        try:
            con = sqlite3.connect(
                path.absolute().as_uri() + "?mode=ro", uri=True, timeout=self.busy_timeout
            )
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
        what = f"metastore of session {self.session.id} ({self.session.db_path})"
        if isinstance(e, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return MetastoreError(
                f"The {what} is locked by another process ({text}). Try again in a moment; "
                "if it stays locked, restart the notebook's kernel.",
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

    def _folder_dags(self, con: sqlite3.Connection, known: set[str]) -> dict[str, GraphSnapshot]:
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

    def _latest_run(self, con: sqlite3.Connection, dag_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = con.execute(
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
        self, con: sqlite3.Connection, dag_id: str, graph: GraphSnapshot, source: str
    ) -> DagView:
        run = self._latest_run(con, dag_id)
        states: dict[str, dict[int, tuple[str | None, int]]] = {}
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
            latest_run=None if run is None else _run_summary(run),
            warnings=graph.warnings,
        )

    def _dag_known(self, con: sqlite3.Connection, dag_id: str) -> bool:
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
        for r in rows:
            conf = _json_value(r["conf"])
            out.append(
                DagRun(
                    **_run_summary(r).model_dump(),
                    conf=conf if isinstance(conf, dict) else None,
                    dag_version=r["version_number"],
                )
            )
        return out

    def _require_run(self, con: sqlite3.Connection, dag_id: str, run_id: str) -> None:
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
            | self._attempts_on_disk(dag_id, run_id, task_id, map_index)
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
        chunk, start, size = self._read_range(parts, offset, limit)
        keep = len(chunk)
        if start + keep < size or not ended:
            keep = _utf8_complete_len(chunk)
            if keep == 0 and start + len(chunk) < size:
                keep = len(chunk)  # a limit shorter than one character: still make progress
        next_offset = start + keep
        return LogRange(
            try_number=chosen,
            tries=tries,
            state=state,
            map_index=map_index,
            text=chunk[:keep].decode("utf-8", errors="replace"),
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
            fd = self._open_log(log_path_parts(dag_id, run_id, task_id, map_index, chosen))
            if fd is not None:
                with os.fdopen(fd, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    truncated = _search(f, size, query.casefold(), matches)
        return LogSearch(
            query=query,
            matches=matches,
            truncated=truncated,
            size=size,
            try_number=chosen,
            map_index=map_index,
        )

    def _no_task_message(
        self, con: sqlite3.Connection, dag_id: str, run_id: str, task_id: str, map_index: int
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

    def _open_dir(self, parts: list[str]) -> int | None:
        """A file descriptor of ``logs/<parts...>``, walked without following any link."""
        logs = str(self.session.logs_folder)
        try:
            fd = os.open(logs, _DIR_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise _refuse_link(logs) from e
        for part in parts:
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.close(fd)
                return None
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refuse_link(part) from e
                raise
            os.close(fd)
            fd = nfd
        return fd

    def _attempts_on_disk(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> set[int]:
        parts = log_path_parts(dag_id, run_id, task_id, map_index, 1)[:-1]
        try:
            fd = self._open_dir(parts)
        except ForbiddenError:
            return set()
        if fd is None:
            return set()
        try:
            names = os.listdir(fd)
        finally:
            os.close(fd)
        found = set()
        for name in names:
            if name.startswith("attempt=") and name.endswith(".log"):
                with contextlib.suppress(ValueError):
                    n = int(name[len("attempt=") : -len(".log")])
                    if n >= 1:
                        found.add(n)
        return found

    def _open_log(self, parts: list[str]) -> int | None:
        """A file descriptor of a log file (a regular file, no link anywhere), or ``None``."""
        dir_fd = self._open_dir(parts[:-1])
        if dir_fd is None:
            return None
        try:
            try:
                fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
            except FileNotFoundError:
                return None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise _refuse_link(parts[-1]) from e
                raise
        finally:
            os.close(dir_fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _refuse_link(parts[-1])
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _read_range(self, parts: list[str], offset: int, limit: int) -> tuple[bytes, int, int]:
        """``(bytes, start, size)`` of a log file; empty when the try has not logged yet."""
        fd = self._open_log(parts)
        if fd is None:
            return b"", 0, 0
        try:
            size = os.fstat(fd).st_size
            if offset < 0:
                start = _line_start(fd, max(0, size + offset), size)
            else:
                start = min(offset, size)
            chunk = os.pread(fd, min(limit, size - start), start) if size > start else b""
        finally:
            os.close(fd)
        return chunk, start, size


def _line_start(fd: int, pos: int, size: int) -> int:
    """The first line start at or after ``pos``; if the rest of the file is one unfinished
    line, that line's start (looking back at most 1 MiB, else ``pos`` itself)."""
    if pos == 0:
        return 0
    window = os.pread(fd, min(_SEARCH_PIECE, size - pos + 1), pos - 1)
    i = window.find(b"\n")
    if i >= 0:
        return pos + i
    if pos - 1 + len(window) < size:
        return pos  # a line longer than the window: give up aligning, start where asked
    back = pos
    while back > 0 and pos - back < 1024 * 1024:
        lo = max(0, back - _SEARCH_PIECE)
        j = os.pread(fd, back - lo, lo).rfind(b"\n")
        if j >= 0:
            return lo + j + 1
        back = lo
    return 0 if back == 0 else pos


def _search(f: Any, size: int, needle: str, matches: list[LogMatch]) -> bool:
    """Append the lines of ``f`` (its first ``size`` bytes) containing ``needle`` (casefolded).

    Returns whether more than :data:`MAX_SEARCH_MATCHES` lines matched (it stops there).
    Reads pieces of at most ``_SEARCH_PIECE`` bytes, so memory stays bounded on any line.
    """
    line_no, line_start, pos = 1, 0, 0
    matched_line = 0
    first_piece = b""
    while pos < size:
        piece: bytes = f.readline(min(_SEARCH_PIECE, size - pos))
        if not piece:
            break
        if pos == line_start:
            first_piece = piece
        pos += len(piece)
        if matched_line != line_no and needle in piece.decode("utf-8", "replace").casefold():
            if len(matches) == MAX_SEARCH_MATCHES:
                return True
            matched_line = line_no
            text = first_piece.rstrip(b"\r\n").decode("utf-8", "replace")[:_MATCH_TEXT]
            matches.append(LogMatch(line=line_no, offset=line_start, text=text))
        if piece.endswith(b"\n"):
            line_no += 1
            line_start = pos
    return False


def _run_summary(row: sqlite3.Row) -> DagRunSummary:
    return DagRunSummary(
        run_id=row["run_id"],
        state=row["state"],
        run_type=row["run_type"],
        logical_date=_ts(row["logical_date"]),
        start_date=_ts(row["start_date"]),
        end_date=_ts(row["end_date"]),
    )


def graph_from_serialized(data: Any, compressed: bytes | None = None) -> dict[str, Any] | None:
    """A graph snapshot (``docs/design.md`` shape) from a ``serialized_dag`` row, or ``None``.

    Reads the JSON Airflow stores for a DAG (``{"__version": 3, "dag": {...}}``) as plain data;
    anything unexpected makes it give up rather than guess.
    """
    try:
        if data is None and compressed is not None:
            data = zlib.decompress(compressed)
        doc = json.loads(data) if isinstance(data, str | bytes) else data
        dag = doc["dag"]
        tasks = [t.get("__var", t) for t in dag["tasks"]]
    except (KeyError, TypeError, ValueError, AttributeError, zlib.error):
        return None
    groups: list[dict[str, Any]] = []
    task_group_of: dict[str, str | None] = {}

    def walk(group: dict[str, Any], group_id: str | None) -> None:
        for child in (group.get("children") or {}).values():
            if not isinstance(child, list) or len(child) != 2:
                continue
            kind, value = child
            if kind == "taskgroup" and isinstance(value, dict):
                gid = value.get("_group_id")
                label = (
                    gid.rsplit(".", 1)[-1] if gid and value.get("prefix_group_id", True) else gid
                )
                groups.append({"group_id": gid, "parent": group_id, "label": label})
                walk(value, gid)
            elif kind == "operator":
                task_group_of[str(value)] = group_id

    if isinstance(dag.get("task_group"), dict):
        walk(dag["task_group"], None)
    nodes = []
    edges: list[list[str]] = []
    for t in tasks:
        if not isinstance(t, dict) or "task_id" not in t:
            return None
        task_id = str(t["task_id"])
        group = task_group_of.get(task_id)
        label = task_id[len(group) + 1 :] if group and task_id.startswith(group + ".") else task_id
        nodes.append(
            {
                "task_id": task_id,
                "label": label,
                "operator": t.get("_operator_name") or t.get("task_type"),
                "task_group": group,
                "is_mapped": bool(t.get("_is_mapped", False)),
                "is_setup": bool(t.get("_is_setup", False)),
                "is_teardown": bool(t.get("_is_teardown", False)),
                "trigger_rule": t.get("trigger_rule", "all_success"),
            }
        )
        edges.extend([task_id, str(down)] for down in sorted(t.get("downstream_task_ids") or []))
    return {
        "dag_id": dag.get("dag_id"),
        "description": dag.get("description"),
        "nodes": nodes,
        "edges": edges,
        "task_groups": groups,
    }
