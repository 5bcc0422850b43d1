"""Kyte's run policy, in one place: what to run, in what order, and how a run settles.

A plan goes through five steps; only the bridge talks to Airflow, this module decides.

* **select** — which tasks a ``%run_task`` covers: the task, ``--upstream``/``--downstream``
  relatives, and the setup and teardown tasks Airflow's ``airflow tasks clear`` (its
  ``partial_subset``) adds, so re-running a work task re-runs its setups and teardowns.
* **force** — the task asked for starts whatever its upstream states are, as
  ``airflow tasks test`` runs it, once the setups selected with it have finished.
* **expand** — a forced mapped task is expanded first (Airflow's ``expand_mapped_task``):
  a zero-length map is skipped, as Airflow skips it; a map over values that were never
  pushed is an error that says to run with ``--upstream``.
* **frontier** — everything else starts when Airflow's dependency rules say it may
  (:class:`Frontier`), restricted to the selection.
* **settle** — when nothing more can start, Airflow's ``update_state`` sets the run's state,
  and the task instances' final states are read back.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..bridge import FINISHED, SCHEDULABLE, MapNotReady, runs
from .summary import ti_key

if TYPE_CHECKING:
    from airflow.sdk import DAG


class RunError(Exception):
    """A run could not be set up; the message says what to do."""


@dataclass
class Selection:
    """What a run covers: ``task_ids`` (None: the whole DAG), ``force``, ``map_index``."""

    task_ids: set[str] | None
    force: set[str]
    map_index: int | None = None

    def shows(self, task_id: str, map_index: int) -> bool:
        """Whether a task instance belongs in the run's summary."""
        if self.task_ids is not None and task_id not in self.task_ids:
            return False
        return self.map_index is None or task_id not in self.force or map_index == self.map_index


def is_mapped(task: Any) -> bool:
    """A mapped task, or a task inside a mapped task group (both have mapped instances)."""
    if getattr(task, "is_mapped", False):
        return True
    closest = getattr(task, "get_closest_mapped_task_group", None)
    return closest is not None and closest() is not None


def select(
    dag: DAG, task_id: str, *, upstream: bool, downstream: bool, map_index: int | None
) -> Selection:
    """The tasks ``%run_task`` runs, as ``airflow tasks clear`` would clear them."""
    task = dag.get_task(task_id)
    if map_index is not None and not is_mapped(task):
        raise RunError(f"Task {task_id!r} is not mapped, so --map-index does not apply.")
    selected = {task_id}
    if downstream:
        for rel in task.get_flat_relatives(upstream=False):
            selected.add(rel.task_id)
            if not rel.is_setup and not rel.is_teardown:
                selected |= {t.task_id for t in rel.get_upstreams_only_setups_and_teardowns()}
    if upstream:
        selected |= {t.task_id for t in task.get_upstreams_follow_setups()}
    elif not task.is_setup and not task.is_teardown:
        selected |= {t.task_id for t in task.get_upstreams_only_setups_and_teardowns()}
    if task.is_setup and not downstream:
        selected |= {t.task_id for t in task.downstream_list if t.is_teardown}
    return Selection(selected, set() if upstream else {task_id}, map_index)


