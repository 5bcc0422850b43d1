"""Run tasks and DAGs of the notebook against the session's metastore.

The loop follows ``DAG.test()``: the plan (``runner.plan``) asks Airflow's dependency rules
which task instances may run (trigger rules, branching, skips, mapping, setup/teardown,
retries), and a try executor (``runner.tries``) runs each try through the Task SDK's task
runner with the in-process execution API. Kyte adds what a notebook needs on top: a per-try
log file (streamed into the cell as it is written), task subsets (``--upstream`` /
``--downstream``), reuse of the notebook's current run, and a summary object.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from .. import bridge
from ..bridge import runs
from ..session import Session
from .failure import one_line
from .logs import log_path
from .parallel import ParallelOptions, run_parallel, write_bundle_file
from .plan import RunError, RunPlan, Selection, check_forced, select
from .summary import RunSummary, outcome, ti_key
from .tries import ForkedTries, InProcessTries, TryExecutor, mark_success

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from ..whatif.force import Forcing
    from ..whatif.spec import WhatIf

#: Called with ``{task instance key: state}`` whenever a state changes.
Progress = Callable[[dict[str, str]], None]
#: The exported DAG file of a DAG (for parallel runs, whose workers import it).
DagSource = Callable[["DAG"], str]


class Runner:
    """Runs the notebook's DAGs and tasks in its session."""

    def __init__(self, session: Session, airflow: bridge.Bridge | None = None) -> None:
        self.session = session
        self.airflow = airflow or bridge.current()
        self.dag_source: DagSource | None = None

    def executor(self, isolated: bool) -> TryExecutor:
        """The try executor for a run: in-process, or forked (``isolated``)."""
        return ForkedTries(self.airflow) if isolated else InProcessTries(self.airflow)

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
        parallel: ParallelOptions | None = None,
    ) -> RunSummary:
        """Run every task of a new run of ``dag`` in dependency order, as ``DAG.test()``.

        ``isolated`` runs each try in a forked copy of the kernel, so a task that crashes its
        process (a segfault, ``SIGKILL``) fails instead of taking the kernel down.
        ``parallel`` hands the task instances to an Airflow executor instead (see
        :mod:`.parallel`).
        """
        start = time.perf_counter()
        check_forced(dag, Selection(None, set()), whatif, f"%run_dag {dag.dag_id}")
        bundle = self._bundle_file(dag, parallel, whatif)
        sdag = self.airflow.scheduler_dag(dag)
        new_run: tuple[str, str] | None = None
        try:
            with runs.db_session() as db:
                dr = runs.create_run(sdag, logical_date=logical_date, conf=conf, session=db)
                db.commit()
                new_run = (dr.dag_id, dr.run_id)
                plan = RunPlan(dag, dr, db, Selection(None, set()))
                summary = self._run_plan(plan, "run_dag", echo_logs, progress, isolated,
                                         whatif, parallel, bundle)
                summary.state = summary.run_state or "none"
        except BaseException as e:
            self._set_aside_refused(new_run, whatif, e)
            raise
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
        parallel: ParallelOptions | None = None,
    ) -> RunSummary:
        """Run one task (and optionally its upstream or downstream) in the current run.

        As ``airflow tasks clear`` would, the task's setup and teardown tasks run with it.
        ``.state`` of the summary is the outcome of the selected task instances.
        """
        start = time.perf_counter()
        selection = select(dag, task_id, upstream=upstream, downstream=downstream,
                           map_index=map_index)
        check_forced(dag, selection, whatif, f"%run_task {dag.dag_id} {task_id}"
                     + " --upstream" * upstream + " --downstream" * downstream)
        bundle = self._bundle_file(dag, parallel, whatif)
        sdag = self.airflow.scheduler_dag(dag)
        new_run: tuple[str, str] | None = None
        try:
            with runs.db_session() as db:
                if logical_date is not None:
                    dr = runs.run_for_date(dag.dag_id, logical_date, db)
                elif conf is None:
                    dr = runs.latest_run(dag.dag_id, db)
                else:
                    dr = None  # a new conf means a new run
                if dr is None:
                    dr = runs.create_run(sdag, logical_date=logical_date, conf=conf, session=db)
                    new_run = (dr.dag_id, dr.run_id)
                self.airflow.attach(dr, sdag, db)
                plan = RunPlan(dag, dr, db, selection)
                plan.prepare_rerun()
                summary = self._run_plan(plan, "run_task", echo_logs, progress, isolated,
                                         whatif, parallel, bundle)
                summary.state = outcome(list(summary.task_states.values()))
        except BaseException as e:
            self._set_aside_refused(new_run, whatif, e)
            raise
        summary.duration = time.perf_counter() - start
        return summary

    def _run_plan(self, plan: RunPlan, magic: Literal["run_task", "run_dag"],
                  echo_logs: bool, progress: Progress | None, isolated: bool,
                  whatif: WhatIf | None, parallel: ParallelOptions | None,
                  bundle: str | None) -> RunSummary:
        """Drive ``plan``: on an executor when the run is parallel (``bundle`` is its DAG
        file), else in the kernel."""
        if parallel is not None and bundle is not None:
            return run_parallel(self.session, plan, magic, progress, parallel, bundle)
        return self._execute(plan, magic, echo_logs, progress, isolated, whatif)

    def _set_aside_refused(self, new_run: tuple[str, str] | None, whatif: WhatIf | None,
                           error: BaseException) -> None:
        """A what-if run this call started and that was refused or aborted part-way (the
        ``error`` on its way out) must not become the current run the next ``%run_task``
        continues in: it is set aside (kept, with a note). A refusal's message says so."""
        if new_run is None or not whatif:
            return
        dag_id, run_id = new_run
        why = (f"what-if run ({whatif.describe()}) "
               f"{'refused' if isinstance(error, RunError) else 'aborted'}: "
               f"{one_line(error)}")
        if not runs.set_aside(dag_id, run_id, why):
            return
        self.session.audit("run.set_aside", dag_id=dag_id, run_id=run_id, outcome="failed",
                           error=one_line(error))
        if isinstance(error, RunError) and error.args:
            error.args = (f"{error.args[0]}\nRun {run_id} is kept (failed) but set aside: "
                          "`%run_task` and `%xcom` do not continue in it.",)

    def _bundle_file(self, dag: DAG, parallel: ParallelOptions | None,
                     whatif: WhatIf | None) -> str | None:
        """For a parallel run: write the DAG's exported file into the session's bundle and
        return its path there (``None`` for a serial run)."""
        if parallel is None:
            return None
        if whatif:
            raise RunError(
                "What-if options force outcomes inside the kernel's own task runner; they do "
                "not combine with --parallelism/--executor. Run the what-if serially."
            )
        if parallel.parallelism < 1:
            raise RunError("--parallelism must be 1 or more.")
        if self.dag_source is None:
            raise RunError("This runner cannot export DAGs; run serially.")
        return write_bundle_file(self.session, dag.dag_id, self.dag_source(dag))

    # ---- the loop -------------------------------------------------------------------------
    def _execute(
        self,
        plan: RunPlan,
        magic: Literal["run_task", "run_dag"],
        echo: bool,
        progress: Progress | None,
        isolated: bool,
        whatif: WhatIf | None = None,
    ) -> RunSummary:
        """Start what the plan says until it says nothing more can start; then settle.

        ``whatif`` forces task outcomes for this run (``kyte_jupyter.whatif``).
        """
        if not whatif:
            try:
                return self._loop(plan, magic, echo, progress, isolated, None)
            except BaseException:
                plan.abort()  # never leave the run `running`
                raise
        from ..whatif.force import Forcing

        plan.watch_forced(whatif)
        if whatif.miss_deadline:
            self._miss_deadlines(plan)
        with Forcing(plan.dag, whatif) as forcing:
            try:
                summary = self._loop(plan, magic, echo, progress, isolated, forcing)
            except BaseException:
                plan.abort()
                raise
        summary.forced = {k: v for k, v in forcing.forced.items() if k in summary.task_states}
        from ..whatif.hints import missing_xcom_hints

        # --succeed pushes no XCom: say so where a downstream needed one (states unchanged).
        hints = missing_xcom_hints(plan.dag, summary.task_states, summary.forced)
        for key, hint in hints.items():
            line = summary.error_lines.get(key)
            summary.error_lines[key] = f"{line} — {hint}" if line else hint
        return summary

    def _miss_deadlines(self, plan: RunPlan) -> None:
        """``--miss-deadline``: the run's deadlines pass now; their callbacks run (logged)."""
        from ..bridge.deadlines import miss_deadlines
        from ..whatif.force import FORCED_LOG_PREFIX

        for missed in miss_deadlines(plan.dr, plan.session):
            why = f": {missed.output}" if missed.output else ""
            print(f"{FORCED_LOG_PREFIX}deadline missed (forced); callback {missed.callback} "
                  f"ran: {missed.state}{why}", flush=True)
            self.session.audit("deadline.missed", dag_id=plan.dag.dag_id, run_id=plan.dr.run_id,
                               callback=missed.callback, outcome=missed.state, forced="miss")

    def _loop(
        self,
        plan: RunPlan,
        magic: Literal["run_task", "run_dag"],
        echo: bool,
        progress: Progress | None,
        isolated: bool,
        forcing: Forcing | None,
    ) -> RunSummary:
        dag, dr = plan.dag, plan.dr
        summary = RunSummary(dag.dag_id, dr.run_id, "running", magic=magic)
        executor = self.executor(isolated)
        states = plan.initial_states()
        if progress:
            progress(dict(states))
        while batch := plan.next_batch():
            plan.start(batch)
            for ti in batch:
                key = ti_key(ti.task_id, ti.map_index)
                states[key] = "running"
                if progress:
                    progress(dict(states))

                def on_state(state: str, key: str = key) -> None:
                    states[key] = state
                    if progress:
                        progress(dict(states))

                task = dag.task_dict[ti.task_id]
                path = log_path(self.session, ti.dag_id, ti.run_id, ti.task_id, ti.map_index,
                                ti.try_number)
                if forcing is not None and forcing.marks_success(ti.task_id, ti.map_index):
                    result = mark_success(ti, path)  # --succeed: no try, as dag.test()
                else:
                    result = executor.run(ti, task, path, echo, on_state)
                    if forcing is not None and isolated:
                        forcing.claim(ti.task_id, ti.map_index)  # as the forked try did
                states[key] = result.state
                summary.tries[key] = ti.try_number
                summary.durations[key] = result.duration
                if result.error is not None and result.state != "success":
                    summary.error_lines[key] = one_line(result.error)
                    # r.errors is shown too (printed, displayed): its message is masked as
                    # logs are; the traceback (frames and locals) stays for %debug.
                    result.error.args = tuple(bridge.redact_value(a) for a in result.error.args)
                    summary.errors[key] = result.error
                self.session.audit(
                    "task.run", dag_id=dag.dag_id, task_id=key, run_id=dr.run_id,
                    try_number=ti.try_number, outcome=result.state,
                    forced=forcing.forced.get(key) if forcing is not None else None,
                )
                if isinstance(result.error, KeyboardInterrupt):
                    _stop_for_interrupt(plan, key, states, result.error)
            if progress:
                progress(dict(states))
        summary.task_states = plan.settle()
        summary.run_state = runs.run_state(dr)
        if progress:
            progress(dict(summary.task_states))
        return summary


