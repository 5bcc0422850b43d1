"""Read what a session home holds — DAG graphs, runs, task states, logs — without Airflow.

The server extension answers the sidebar from here. Sources, as ``docs/design.md`` lays them
out:

* graph snapshots ``kyte/graphs/<dag_id>.json`` written by the kernel (and, for DAG files
  dropped into the session's ``dags/`` folder, the serialized DAG Airflow stored for them);
* runs and task-instance states in ``airflow.db``, opened read-only with :mod:`sqlite3` (the
  metastore is in WAL mode, so a reader sees a task go ``running`` while a kernel writes);
* task logs under ``logs/``, read by byte range so a client can follow a growing log.

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
    def _snapshots(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        gdir = self.session.graphs_dir
        if not gdir.is_dir():
            return out
        for path in sorted(gdir.iterdir()):
            if path.name.startswith(".") or path.suffix != ".json" or path.is_symlink():
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # being replaced right now, or damaged: the next poll sees it again
            if isinstance(data, dict) and isinstance(data.get("nodes"), list):
                out[str(data.get("dag_id") or path.stem)] = data
        return out

    def _folder_dags(self, con: sqlite3.Connection, known: set[str]) -> dict[str, dict[str, Any]]:
        """Graphs of DAG files in the session's ``dags/`` folder, from their serialized form.

        Cell-defined DAGs are serialized too, with the notebook as ``fileloc``; they are left
        out here so that a DAG removed from the notebook (snapshot deleted) disappears.
        """
        folder = os.path.join(os.path.realpath(self.session.dags_folder), "")
        out: dict[str, dict[str, Any]] = {}
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
            graph["schedule"] = row["timetable_summary"]
            graph["fileloc"] = fileloc
            out[row["dag_id"]] = graph
        return out

    def _latest_run(self, con: sqlite3.Connection, dag_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = con.execute(
            "SELECT run_id, state, run_type, logical_date, start_date, end_date FROM dag_run "
            "WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
            (dag_id,),
        ).fetchone()
        return row

    def dags(self) -> list[dict[str, Any]]:
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
        self, con: sqlite3.Connection, dag_id: str, graph: dict[str, Any], source: str
    ) -> dict[str, Any]:
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
                    ti["try_number"],
                )
        nodes = []
        for raw in graph.get("nodes", []):
            if not isinstance(raw, dict) or "task_id" not in raw:
                continue
            node = dict(raw)
            node.setdefault("label", node["task_id"])
            node.setdefault("operator", None)
            node.setdefault("task_group", None)
            node.setdefault("is_mapped", False)
            tis = states.get(node["task_id"], {})
            mapped = {i: st for i, st in tis.items() if i >= 0}
            if mapped or node["is_mapped"]:
                node["map_states"] = {str(i): mapped[i][0] for i in sorted(mapped)}
                node["state"] = (
                    aggregate_state(st for st, _ in mapped.values())
                    if mapped
                    else tis.get(-1, (None, 0))[0]
                )
                node["try_number"] = max((t for _, t in tis.values()), default=0)
            else:
                node["state"], node["try_number"] = tis.get(-1, (None, 0))
            nodes.append(node)
        return {
            "dag_id": dag_id,
            "description": graph.get("description"),
            "schedule": graph.get("schedule"),
            "fileloc": graph.get("fileloc"),
            "source": source,
            "updated": graph.get("updated"),
            "nodes": nodes,
            "edges": [list(e) for e in graph.get("edges", []) if isinstance(e, list | tuple)],
            "task_groups": graph.get("task_groups", []),
            "latest_run": None if run is None else _run_summary(run),
        }

    def _dag_known(self, con: sqlite3.Connection, dag_id: str) -> bool:
        if (self.session.graphs_dir / f"{dag_id}.json").is_file():
            return True
        for sql in ("SELECT 1 FROM dag WHERE dag_id = ?", "SELECT 1 FROM dag_run WHERE dag_id = ?"):
            if con.execute(sql, (dag_id,)).fetchone() is not None:
                return True
        return False

    # ---- runs and task instances -----------------------------------------------------
    def runs(self, dag_id: str, limit: int = DEFAULT_RUNS_LIMIT) -> list[dict[str, Any]]:
        """Runs of a DAG, newest first."""
        if not 1 <= limit <= MAX_RUNS_LIMIT:
            raise BadRequestError(f"limit must be between 1 and {MAX_RUNS_LIMIT}.")
        with self._db() as con:
            rows = con.execute(
                "SELECT run_id, state, run_type, logical_date, start_date, end_date, conf "
                "FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT ?",
                (dag_id, limit),
            ).fetchall()
            if not rows and not self._dag_known(con, dag_id):
                raise NotFoundError(f"Session {self.session.id} has no DAG {dag_id!r}.")
        return [{**_run_summary(r), "conf": _json_value(r["conf"])} for r in rows]

    def _require_run(self, con: sqlite3.Connection, dag_id: str, run_id: str) -> None:
        row = con.execute(
            "SELECT 1 FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"DAG {dag_id!r} has no run {run_id!r} in this session.")

    def tasks(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The task instances of one run (one row per map index)."""
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
            {
                "task_id": r["task_id"],
                "map_index": r["map_index"],
                "state": r["state"],
                "try_number": r["try_number"],
                "start_date": _ts(r["start_date"]),
                "end_date": _ts(r["end_date"]),
                "duration": r["duration"],
                "operator": r["custom_operator_name"] or r["operator"],
                "rendered_map_index": r["rendered_map_index"],
            }
            for r in rows
        ]

    # ---- logs --------------------------------------------------------------------------
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
    ) -> dict[str, Any]:
        """A byte range of one try's log.

        ``try_number`` defaults to the latest try. A negative ``offset`` counts from the end
        of the file (``-4096`` is its last 4 KiB). The reply's ``next_offset`` is where the
        next request should start to follow the log; ``complete`` is true once the try has
        ended and everything was read. Text is decoded as UTF-8 with replacement characters;
        a range never ends inside a character while the log can still grow.
        """
        if map_index < -1:
            raise BadRequestError("map_index must be -1 (not mapped) or a map index >= 0.")
        if try_number is not None and try_number < 1:
            raise BadRequestError("try must be 1 or more.")
        if not 1 <= limit <= MAX_LOG_LIMIT:
            raise BadRequestError(f"limit must be between 1 and {MAX_LOG_LIMIT} bytes.")
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
        reply: dict[str, Any] = {
            "try_number": chosen,
            "tries": sorted(tries),
            "state": state,
            "map_index": map_index,
        }
        if chosen == 0:
            return {
                **reply,
                "text": "",
                "offset": 0,
                "next_offset": 0,
                "size": 0,
                "complete": False,
            }
        parts = log_path_parts(dag_id, run_id, task_id, map_index, chosen)
        chunk, start, size = self._read_range(parts, offset, limit)
        keep = len(chunk)
        if start + keep < size or not ended:
            keep = _utf8_complete_len(chunk)
            if keep == 0 and start + len(chunk) < size:
                keep = len(chunk)  # a limit shorter than one character: still make progress
        next_offset = start + keep
        return {
            **reply,
            "text": chunk[:keep].decode("utf-8", errors="replace"),
            "offset": start,
            "next_offset": next_offset,
            "size": size,
            "complete": ended and next_offset >= size,
        }

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

    def _read_range(self, parts: list[str], offset: int, limit: int) -> tuple[bytes, int, int]:
        """``(bytes, start, size)`` of a log file; empty when the try has not logged yet."""
        dir_fd = self._open_dir(parts[:-1])
        if dir_fd is None:
            return b"", 0, 0
        try:
            try:
                fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
            except FileNotFoundError:
                return b"", 0, 0
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise _refuse_link(parts[-1]) from e
                raise
        finally:
            os.close(dir_fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _refuse_link(parts[-1])
            size = st.st_size
            start = max(0, size + offset) if offset < 0 else min(offset, size)
            chunk = os.pread(fd, min(limit, size - start), start) if size > start else b""
        finally:
            os.close(fd)
        return chunk, start, size


def _run_summary(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "run_id": row["run_id"],
        "state": row["state"],
        "run_type": row["run_type"],
        "logical_date": _ts(row["logical_date"]),
        "start_date": _ts(row["start_date"]),
        "end_date": _ts(row["end_date"]),
    }


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