def check_forced(dag: DAG, selection: Selection, whatif: Any, command: str) -> None:
    """Refuse forced outcomes the run could never apply, before anything runs.

    A forced task outside what ``%run_task`` runs, another mapped instance than
    ``--map-index``, or a map index past a mapped task's literal values would be silently
    ignored; each is a :class:`RunError` naming the outcome and what to do instead.
    """
    from ..whatif.spec import OPTION

    sel = selection
    if whatif and whatif.miss_deadline and sel.task_ids is not None:
        raise RunError(
            f"--miss-deadline: a deadline alert belongs to a whole run, which `{command}` does "
            "not start; nothing was run. Use it with `%run_dag`."
        )
    for f in whatif.outcomes if whatif else []:
        opt = f"{OPTION[f.kind]} {f.key}"
        if sel.task_ids is not None and f.task_id not in sel.task_ids:
            runs_now = ", ".join(sorted(sel.task_ids))
            raise RunError(
                f"{opt}: {f.task_id!r} is not part of what `{command}` runs ({runs_now}), so "
                "the outcome could not be forced; nothing was run. Add --downstream or "
                "--upstream to include it, or force it in `%run_dag`."
            )
        if (sel.map_index is not None and f.task_id in sel.force and f.map_index is not None
                and f.map_index != sel.map_index):
            raise RunError(
                f"{opt}: `{command}` runs only {f.task_id}[{sel.map_index}] (--map-index), "
                f"so the outcome could not be forced; nothing was run. Force "
                f"{f.task_id}[{sel.map_index}] or drop --map-index."
            )
        if f.map_index is not None:
            with runs.db_session() as db:
                count = runs.static_map_count(dag.get_task(f.task_id), db)
            if count is not None and f.map_index >= count:
                raise RunError(f"{opt}: {_out_of_range(f.task_id, f.map_index, count)}; "
                               "nothing was run.")


def _out_of_range(task_id: str, index: int, count: int) -> str:
    if count == 0:
        return f"{task_id!r} maps over no values, so it has no instance {task_id}[{index}]"
    return (f"{task_id!r} has {count} mapped instance{'' if count == 1 else 's'} "
            f"({task_id}[0]..{task_id}[{count - 1}]), so there is no {task_id}[{index}]")


