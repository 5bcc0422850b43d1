"""Run tasks and DAGs of the notebook against the session's metastore.

The loop follows ``DAG.test()``: the run asks Airflow's scheduler logic which task instances
may run (trigger rules, branching, skips, mapping, setup/teardown, retries), and each try
runs through the Task SDK's task runner with the in-process execution API. Kyte adds what a
notebook needs on top: a per-try log file (streamed into the cell as it is written),
task subsets (``--upstream`` / ``--downstream``), reuse of the notebook's current run, and a
summary object.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import _airflow
from .session import Session
from .whatif.force import FORCED_LOG_PREFIX

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from .whatif.force import Forcing
    from .whatif.spec import WhatIf


class RunError(Exception):
    """A run could not be set up; the message says what to do."""


STATE_COLOURS = {
    "success": "#008000",
    "failed": "#ff0000",
    "upstream_failed": "#ffa500",
    "skipped": "#ff69b4",
    "up_for_retry": "#ffd700",
    "up_for_reschedule": "#40e0d0",
    "running": "#32cd32",
    "queued": "#808080",
    "scheduled": "#d2b48c",
    "deferred": "#9370db",
    "removed": "#d3d3d3",
    "restarting": "#ee82ee",
}


@dataclass
class RunSummary:
    """What a ``%run_task`` or ``%run_dag`` did: ``r.state``, ``r.task_states`` …"""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    duration: float = 0.0
    errors: dict[str, BaseException] = field(default_factory=dict, repr=False)
    forced: dict[str, str] = field(default_factory=dict)
    """Task instances whose outcome a what-if option forced: key -> "fail", "branch -> a"…"""

    @property
    def failed(self) -> list[str]:
        """Task instances that ended failed or upstream_failed."""
        return [k for k, v in self.task_states.items() if v in ("failed", "upstream_failed")]

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for s in self.task_states.values():
            counts[s] = counts.get(s, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return (
            f"<RunSummary {self.dag_id} run_id={self.run_id!r} state={self.state!r} "
            f"({summary}) in {self.duration:.2f}s>"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        lines = [repr(self)]
        width = max((len(k) for k in self.task_states), default=4)
        for key, state in self.task_states.items():
            extra = ""
            if key in self.tries:
                extra = f"  try {self.tries[key]}, {self.durations.get(key, 0.0):.3f}s"
            if key in self.forced:
                extra += f"  (forced: {self.forced[key]})"
            lines.append(f"  {key:<{width}}  {state}{extra}")
        p.text("\n".join(lines))

    def _repr_html_(self) -> str:
        rows = []
        for key, state in self.task_states.items():
            colour = STATE_COLOURS.get(state, "transparent")
            took = f"{self.durations[key]:.3f}s" if key in self.durations else ""
            rows.append(
                f"<tr><td><code>{escape(key)}</code></td>"
                f"<td><span style='display:inline-block;width:.8em;height:.8em;"
                f"border-radius:50%;background:{colour};margin-right:.4em'></span>"
                f"{escape(state)}{_forced_badge(self.forced.get(key))}</td>"
                f"<td>{self.tries.get(key, '')}</td><td>{took}</td></tr>"
            )
        colour = STATE_COLOURS.get(self.state, "inherit")
        return (
            f"<div class='kyte-run'><b>{escape(self.dag_id)}</b> "
            f"<code>{escape(self.run_id)}</code> — "
            f"<b style='color:{colour}'>{escape(self.state)}</b> in {self.duration:.2f}s"
            "<table><thead><tr><th>task</th><th>state</th><th>try</th><th>duration</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )


def _forced_badge(note: str | None) -> str:
    """A what-if badge next to a forced task instance's state (not a state colour)."""
    if not note:
        return ""
    return (f" <span class='kyte-forced' title='outcome forced by a what-if option' "
            f"style='border:1px dashed currentColor;border-radius:3px;padding:0 .3em;"
            f"font-size:85%'>forced: {escape(note)}</span>")


