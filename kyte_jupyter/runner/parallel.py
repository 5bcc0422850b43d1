"""Parallel runs: a run's task instances handed to one of Airflow's executors.

The serial path (``runner.run``) runs each try in the kernel, one at a time. With
``--parallelism N`` (or ``--executor NAME``) the same plan decides what is *ready* (Airflow's
dependency rules: trigger rules, branching, mapping, setup/teardown, retries), and Airflow's
scheduler code decides what is *queued* (pools, ``max_active_tasks``, priority weights,
executor slots; see ``bridge.executors``). The executor's workers run the tries through
``supervise()`` against the execution API the session serves on 127.0.0.1, parsing the DAG
from the exported DAG file in the session's ``dags-folder`` bundle: a DAG whose cells use
notebook-only names cannot run this way, and the export's refusal says so.

What the run leaves behind is the same as a serial run's: task states, tries and XComs in the
session's metastore, one log file per try in the session's log folder, and a run summary. A
worker's log file holds Airflow's JSON records, as its supervisor writes them while the try
runs (so the sidebar can follow it); ``%task_log`` and the server render them as text.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..bridge import redact, runs
from ..session import Session
from .logs import error_line, log_path
from .plan import RunError, RunPlan, interrupts_held
from .summary import RunSummary, WorkerTaskError, ti_key

if TYPE_CHECKING:
    from airflow.sdk import DAG

#: Folder, inside the session's ``dags-folder`` bundle, of the DAG files parallel runs use.
BUNDLE_SUBDIR = "kyte_parallel"
BUNDLE_NAME = "dags-folder"
# States of a try that holds (or is about to hold) a worker.
ACTIVE = ("scheduled", "queued", "running", "restarting")
WAITING = ("up_for_retry", "up_for_reschedule")

Progress = Callable[[dict[str, str]], None]


@dataclass
class ParallelOptions:
    """How a run is handed to an executor."""

    parallelism: int
    executor: str | None = None


def dag_file_source(session: Session, dag: DAG, notebook_cells: dict[str, str] | None,
                    ran_sources: list[str],
                    ran: list[tuple[str, str, str]] | None = None) -> str:
    """The exported DAG file of ``dag`` (what ``jupyter kyte export`` would write).

    From the notebook file when it exists (its ``kyte-include`` cells included); else (the
    kernel does not know its notebook: nbclient, a console) from the notebook's cells as the
    front end last sent them, or from ``ran_sources``, the ``%%dag`` cells (magic line and
    body) that defined the DAG in this kernel. Raises :class:`RunError` with the export's
    refusal, or when a cell in ``ran`` (``(cell id, body, label)`` of the cells that defined
    the DAG in this kernel) reads otherwise in the saved notebook: the workers would run other
    code than the kernel has.
    """
    import nbformat

    from ..export import ExportError, build_dag_files, read_notebook

    path = Path(session.notebook_path)
    try:
        if path.suffix == ".ipynb" and path.is_file():
            nb = read_notebook(path)
            _refuse_unsaved(nb, dag.dag_id, ran or [])
        else:
            sources = list((notebook_cells or {}).values()) or ran_sources
            nb = nbformat.v4.new_notebook(
                cells=[nbformat.v4.new_code_cell(s) for s in sources])
        files = build_dag_files(nb, path.name or "notebook.ipynb", dag_id=dag.dag_id)
    except ExportError as e:
        raise RunError(
            f"{e}\nA parallel run hands tasks to Airflow's executor, whose workers import the "
            f"exported DAG file, so DAG {dag.dag_id!r} must export cleanly. The serial "
            f"in-kernel run still works: run it without --parallelism/--executor."
        ) from None
    if not files:
        raise RunError(f"Export wrote no file for DAG {dag.dag_id!r}; run it serially.")
    return files[0].source


def _refuse_unsaved(nb: Any, dag_id: str, ran: list[tuple[str, str, str]]) -> None:
    """Raise :class:`RunError` when a cell that defined ``dag_id`` in the kernel is missing
    from the saved notebook or reads otherwise there."""
    from ..cellspec import split_magic_cell

    saved = {str(c.get("id")): c.source for c in nb.cells if c.cell_type == "code"}
    for key, body, label in ran:
        if key.startswith("src:"):
            continue  # the front end sent no cell id: nothing to compare with
        parts = split_magic_cell(saved[key]) if key in saved else None
        if parts is None or parts[2].strip() != body.strip():
            raise RunError(
                f"The saved notebook's {label} differs from what this kernel ran for DAG "
                f"{dag_id!r} (unsaved changes, or the cell was edited after it ran). A "
                "parallel run's workers import the DAG file exported from the saved "
                "notebook, so they would run other code. Save the notebook (and run the cell "
                "again if you edited it), then run again; the serial run (without "
                "--parallelism) runs the kernel's DAG as it is."
            )


def write_bundle_file(session: Session, dag_id: str, source: str) -> str:
    """Write the DAG file into the session's ``dags-folder`` bundle; its path in the bundle.

    The folder is listed in the bundle's ``.airflowignore``: a DAG processor or ``dag.test()``
    walking the folder leaves these copies of the notebook's DAGs alone.
    """
    dags = session.home / "dags"
    folder = dags / BUNDLE_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    ignore = dags / ".airflowignore"
    lines = ignore.read_text().splitlines() if ignore.is_file() else []
    if f"{BUNDLE_SUBDIR}/" not in lines:
        ignore.write_text("\n".join([*lines, f"{BUNDLE_SUBDIR}/"]) + "\n")
    target = folder / f"{dag_id}.py"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(source)
    os.replace(tmp, target)
    return f"{BUNDLE_SUBDIR}/{dag_id}.py"


def run_parallel(
    session: Session,
    plan: RunPlan,
    magic: Literal["run_task", "run_dag"],
    progress: Progress | None,
    options: ParallelOptions,
    dag_rel_path: str,
) -> RunSummary:
    """Drive ``plan`` to its end with an executor; the run's summary (states settled)."""
    from ..bridge import executors as bx

    try:
        dag, dr, db = plan.dag, plan.dr, plan.session
        summary = RunSummary(dag.dag_id, dr.run_id, "running", magic=magic,
                             executor=options.executor or "LocalExecutor")
        try:
            ex = bx.ExecutorRun(options.executor, options.parallelism, dag_rel_path=dag_rel_path,
                                bundle_name=BUNDLE_NAME)
            bx.execution_api().start()
        except bx.ExecutorError as e:
            raise RunError(str(e)) from None
        states = plan.initial_states()
        if progress:
            progress(dict(states))
        bx.set_paused(dag.dag_id, False, db)
        ex.start()
        try:
            lost = _loop(session, plan, ex, states, progress)
        except BaseException as e:
            # Interrupted (or failed): stop the workers, then end the run (stopped tries
            # failed; never left running): RunPlan.abort.
            with interrupts_held():
                ex.stop(kill=True)
                stopped = plan.abort()
            session.audit("run.interrupted", dag_id=dag.dag_id, run_id=dr.run_id,
                          task_ids=stopped)
            if isinstance(e, KeyboardInterrupt):
                import sys

                what = f"stopped {', '.join(stopped)} (their tries failed); " if stopped else ""
                print(f"Interrupted: {what}run {dr.run_id} of {dag.dag_id} marked failed.",
                      file=sys.stderr)
            raise
        finally:
            if ex.started:
                ex.stop()
            bx.set_paused(dag.dag_id, True, db)
        # The last round may have settled while workers still ran: let update_state decide now.
        plan.frontier.settled = False
        summary.task_states = plan.settle()
        summary.run_state = runs.run_state(dr)
        _fill_tries(session, plan, summary, lost, ex.heartbeat_timeout)
        if progress:
            progress(dict(summary.task_states))
        for key, state in summary.task_states.items():
            session.audit("task.run", dag_id=dag.dag_id, task_id=key, run_id=dr.run_id,
                          try_number=summary.tries.get(key), outcome=state,
                          executor=options.executor or "LocalExecutor")
        return summary
    finally:
        # Its quieting is for the cell: later runs' tries log at info again.
        bx.restore_scheduler_logs()