class Frontier:
    """Which task instances of a run may start now, decided by Airflow's dependency rules.

    ``DAG.test()`` calls ``DagRun.update_state`` every round, which loads every task instance
    of the run and evaluates each unfinished one against the finished ones: quadratic in the
    DAG's size, about 0.7 s a round at 1,000 tasks. Two things make a round cheap here
    without changing what decides:

    * **Only changed rows are re-read.** The loaded task instances stay in the session; a
      round reads ``(state, updated_at)`` of the run and reloads just the rows that the
      execution API (or anything else) changed since.
    * **Only the frontier is asked.** A task instance none of whose direct upstream tasks has
      finished cannot be ready under any trigger rule except ``always``, so Airflow's own
      evaluation is asked only about the others: roots, ``always`` tasks, and tasks with a
      finished upstream (which is also where ``upstream_failed`` and skips propagate).

    When the frontier has nothing ready, the full ``update_state`` runs. It stays the arbiter
    of the run: its state (success, failure, deadlock), callbacks, removed tasks — and any
    ready task instance the frontier left out would be found there.
    """

    def __init__(self, dr: Any, session: Any) -> None:
        self.dr, self.session = dr, session
        self._tis: dict[tuple[str, int], Any] = {}
        self._seen: dict[tuple[str, int], tuple[str, str]] = {}
        self.changed = False  # the last ready() changed a state (upstream_failed, skipped …)
        self.settled = False  # the last ready() ended in a full update_state with none ready

    def task_instances(self) -> list[Any]:
        """Every task instance of the run, as the database has it now."""
        current = runs.ti_versions(self.dr, self.session)
        if any(ti not in self.session for ti in self._tis.values()):
            self._seen = {}  # something closed the run's session: read every row afresh
        stale = [key for key, seen in current.items() if self._seen.get(key) != seen]
        if stale:
            # Few: just those tasks; many: the whole run at once (and stay under SQL limits).
            ids = {task_id for task_id, _ in stale} if len(stale) < 200 else None
            for ti in runs.reload_task_instances(self.dr, self.session, ids):
                self._tis[(ti.task_id, ti.map_index)] = ti
        for gone in set(self._tis) - set(current):
            del self._tis[gone]
        self._seen = current
        return list(self._tis.values())

    def ready(self) -> list[Any]:
        """Task instances that may start now (``[]``: none can, and the run's state is set)."""
        known, finished = [], []
        for ti in self.task_instances():
            task = runs.bind_task(self.dr, ti)
            if task is None:
                continue
            known.append((ti, task))
            if runs.state_name(ti.state) in FINISHED:
                finished.append(ti)
        finished_tasks = {ti.task_id for ti in finished}
        frontier = []
        for ti, task in known:
            if runs.state_name(ti.state) not in SCHEDULABLE:
                continue
            ups = task.upstream_task_ids
            if not ups or task.trigger_rule == "always" or not finished_tasks.isdisjoint(ups):
                frontier.append(ti)
        self.settled = self.changed = False
        if frontier:
            before = [ti.state for ti in frontier]
            ready = runs.ready_among(self.dr, frontier, finished, self.session)
            self.changed = before != [ti.state for ti in frontier]
            if ready:
                return ready
        unfinished = [ti for ti, _ in known if runs.state_name(ti.state) not in FINISHED]
        before = [ti.state for ti in unfinished]
        ready = runs.update_run_state(self.dr, self.session)
        self.changed |= before != [ti.state for ti in unfinished]
        self.settled = not ready
        return ready

    def settle(self) -> None:
        """Let ``update_state`` set the run's state, unless the last round just did."""
        if not self.settled:
            self.task_instances()
            runs.update_run_state(self.dr, self.session)
            self.settled = True


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """While a run is being ended after an exception, the kernel's interrupt (SIGINT) is
    ignored: a second press of the stop button must not leave the run half-ended
    (``running``). Only in the main thread, where Python handles signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        # None: a handler not set from Python; the kernel's is Python's own.
        signal.signal(signal.SIGINT, previous if previous is not None
                      else signal.default_int_handler)


class RunPlan:
    """One run's policy: the rounds of task instances to start, then the settled states."""

    def __init__(self, dag: DAG, dr: Any, session: Any, selection: Selection) -> None:
        self.dag, self.dr, self.session, self.selection = dag, dr, session, selection
        runs.bind_deadline_ids(dr, session)
        self.frontier = Frontier(dr, session)
        self._pending_force = set(selection.force)
        self._force_now = False  # start forced tasks even though selected upstream waits
        self._tis: list[Any] = []
        self._forced_indexes: dict[str, dict[int, str]] = {}  # checked once expanded

    # ---- prepare ----------------------------------------------------------------------------
    def prepare_rerun(self) -> None:
        """Clear the selected task instances in the run, as ``airflow tasks clear`` does.

        The run is set running again (committed with the first try's queueing).
        """
        sel = self.selection
        assert sel.task_ids is not None, "a re-run names its tasks"
        tis = runs.task_instances(self.dr, self.session, sel.task_ids)
        missing = sorted(sel.task_ids - {ti.task_id for ti in tis})
        if missing:
            raise RunError(
                f"Run {self.dr.run_id} has no task instance for {', '.join(missing)}, and "
                "Airflow would not add it. Start a new run with %run_dag, or pass "
                "--logical-date for a new run."
            )
        for ti in tis:
            if sel.map_index is None or ti.map_index == sel.map_index or (
                ti.task_id not in sel.force
            ):
                runs.clear(ti)
        self._expand_forced(tis)
        runs.set_run_state(self.dr, "running")

    def _expand_forced(self, tis: list[Any]) -> None:
        """Expand forced mapped tasks now, and check ``--map-index`` against the result."""
        sel = self.selection
        expanded = False
        for task_id in sorted(sel.force):
            try:
                expanded |= runs.expand_mapped(self.dr, task_id, self.session)
            except MapNotReady as e:
                self.session.rollback()
                upstream = sorted(self.dag.get_task(task_id).upstream_task_ids) or e.missing
                raise RunError(
                    _map_not_ready(self.dag.dag_id, self.dr.run_id, task_id, upstream)
                ) from None
        if expanded:
            tis = runs.task_instances(self.dr, self.session, sel.task_ids)
        self._tis = tis
        if sel.map_index is None:
            return
        for task_id in sel.force:
            indexes = sorted(ti.map_index for ti in tis if ti.task_id == task_id
                             and runs.state_name(ti.state) != "removed" and ti.map_index >= 0)
            if sel.map_index not in indexes:
                self.session.rollback()
                raise RunError(_no_such_index(task_id, self.dr.run_id, sel.map_index, indexes))

    # ---- rounds -----------------------------------------------------------------------------
    def watch_forced(self, whatif: Any) -> None:
        """Check forced mapped instances (``task[i]``) as their task expands in this run."""
        from ..whatif.spec import OPTION

        for f in whatif.outcomes if whatif else []:
            if f.map_index is not None:
                self._forced_indexes.setdefault(f.task_id, {})[f.map_index] = (
                    f"{OPTION[f.kind]} {f.key}")

    def _check_forced_indexes(self) -> None:
        """A forced ``task[i]`` whose task expanded to fewer instances stops the run."""
        if not self._forced_indexes:
            return
        have: dict[str, set[int]] = {}
        for ti in self.frontier.task_instances():
            if ti.task_id in self._forced_indexes and ti.map_index >= 0:
                have.setdefault(ti.task_id, set()).add(ti.map_index)
        for task_id, indexes in list(self._forced_indexes.items()):
            if task_id not in have:
                continue  # not expanded (yet, or ever: upstream failed, zero-length map)
            missing = sorted(set(indexes) - have[task_id])
            del self._forced_indexes[task_id]
            if missing:
                raise RunError(
                    f"{indexes[missing[0]]}: "
                    f"{_out_of_range(task_id, missing[0], len(have[task_id]))} in run "
                    f"{self.dr.run_id} (it maps over an upstream's values). The run was "
                    "stopped before anything downstream of it ran; force an existing "
                    "instance, or the whole task."
                )

    def next_batch(self) -> list[Any]:
        """The task instances to start now; ``[]`` when nothing more can start."""
        while True:
            self._check_forced_indexes()
            forced = self._forced_ready()
            if forced:
                return forced
            if runs.run_state(self.dr) != "running":
                if self._pending_force and not self._force_now:
                    self._force_now = True
                    continue
                return []
            ready = self.frontier.ready()
            ready = [ti for ti in ready if self._in_selection(ti)]
            if ready:
                self._check_forced_indexes()  # before a just-expanded task's instances run
                return ready
            if self.frontier.changed:
                # Airflow marked task instances upstream_failed or skipped, which can decide
                # their downstream in turn: look again.
                continue
            if self.selection.task_ids is None and self._waiting():
                time.sleep(0.2)  # a retry delay or a reschedule
                continue
            if self._pending_force and not self._force_now:
                self._force_now = True  # their setups cannot run: start them anyway
                continue
            return []

    def in_selection(self, ti: Any) -> bool:
        """Whether the frontier may start ``ti`` (it is selected, and not a forced task)."""
        return self._in_selection(ti)

    def forced_ready(self) -> list[Any]:
        """Forced task instances that may start now (see :meth:`next_batch`)."""
        return self._forced_ready()

    def pending_force(self) -> bool:
        """Forced tasks wait for their selected upstream; once nothing else can start, they
        start anyway (as in :meth:`next_batch`). True while some remain."""
        if self._pending_force and not self._force_now:
            self._force_now = True
            return True
        return bool(self._pending_force)

    def _in_selection(self, ti: Any) -> bool:
        sel = self.selection
        return sel.task_ids is None or (
            ti.task_id in sel.task_ids and ti.task_id not in self._pending_force
        )

    def _forced_ready(self) -> list[Any]:
        """Forced task instances, once the selected tasks upstream of them have finished."""
        if not self._pending_force:
            return []
        sel = self.selection
        states = {(ti.task_id, ti.map_index): runs.state_name(ti.state)
                  for ti in self.frontier.task_instances()}
        blocked = set()
        for task_id in self._pending_force:
            ups = set(self.dag.get_task(task_id).upstream_task_ids) & (sel.task_ids or set())
            waiting = [s for (t, _), s in states.items() if t in ups and s not in FINISHED]
            if waiting and not self._force_now:
                blocked.add(task_id)
        start = self._pending_force - blocked
        if not start:
            return []
        self._pending_force -= start
        tis = [ti for ti in self.frontier.task_instances() if ti.task_id in start]
        batch = [ti for ti in tis
                 if (sel.map_index is None or ti.map_index == sel.map_index)
                 and runs.state_name(ti.state) in SCHEDULABLE | {"scheduled"}]
        return sorted(batch, key=lambda ti: (ti.task_id, ti.map_index))

    def _waiting(self) -> bool:
        """Unfinished task instances remain, and some wait for time (retry, reschedule)."""
        remaining = [ti for ti in self.frontier.task_instances()
                     if runs.state_name(ti.state) not in FINISHED]
        return bool(remaining) and runs.run_state(self.dr) == "running" and any(
            runs.state_name(ti.state) in ("deferred", "up_for_reschedule", "up_for_retry")
            for ti in remaining
        )

    def start(self, batch: list[Any]) -> None:
        """Begin a new try of each task instance (queued, as the scheduler would)."""
        runs.prepare_try(batch, self.session)

    # ---- settle -----------------------------------------------------------------------------
    def settle(self) -> dict[str, str]:
        """Let Airflow set the run's state; the selection's final states, in DAG order."""
        self.frontier.settle()
        self.session.commit()
        states = {}
        for ti in runs.task_instances(self.dr, self.session, self.selection.task_ids):
            if self.selection.shows(ti.task_id, ti.map_index):
                states[ti_key(ti.task_id, ti.map_index)] = runs.state_name(ti.state)
        return ordered(self.dag, states)

    def abort(self) -> list[str]:
        """End a run the loop left by an exception: it must not stay ``running``. The task ids
        whose tries were stopped (marked failed).

        A whole-DAG run ends as marking a run failed does in Airflow's UI
        (:func:`~..bridge.runs.mark_run_failed`): what was mid-try fails, what never started
        is skipped. A ``%run_task`` run (part of the notebook's current run) fails what was
        mid-try and keeps the rest for later cells (:func:`~..bridge.runs.fail_unfinished_run`).
        Anything failing here is dropped, so the exception that got here is the one the user
        sees; the run still ends failed.
        """
        with interrupts_held():  # a second interrupt must not leave it half-ended
            return self._abort()

    def _abort(self) -> list[str]:
        try:
            self.session.rollback()
            if self.selection.task_ids is None:
                return runs.mark_run_failed(self.dr, self.session)
            return runs.fail_unfinished_run(self.dr, self.session)
        except Exception:  # the original error matters more
            self.session.rollback()
            try:
                return runs.fail_unfinished_run(self.dr, self.session)
            except Exception:
                self.session.rollback()
                return []

    def initial_states(self) -> dict[str, str]:
        """The selection's states before anything runs (for the first progress display)."""
        tis: Iterable[Any] = self._tis or runs.task_instances(
            self.dr, self.session, self.selection.task_ids)
        return {ti_key(ti.task_id, ti.map_index): runs.state_name(ti.state) for ti in tis
                if self.selection.shows(ti.task_id, ti.map_index)}