def ti_key(task_id: str, map_index: int) -> str:
    """How a task instance is named in summaries: ``task`` or ``task[i]`` when mapped."""
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def log_path(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int,
             try_number: int) -> Path:
    """A try's log file, laid out as Airflow's default ``log_filename_template``."""
    path = session.logs_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        path = path / f"map_index={map_index}"
    return path / f"attempt={try_number}.log"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_GROUP_MARKERS = ("::group::", "::endgroup::")


def _redact(text: str) -> str:
    """Mask connection passwords and sensitive variables, as Airflow masks task logs."""
    from airflow.sdk._shared.secrets_masker import redact

    return str(redact(text))


class _Capture:
    """Where task output goes right now: the active try's log file, and whether to echo.

    Loggers (structlog's print logger among them) keep a reference to the ``sys.stdout``
    they first saw, so the stream objects installed for a try must keep working after it:
    they consult this state on every write instead of holding a log file themselves.
    """

    log: IO[str] | io.TextIOBase | None = None
    echo: bool = True


class _Tee(io.TextIOBase):
    """Write to the cell (when echoing) and to the active try's log file."""

    def __init__(self, primary: Any) -> None:
        super().__init__()
        self._primary = primary

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        log = _Capture.log
        if log is None:
            self._primary.write(s)
            return len(s)
        text = _redact(s)
        log.write(_ANSI.sub("", text))
        # Airflow's log-folding markers mean something to its UI only.
        if _Capture.echo and not any(m in text for m in _GROUP_MARKERS):
            self._primary.write(text)
        return len(s)

    def flush(self) -> None:
        if _Capture.log is not None:
            # Loggers flush after every line; forwarding that to ipykernel's stream would wait
            # for its IOPub thread each time. It sends buffered output every 0.2 s anyway.
            _Capture.log.flush()
            return
        self._primary.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return int(self._primary.fileno())

    encoding = "utf-8"