def _loop(session: Session, plan: RunPlan, ex: Any, states: dict[str, str],
          progress: Progress | None) -> set[str]:
    """Rounds until nothing is ready, queued or running; the task instances (keys) whose
    tries were lost (no heartbeat: their worker died).

    Airflow's dependency rules are asked again only when a change could make a task instance
    ready (:func:`_may_ready_more`), or, while a retry or reschedule waits, once a second: the
    kernel's CPU also serves the workers' execution API, so a round that changes nothing
    costs two cheap queries.
    """
    dr, db = plan.dr, plan.session
    idle = 0.0
    seen: dict[Any, Any] | None = None
    check = True  # ask the dependency rules this round
    last_check, gap = 0.0, 0.0
    quiet = False  # the last real check found nothing ready, queued or active
    events: list[Any] = []
    lost: set[str] = set()
    last_lost_check = time.monotonic()
    while True:
        versions = runs.ti_versions(dr, db)
        # A running try's heartbeat changes its row too, but must not cost an evaluation.
        stated = {key: v[0] for key, v in versions.items()}
        waiting = any(v in WAITING for v in stated.values())
        now = time.monotonic()
        check = check or _may_ready_more(seen, stated) or (waiting and now - last_check > 1)
        if check and now - last_check < gap:
            # Evaluating a big run holds the GIL the execution API's threads need: leave
            # them at least twice the time the last evaluation took.
            check = False
        else:
            seen = stated
        ready: list[Any] = list(plan.forced_ready())
        changed = False
        if check:
            last_check = time.monotonic()
            if runs.run_state(dr) == "running":
                ready += [ti for ti in plan.frontier.ready() if plan.in_selection(ti)]
                changed = plan.frontier.changed
            gap = 2 * (time.monotonic() - last_check)
        checked, check = check, False
        if ready:
            for ti in ready:
                runs.bind_task(dr, ti)
            ex.schedule(dr, ready, db)
        # Dependency checks may have written (upstream_failed, skipped): never sit on SQLite's
        # write lock while the workers' execution API needs it.
        db.commit()
        scheduled = any(v[0] == "scheduled" for v in versions.values())
        queued = ex.queue() if (ready or events or scheduled) else []
        events = ex.heartbeat()
        current = _states(plan) if (checked or ready or queued or events) else dict(states)
        if current != states:
            states.clear()
            states.update(current)
            if progress:
                progress(dict(states))
        active = any(v[0] in ACTIVE for v in versions.values()) or ex.busy() or bool(ready)
        if ready or queued or events:
            # What they changed in the metastore shows in the next round's states.
            idle, quiet = 0.0, False
            continue
        if not active:
            if changed or not (quiet and checked):
                # This round's dependency checks may have read states from before the last
                # try finished: check once more before deciding the run is over.
                quiet, check = True, True
                time.sleep(min(gap, 0.2))
                continue
            still_waiting = [k for k, s in current.items() if s in WAITING]
            deferred = [k for k, s in current.items() if s == "deferred"]
            if deferred and not still_waiting:
                raise RunError(
                    f"{', '.join(deferred)} deferred to a trigger; parallel runs start no "
                    "triggerer. Run this DAG serially (without --parallelism), which runs "
                    "triggers in the kernel."
                )
            if not still_waiting and not plan.pending_force():
                return lost
            check = True
        else:
            quiet = False
            if now - last_lost_check > 1.0:
                last_lost_check = now
                found = ex.fail_lost_tries(dr, db)
                if found:  # Airflow's failure handling runs at the next heartbeat
                    lost.update(ti_key(task_id, index) for task_id, index in found)
                    idle, check = 0.0, True
                    continue
        # Nothing changed: wait a little (workers are running, or a retry delay).
        idle = min(0.2, idle + 0.02)
        time.sleep(idle)


