"""Apply forced outcomes to a run's tries through Airflow's own task runner.

While a :class:`Forcing` is active, the ``execute`` of every operator class that has a forced
task is replaced by a dispatcher that looks at the running task instance
(``context["ti"]``): an instance with a forced outcome ends its try the way the outcome says
(it raises ``AirflowFailException``, ``AirflowSkipException``, ``AirflowTaskTimeout`` or a
retriable error; a branch task calls its own ``do_branch`` with the forced targets; ``xcom``
returns the value); every other instance runs its real ``execute``. Everything around
``execute`` is Airflow's: the task runner's ``pre_execute``, callbacks, retries, XCom push,
and the scheduling decisions (trigger rules, setup/teardown) that follow the try's state.

``succeed`` is not done by the dispatcher: the runner marks the instance success without
starting a try, as ``dag.test(mark_success_pattern=…)`` does (:meth:`Forcing.marks_success`).

The forced ``execute`` prints one line into the try's log saying the outcome was forced.
The generated tests (:mod:`kyte_jupyter.whatif.testgen`) inline the same technique.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kyte_jupyter.whatif.spec import Forced, WhatIf

FORCED_LOG_PREFIX = "Kyte what-if: "
"""Start of the line the forced try writes into its log."""


class ForcedFailure(RuntimeError):
    """The retriable error a ``--fail-once`` try raises (retries then run the real code)."""


def _exception(f: Forced) -> BaseException | None:
    from airflow.sdk.exceptions import (
        AirflowFailException,
        AirflowSkipException,
        AirflowTaskTimeout,
    )

    msg = f"{FORCED_LOG_PREFIX}forced {f.describe()} of {f.key}"
    if f.kind == "fail":
        return AirflowFailException(msg)
    if f.kind == "skip":
        return AirflowSkipException(msg)
    if f.kind == "timeout":
        return AirflowTaskTimeout(msg)
    if f.kind == "fail_once":
        return ForcedFailure(msg + " (first try)")
    return None


def operator_class(task: Any) -> type:
    """The class whose ``execute`` runs a task's tries (a mapped task's unmapped class)."""
    cls = getattr(task, "operator_class", None)
    return cls if isinstance(cls, type) else type(task)


class Forcing:
    """Forced outcomes installed for one run of one DAG (a context manager).

    ``forced`` records each task instance whose try was forced, ``key -> description``, for
    the run summary's ``forced`` field and the audit trail.
    """

    def __init__(self, dag: Any, whatif: WhatIf) -> None:
        self.dag = dag
        self.whatif = whatif
        self.forced: dict[str, str] = {}
        self._failed_once: set[tuple[str, int]] = set()
        self._saved: list[tuple[type, Any]] = []
        self._lock = threading.Lock()

    # ---- what the runner asks -----------------------------------------------------------
    def outcome(self, task_id: str, map_index: int) -> Forced | None:
        """The outcome forced on this task instance's next try, or None to run it for real."""
        f = self.whatif.for_instance(task_id, map_index)
        if f is not None and f.kind == "fail_once" and (task_id, map_index) in self._failed_once:
            return None
        return f

    def marks_success(self, task_id: str, map_index: int) -> bool:
        """True if the runner must mark this instance success without a try (``succeed``)."""
        f = self.whatif.for_instance(task_id, map_index)
        if f is None or f.kind != "succeed":
            return False
        self.forced[_key(task_id, map_index)] = f.describe()
        return True

    def claim(self, task_id: str, map_index: int) -> Forced | None:
        """The outcome of a try that starts now, recorded as forced (None: run for real).

        The dispatcher calls it in the try; after a try in a forked process the runner calls
        it in the kernel, so ``forced`` and ``--fail-once`` bookkeeping survive the fork.
        """
        with self._lock:
            f = self.outcome(task_id, map_index)
            if f is not None:
                self.forced[_key(task_id, map_index)] = f.describe()
                if f.kind == "fail_once":
                    self._failed_once.add((task_id, map_index))
            return f

    def note(self, task_id: str, map_index: int) -> str | None:
        """How this instance was forced in this run, if it was (for the summary)."""
        return self.forced.get(_key(task_id, map_index))

    # ---- installing ---------------------------------------------------------------------
    def __enter__(self) -> Forcing:
        classes: dict[type, None] = {}
        for f in self.whatif.outcomes:
            if f.kind == "succeed" and f.map_index is None:
                continue  # the runner marks it success; no try starts
            classes[operator_class(self.dag.task_dict[f.task_id])] = None
        for cls in classes:
            self._saved.append((cls, cls.__dict__.get("execute", _MISSING)))
            type.__setattr__(cls, "execute", self._dispatcher(getattr(cls, "execute")))  # noqa: B009
        return self

    def __exit__(self, *exc: object) -> None:
        for cls, original in reversed(self._saved):
            if original is _MISSING:
                type.__delattr__(cls, "execute")
            else:
                type.__setattr__(cls, "execute", original)
        self._saved.clear()

    def _dispatcher(self, real: Callable[..., Any]) -> Callable[..., Any]:
        forcing = self

        def execute(self: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            ti = context["ti"]
            f = None
            if ti.dag_id == forcing.dag.dag_id:
                f = forcing.claim(ti.task_id, ti.map_index)
            if f is None:
                return real(self, context, *args, **kwargs)
            print(f"{FORCED_LOG_PREFIX}this try's outcome is forced: {f.describe()} "
                  f"(try {ti.try_number}); the task's own code does not run.", flush=True)
            return apply(f, self, context)

        execute.__kyte_forced__ = True  # type: ignore[attr-defined]
        return execute


def apply(f: Forced, task: Any, context: Any) -> Any:
    """End one forced try: raise the outcome's exception, branch, or return the XCom."""
    exc = _exception(f)
    if exc is not None:
        raise exc
    if f.kind == "branch":
        return task.do_branch(context, list(f.value))
    if f.kind == "xcom":
        return f.value
    if f.kind == "succeed":  # one mapped instance: its try succeeds without running
        return None
    raise AssertionError(f"unknown forced outcome {f.kind!r}")  # pragma: no cover


_MISSING = object()


def _key(task_id: str, map_index: int | None) -> str:
    return task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"


@contextmanager
def forcing(dag: Any, whatif: WhatIf) -> Iterator[Forcing]:
    """``with forcing(dag, whatif) as f:`` run the DAG; ``f.forced`` says what was forced."""
    with Forcing(dag, whatif) as f:
        yield f


def mark_success_pattern(whatif: WhatIf) -> str | None:
    """The ``dag.test(mark_success_pattern=…)`` regex for the whole-task ``succeed`` outcomes."""
    import re

    ids = sorted({f.task_id for f in whatif.outcomes
                  if f.kind == "succeed" and f.map_index is None})
    return "|".join(re.escape(t) for t in ids) or None
