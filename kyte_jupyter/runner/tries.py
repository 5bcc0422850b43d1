"""Try executors: how one try of a task instance runs, behind one small interface.

* :class:`InProcessTries` — in the kernel's own process, as ``DAG.test()`` runs tasks: the
  task sees the notebook's objects and ``%debug`` reaches its frames.
* :class:`ForkedTries` — in a forked copy of the kernel (``--isolated``): a task that
  crashes its process (a segfault, ``SIGKILL``) fails instead of taking the kernel down.

The plan (``runner.plan``) queues a try (``prepare``); an executor runs it to a final state
the metastore records, deferral to a trigger included. An executor-based kind (Airflow's
executors) can be added behind the same interface.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .. import bridge
from ..bridge import runs
from .failure import fold
from .logs import capture, end_forked_try, route_to

#: Called with a state while a try changes state without finishing (``deferred``).
OnState = Callable[[str], None]


@dataclass
class TryOutcome:
    """How one try ended: the state the metastore records, time taken, the task's error."""

    state: str
    duration: float
    error: BaseException | None = None


class TryExecutor(Protocol):
    """Runs one queued try of a task instance to a final state."""

    def run(self, ti: Any, task: Any, log: Path, echo: bool, on_state: OnState) -> TryOutcome:
        """Run the try; its output goes to ``log`` (and the cell when ``echo``)."""
        ...


class InProcessTries:
    """Tries in the kernel's own process, through the Task SDK's in-process supervisor."""

    def __init__(self, airflow: bridge.Bridge) -> None:
        self.airflow = airflow

    def run(self, ti: Any, task: Any, log: Path, echo: bool, on_state: OnState) -> TryOutcome:
        """Run the try (and, after a deferral, its trigger and the resumed task)."""
        t0 = time.perf_counter()
        while True:
            with capture(log, echo) as log_file:
                try:
                    result = self.airflow.run_try(ti, task)
                except Exception as e:  # Kyte or Airflow failed around the task
                    log_file.write(f"Kyte could not run this task: {e!r}\n")
                    runs.set_state(ti, "failed")
                    return TryOutcome("failed", time.perf_counter() - t0, e)
            if result.state == "deferred" and result.deferral is not None:
                on_state("deferred")
                try:
                    with capture(log, echo):
                        self.airflow.wait_for_trigger(ti, result.deferral)
                except bridge.TriggerInterrupted as e:
                    runs.set_state(ti, "failed")
                    return TryOutcome("failed", time.perf_counter() - t0, e)
                on_state("running")
                continue
            return TryOutcome(result.state, time.perf_counter() - t0, result.error)


class ForkedTries:
    """Tries in a forked copy of the kernel (``--isolated``).

    The child inherits the notebook's namespace and DAG objects, so the task is the same
    object as in-process. It opens its own metastore connections and its own in-process
    execution API (threads do not survive ``fork``), streams its output to the kernel over
    a pipe and leaves with ``os._exit``, so it never touches the kernel's sockets. If it
    dies from a signal, the kernel marks the try failed and says why.
    """

    def __init__(self, airflow: bridge.Bridge) -> None:
        self.airflow = airflow

    def run(self, ti: Any, task: Any, log: Path, echo: bool, on_state: OnState) -> TryOutcome:
        """Run the try in a child process; the metastore tells how it ended."""
        t0 = time.perf_counter()
        log.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the task process
            self._child(ti, task, log, read_fd, write_fd)
        os.close(write_fd)
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as pipe:
            for line in pipe:
                if echo:
                    sys.stdout.write(line)
        _, status = os.waitpid(pid, 0)
        state = runs.refresh_state(ti)
        if os.WIFSIGNALED(status) or state in ("queued", "running", "none"):
            if os.WIFSIGNALED(status):
                sig = signal.Signals(os.WTERMSIG(status)).name
                why = f"the task's process was killed by {sig}"
            else:
                why = f"the task's process exited with code {os.WEXITSTATUS(status)}"
            message = f"Kyte: {why} before the task finished; the try is marked failed.\n"
            with log.open("a", encoding="utf-8") as log_file:
                log_file.write(message)
            sys.stderr.write(message)
            runs.set_state(ti, "failed")
            state = "failed"
        return TryOutcome(state, time.perf_counter() - t0, None)

    def _child(self, ti: Any, task: Any, log: Path, read_fd: int, write_fd: int) -> None:
        code = 1
        try:
            os.close(read_fd)
            pipe = os.fdopen(write_fd, "w", buffering=1, encoding="utf-8", errors="replace")
            log_file = log.open("a", encoding="utf-8", buffering=1)
            route_to(log_file, pipe)
            self.airflow.after_fork()
            while True:
                result = self.airflow.run_try(ti, task)
                if result.state == "deferred" and result.deferral is not None:
                    self.airflow.wait_for_trigger(ti, result.deferral)
                    continue
                break
            end_forked_try()
            if result.error is not None:
                # The cell's copy (held back from the streamed lines): the task's own frames.
                error = result.error
                lines = traceback.format_exception(type(error), error, fold(error.__traceback__))
                pipe.write(bridge.redact("".join(lines)))
            pipe.flush()
            code = 0
        except BaseException:
            with contextlib.suppress(Exception):
                text = bridge.redact(traceback.format_exc())
                log_file.write(text)
                pipe.write(text)
                pipe.flush()
        finally:
            os._exit(code)  # the real one: capture() is not active in the child


def mark_success(ti: Any, log: Path) -> TryOutcome:
    """End a task instance success without a try (``--succeed``), as
    ``dag.test(mark_success_pattern=…)`` does; its log says so."""
    from ..whatif.force import FORCED_LOG_PREFIX

    t0 = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as log_file:
        log_file.write(f"{FORCED_LOG_PREFIX}marked success without running (--succeed).\n")
    runs.set_state(ti, "success")
    return TryOutcome("success", time.perf_counter() - t0)