def _map_not_ready(dag_id: str, run_id: str, task_id: str, upstream: list[str]) -> str:
    names = ", ".join(upstream)
    return (
        f"Task {task_id!r} is mapped over the output of {names}, which has not run in run "
        f"{run_id}. Run `%run_task {dag_id} {task_id} --upstream`, or run {names} first."
    )


def _no_such_index(task_id: str, run_id: str, index: int, indexes: list[int]) -> str:
    if not indexes:
        return (f"Task {task_id!r} has no mapped instances in run {run_id} (it mapped over an "
                f"empty input), so --map-index {index} does not exist.")
    span = f"{indexes[0]}" if len(indexes) == 1 else f"{indexes[0]}-{indexes[-1]}"
    return (f"Task {task_id!r} has {len(indexes)} mapped instance"
            f"{'' if len(indexes) == 1 else 's'} in run {run_id} (map index {span}): "
            f"--map-index {index} is out of range.")


def ordered(dag: DAG, states: dict[str, str]) -> dict[str, str]:
    """Order task instance keys by the DAG's topological order, then map index."""
    order = {t.task_id: i for i, t in enumerate(dag.topological_sort())}

    def sort_key(k: str) -> tuple[int, int]:
        tid, _, rest = k.partition("[")
        return order.get(tid, 1 << 30), int(rest[:-1]) if rest else -1

    return {k: states[k] for k in sorted(states, key=sort_key)}