class _LogHandler(logging.Handler):
    """Copy stdlib log records emitted during a try into its log file."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s - %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        log = _Capture.log
        if log is None or record.name.startswith(("airflow.api_fastapi", "sqlalchemy")):
            return
        with contextlib.suppress(Exception):
            log.write(_ANSI.sub("", _redact(self.format(record))) + "\n")


_HANDLER = _LogHandler()


@contextlib.contextmanager
def _capture(path: Path, echo: bool) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8", buffering=1) as log_file:
        out, err = sys.stdout, sys.stderr
        sys.stdout = out if isinstance(out, _Tee) else _Tee(out)
        sys.stderr = err if isinstance(err, _Tee) else _Tee(err)
        _Capture.log, _Capture.echo = log_file, echo
        root = logging.getLogger()
        root.addHandler(_HANDLER)
        real_exit = os._exit

        def _exit(code: int) -> None:
            # A task that calls os._exit would kill the kernel; fail the task instead.
            raise SystemExit(f"the task called os._exit({code}); Kyte stopped it there")

        os._exit = _exit  # type: ignore[assignment]
        try:
            yield log_file
        finally:
            os._exit = real_exit
            root.removeHandler(_HANDLER)
            _Capture.log, _Capture.echo = None, True
            sys.stdout, sys.stderr = out, err


Progress = Callable[[dict[str, str]], None]


class Runner:
    """Runs the notebook's DAGs and tasks in its session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._forcing: Forcing | None = None

    @contextlib.contextmanager
    def _whatif(self, dag: DAG, whatif: WhatIf | None, summary: RunSummary) -> Iterator[None]:
        """Install a run's forced outcomes around its loop (kyte_jupyter.whatif)."""
        if not whatif:
            yield
            return
        from .whatif.force import Forcing

        with Forcing(dag, whatif) as forcing:
            self._forcing = forcing
            try:
                yield
            finally:
                self._forcing = None
                summary.forced = {k: v for k, v in forcing.forced.items()
                                  if k in summary.task_states}

    # ---- public -------------------------------------------------------------------------
    def run_dag(
        self,
        dag: DAG,
        *,
        logical_date: _dt.datetime | None = None,
        conf: dict[str, Any] | None = None,
        echo_logs: bool = False,
        progress: Progress | None = None,
        isolated: bool = False,
        whatif: WhatIf | None = None,
    ) -> RunSummary:
        """Run every task of a new run of ``dag`` in dependency order, as ``DAG.test()``.

        ``isolated`` runs each try in a forked copy of the kernel, so a task that crashes its
        process (a segfault, ``SIGKILL``) fails instead of taking the kernel down.
        """
        start = time.perf_counter()
        sdag = _airflow.scheduler_dag(dag)
        with _airflow.db_session() as db:
            dr = _airflow.create_run(sdag, logical_date=logical_date, conf=conf, session=db)
            db.commit()
            summary = RunSummary(dag.dag_id, dr.run_id, "running")
            with self._whatif(dag, whatif, summary):
                self._loop(dag, dr, db, only=None, force=set(), summary=summary,
                           echo=echo_logs, progress=progress, isolated=isolated)
            summary.state = _airflow.state_name(dr.state)
        summary.duration = time.perf_counter() - start
        return summary

    def run_tasks(
        self,
        dag: DAG,
        task_id: str,
        *,
        upstream: bool = False,
        downstream: bool = False,
        map_index: int | None = None,
        logical_date: _dt.datetime | None = None,
        conf: dict[str, Any] | None = None,
        echo_logs: bool = True,
        progress: Progress | None = None,
        isolated: bool = False,
        whatif: WhatIf | None = None,
    ) -> RunSummary:
        """Run one task (and optionally its upstream or downstream) in the current run."""
        start = time.perf_counter()
        task = dag.get_task(task_id)
        selected = {task_id}
        if upstream:
            selected |= {t.task_id for t in task.get_flat_relatives(upstream=True)}
        if downstream:
            selected |= {t.task_id for t in task.get_flat_relatives(upstream=False)}
        sdag = _airflow.scheduler_dag(dag)
        with _airflow.db_session() as db:
            if logical_date is not None:
                dr = _airflow.run_for_date(dag.dag_id, logical_date, db)
            elif conf is None:
                dr = _airflow.latest_run(dag.dag_id, db)
            else:
                dr = None  # a new conf means a new run
            if dr is None:
                dr = _airflow.create_run(sdag, logical_date=logical_date, conf=conf, session=db)
            _airflow.attach_latest_version(dr, sdag, db)
            tis = _airflow.task_instances(dr, db, selected)
            missing = sorted(selected - {ti.task_id for ti in tis})
            if missing:
                raise RunError(
                    f"Run {dr.run_id} has no task instance for {', '.join(missing)}, and "
                    "Airflow would not add it. Start a new run with %run_dag, or pass "
                    "--logical-date for a new run."
                )
            # Re-running tasks in the current run: clear them so the scheduler logic decides
            # afresh, as `airflow tasks clear` would.
            for ti in tis:
                if map_index is None or ti.map_index == map_index or ti.task_id != task_id:
                    ti.state = None
            dr.state = "running"  # committed with the first try's queueing (prepare_try)
            summary = RunSummary(dag.dag_id, dr.run_id, "running")
            force = set() if upstream else {task_id}
            with self._whatif(dag, whatif, summary):
                self._loop(dag, dr, db, only=selected, force=force, summary=summary,
                           echo=echo_logs, progress=progress, map_index=map_index,
                           isolated=isolated, tis=tis)
            summary.state = _airflow.state_name(dr.state)
        summary.duration = time.perf_counter() - start
        return summary

    # ---- the loop -------------------------------------------------------------------------
    def _loop(
        self,
        dag: DAG,
        dr: Any,
        db: Any,
        *,
        only: set[str] | None,
        force: set[str],
        summary: RunSummary,
        echo: bool,
        progress: Progress | None,
        map_index: int | None = None,
        isolated: bool = False,
        tis: list[Any] | None = None,
    ) -> None:
        """Run schedulable task instances until nothing in ``only`` can run any more.

        ``force`` names tasks to start regardless of their upstream states, as
        ``airflow tasks test`` does for the one task asked for. ``tis`` are the task
        instances of ``only`` when the caller has just loaded them.
        """
        if tis is None:
            tis = _airflow.task_instances(dr, db, only)
        states: dict[str, str] = {}
        for ti in tis:
            states[ti_key(ti.task_id, ti.map_index)] = _airflow.state_name(ti.state)
        if progress:
            progress(dict(states))
        pending_force = set(force)
        scheduler = _airflow.ReadyTasks(dr, db)
        while True:
            ready: list[Any] = []
            if pending_force:
                expanded = False
                for tid in sorted(pending_force):
                    expanded |= _airflow.expand_mapped(dr, tid, db)
                if expanded:  # else `tis` (of `only`, which holds `force`) is current
                    tis = _airflow.task_instances(dr, db, pending_force)
                ready = [ti for ti in tis if ti.task_id in pending_force
                         and (map_index is None or ti.map_index == map_index)
                         and ti.state not in ("removed",)]
                pending_force.clear()
                if not ready:
                    break
            else:
                if dr.state != "running":
                    break
                tis = scheduler.ready()
                ready = [ti for ti in tis if only is None or ti.task_id in only]
                if not ready:
                    if scheduler.changed:
                        # Airflow marked task instances upstream_failed or skipped, which
                        # can decide their downstream in turn: look again.
                        continue
                    if only is None and dr.state == "running":
                        remaining = [
                            ti for ti in scheduler.task_instances()
                            if ti.state not in _airflow.FINISHED
                        ]
                        if remaining and not any(
                            ti.state in ("deferred", "up_for_reschedule", "up_for_retry")
                            for ti in remaining
                        ):
                            break  # nothing can ever run: avoid spinning
                        if remaining:
                            time.sleep(0.2)  # waiting for a retry delay or a reschedule
                            continue
                    break
            _airflow.prepare_try(ready, db)
            for ti in ready:
                key = ti_key(ti.task_id, ti.map_index)
                states[key] = "running"
                if progress:
                    progress(dict(states))
                state, took, error = self._run_one(dag, ti, echo, isolated)
                states[key] = state
                summary.tries[key] = ti.try_number
                summary.durations[key] = took
                if error is not None and state != "success":
                    summary.errors[key] = error
                self.session.audit(
                    "task.run", dag_id=dag.dag_id, task_id=key, run_id=dr.run_id,
                    try_number=ti.try_number, outcome=state,
                    forced=self._forcing.forced.get(key) if self._forcing else None,
                )
            if progress:
                progress(dict(states))
        # Final states as the metastore has them (the scheduler may have skipped some, and
        # a mapped task's placeholder became its expanded instances).
        scheduler.settle()
        db.commit()
        states = {}
        for ti in _airflow.task_instances(dr, db, only):
            if map_index is not None and ti.task_id in force and ti.map_index != map_index:
                continue
            states[ti_key(ti.task_id, ti.map_index)] = _airflow.state_name(ti.state)
        summary.task_states = _ordered(dag, states)
        if progress:
            progress(dict(summary.task_states))

    def _run_one(
        self, dag: DAG, ti: Any, echo: bool, isolated: bool
    ) -> tuple[str, float, BaseException | None]:
        task = dag.task_dict[ti.task_id]
        path = log_path(self.session, ti.dag_id, ti.run_id, ti.task_id, ti.map_index,
                        ti.try_number)
        t0 = time.perf_counter()
        error: BaseException | None = None
        if self._forcing is not None and self._forcing.marks_success(ti.task_id, ti.map_index):
            # --succeed: no try, as dag.test(mark_success_pattern=...) marks it.
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as log_file:
                log_file.write(f"{FORCED_LOG_PREFIX}marked success without running "
                               "(--succeed).\n")
            _airflow.set_state(ti, "success")
            return "success", time.perf_counter() - t0, None
        if isolated:
            state = _run_forked(ti, task, path, echo)
            if self._forcing is not None:
                self._forcing.claim(ti.task_id, ti.map_index)  # as the forked try did
            return state, time.perf_counter() - t0, None
        while True:
            with _capture(path, echo) as log_file:
                try:
                    result = _airflow.run_try(ti, task)
                except Exception as e:  # Kyte or Airflow failed around the task
                    log_file.write(f"Kyte could not run this task: {e!r}\n")
                    _airflow.set_state(ti, "failed")
                    return "failed", time.perf_counter() - t0, e
            # The execution API has recorded the final state in the metastore already.
            state = _airflow.state_name(result.ti.state)
            error = result.error
            if state == "deferred" and _airflow.is_deferral(result):
                with _capture(path, echo):
                    _airflow.run_deferred(ti, result)
                continue
            break
        return state, time.perf_counter() - t0, error