def _may_ready_more(seen: dict[Any, str] | None, now: dict[Any, str]) -> bool:
    """Whether the change from ``seen`` to ``now`` (task instance -> state) could make a task
    instance ready: a task instance appeared or went (mapping, removal), or one entered a
    state other than ``scheduled``, ``queued``, ``running`` or ``restarting``.

    Airflow's trigger rules read only upstream task instances' finished states, so a try
    being scheduled, queued or started readies nothing; a finished, skipped, upstream-failed
    or retry-waiting one may.
    """
    if seen is None or seen.keys() != now.keys():
        return True
    return any(state != seen[key] and state not in ACTIVE for key, state in now.items())


def _states(plan: RunPlan) -> dict[str, str]:
    sel = plan.selection
    return {ti_key(ti.task_id, ti.map_index): runs.state_name(ti.state)
            for ti in plan.frontier.task_instances() if sel.shows(ti.task_id, ti.map_index)
            and (sel.task_ids is None or ti.task_id in sel.task_ids)}


def _fill_tries(session: Session, plan: RunPlan, summary: RunSummary,
                lost: set[str], heartbeat_timeout: float) -> None:
    """Tries, durations and errors of the summary, from the task instances and their logs
    (the workers ran them); a try in ``lost`` went ``heartbeat_timeout`` seconds without
    a heartbeat."""
    for ti in plan.frontier.task_instances():
        key = ti_key(ti.task_id, ti.map_index)
        if key not in summary.task_states:
            continue
        if not ti.try_number:
            continue  # never ran (upstream_failed, skipped): no try, no duration
        summary.tries[key] = int(ti.try_number)
        summary.durations[key] = float(ti.duration or 0.0)
        if summary.task_states[key] == "failed":
            path = log_path(session, ti.dag_id, ti.run_id, ti.task_id, ti.map_index,
                            int(ti.try_number or 1))
            line = error_line(path)
            if key in lost:
                line = (f"its worker stopped: no heartbeat for {heartbeat_timeout:g} s, so "
                        "Airflow's failure handling ended the try")
            summary.error_lines[key] = redact(line) if line else "the try failed: see its log"
            summary.errors[key] = WorkerTaskError(key, summary.executor or "LocalExecutor",
                                                  summary.error_lines[key], ti.dag_id)