def _listed(keys: list[str]) -> str:
    """``"a, b, c"``, cut after five with ``", …"``."""
    return f"{', '.join(keys[:5])}{', …' if len(keys) > 5 else ''}"


def _some(keys: list[str]) -> str:
    """``"3 task instances (a, b, c)"``, the list cut after five."""
    return f"{len(keys)} task instance{'s' if len(keys) != 1 else ''} ({_listed(keys)})"


def _stop_for_interrupt(plan: RunPlan, key: str, states: dict[str, str],
                        interrupt: KeyboardInterrupt) -> None:
    """The kernel's interrupt reached a try (the task runner recorded it as the task's
    failure): the whole run stops. Says what was stopped, then raises the interrupt, so the
    cell ends with it; :meth:`Runner._execute` ends the run (failed, never ``running``)."""
    import sys

    waiting = [k for k, s in states.items() if k != key and s not in runs.FINISHED]
    rest = ""
    if plan.selection.task_ids is None:
        # A whole run ends as marking a run failed in Airflow does (RunPlan.abort), except
        # that a teardown not started does not run afterwards.
        teardowns = [k for k in waiting
                     if getattr(plan.dag.task_dict.get(k.split("[")[0]), "is_teardown", False)]
        waiting = [k for k in waiting if k not in teardowns]
        if waiting:
            rest = (f"; {_some(waiting)} not started: skipped, as marking a run failed in "
                    "Airflow does")
        if teardowns:
            rest += f"; teardown {_listed(teardowns)} not run (its clean-up did not happen)"
    elif waiting:
        rest = f"; {_some(waiting)} not started"
    sys.stderr.write(f"Kyte: interrupted while {key} ran: its try is marked failed and run "
                     f"{plan.dr.run_id} of {plan.dag.dag_id} is stopped (failed){rest}.\n")
    sys.stderr.flush()
    raise interrupt