_REAL_EXIT = os._exit


class _Fanout(io.TextIOBase):
    """In a forked task process: write to the try's log file and to the pipe to the kernel."""

    def __init__(self, *targets: IO[str]) -> None:
        super().__init__()
        self._targets = targets

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        for t in self._targets:
            t.write(s)
        return len(s)

    def flush(self) -> None:
        for t in self._targets:
            t.flush()


def _run_forked(ti: Any, task: Any, path: Path, echo: bool) -> str:
    """Run one try in a forked copy of the kernel; return the state the metastore records.

    The child inherits the notebook's namespace and DAG objects, so the task is the same
    object as in-process. It opens its own metastore connections and its own in-process
    execution API (threads do not survive ``fork``), streams its output to the kernel over
    a pipe and leaves with ``os._exit``, so it never touches the kernel's sockets. If it dies
    from a signal, the kernel marks the try failed and says why.
    """
    import signal
    import traceback

    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the task process
        code = 1
        try:
            os.close(read_fd)
            pipe = os.fdopen(write_fd, "w", buffering=1, encoding="utf-8", errors="replace")
            log_file = path.open("a", encoding="utf-8", buffering=1)
            fan = _Fanout(log_file, pipe)
            sys.stdout = sys.stderr = _Tee(pipe)
            _Capture.log, _Capture.echo = fan, False
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler):
                    handler.setStream(fan)  # the kernel's streams belong to the parent
            logging.getLogger().addHandler(_HANDLER)
            _airflow.after_fork()
            result = _airflow.run_try(ti, task)
            if result.error is not None:
                traceback.print_exception(result.error, file=sys.stdout)
            sys.stdout.flush()
            code = 0
        except BaseException:
            with contextlib.suppress(Exception):
                traceback.print_exc(file=sys.stdout)
                sys.stdout.flush()
        finally:
            _REAL_EXIT(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as pipe:
        for line in pipe:
            if echo:
                sys.stdout.write(line)
    _, status = os.waitpid(pid, 0)
    state = _airflow.refresh_state(ti)
    if os.WIFSIGNALED(status) or state in ("queued", "running", "none"):
        if os.WIFSIGNALED(status):
            sig = signal.Signals(os.WTERMSIG(status)).name
            why = f"the task's process was killed by {sig}"
        else:
            why = f"the task's process exited with code {os.WEXITSTATUS(status)}"
        message = f"Kyte: {why} before the task finished; the try is marked failed.\n"
        with path.open("a", encoding="utf-8") as log_file:
            log_file.write(message)
        sys.stderr.write(message)
        _airflow.set_state(ti, "failed")
        state = "failed"
    return state


def _ordered(dag: DAG, states: dict[str, str]) -> dict[str, str]:
    """Order task instance keys by the DAG's topological order, then map index."""
    order = {t.task_id: i for i, t in enumerate(dag.topological_sort())}

    def sort_key(k: str) -> tuple[int, int]:
        tid, _, rest = k.partition("[")
        return order.get(tid, 1 << 30), int(rest[:-1]) if rest else -1

    return {k: states[k] for k in sorted(states, key=sort_key)}
