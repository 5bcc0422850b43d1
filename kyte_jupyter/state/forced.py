"""Which task instances of a run had their outcome forced by a what-if option, read from the
session's audit trail (``kyte/audit.jsonl``) without Airflow.

The runner appends one ``task.run`` entry per try it starts (``dag_id``, ``run_id``,
``task_id`` = the task instance's key, ``task`` or ``task[i]``), with ``forced`` describing
the forced outcome (``"fail"``, ``"branch -> a"`` …) when a what-if option forced it. The
latest entry of a task instance wins: a later try run for real clears the mark.

The audit trail only grows, so it is read incrementally: each call reads only the lines
appended since the last one (a file that shrank or was replaced is read again from the start).
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from pathlib import Path

#: Audit trails whose index is kept (one per session a client looks at).
MAX_TRAILS = 64

#: key -> forced outcome, per (dag_id, run_id).
RunForced = dict[str, str]


class _Trail:
    """What was read of one audit trail so far."""

    def __init__(self, inode: int) -> None:
        self.inode = inode
        self.offset = 0
        self.runs: dict[tuple[str, str], RunForced] = {}

    def feed(self, data: bytes) -> int:
        """Index the whole lines of ``data``; returns how many bytes were consumed."""
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            if b'"task.run"' not in line:
                continue  # cheap filter: most entries are other actions
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn line from a killed writer
            if not isinstance(entry, dict) or entry.get("action") != "task.run":
                continue
            dag_id, run_id, key = entry.get("dag_id"), entry.get("run_id"), entry.get("task_id")
            if not (isinstance(dag_id, str) and isinstance(run_id, str) and isinstance(key, str)):
                continue
            forced = entry.get("forced")
            marks = self.runs.setdefault((dag_id, run_id), {})
            if isinstance(forced, str) and forced:
                marks[key] = forced
            else:
                marks.pop(key, None)  # the latest try of this instance ran for real
        return end


_trails: OrderedDict[str, _Trail] = OrderedDict()
_lock = threading.Lock()


def forced_outcomes(audit_path: Path, dag_id: str, run_ids: list[str]) -> dict[str, RunForced]:
    """``{run_id: {task instance key: forced outcome}}`` for the given runs of ``dag_id``.

    Runs with nothing forced map to ``{}``. A missing or unreadable audit trail forces nothing.
    """
    path = os.fspath(audit_path)
    with _lock:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            _trails.pop(path, None)
            return {run_id: {} for run_id in run_ids}
        try:
            st = os.fstat(fd)
            trail = _trails.get(path)
            if trail is None or trail.inode != st.st_ino or st.st_size < trail.offset:
                trail = _Trail(st.st_ino)
            _trails[path] = trail
            _trails.move_to_end(path)
            while len(_trails) > MAX_TRAILS:
                _trails.popitem(last=False)
            if st.st_size > trail.offset:
                data = os.pread(fd, st.st_size - trail.offset, trail.offset)
                trail.offset += trail.feed(data)
        finally:
            os.close(fd)
        return {run_id: dict(trail.runs.get((dag_id, run_id), {})) for run_id in run_ids}


def task_forced(forced: RunForced, task_id: str) -> str | None:
    """How a task was forced in a run: its outcome, or for a mapped task its forced instances
    (``"[0] fail, [2] skip"``); ``None`` when nothing of it was forced."""
    if task_id in forced:
        return forced[task_id]
    prefix = task_id + "["
    mapped = sorted(
        ((int(k[len(prefix) : -1]), v) for k, v in forced.items()
         if k.startswith(prefix) and k.endswith("]") and k[len(prefix) : -1].isdigit()),
    )  # fmt: skip
    if not mapped:
        return None
    return ", ".join(f"[{i}] {v}" for i, v in mapped)


def instance_key(task_id: str, map_index: int) -> str:
    """A task instance's key in the audit trail: ``task`` or ``task[i]``."""
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"
