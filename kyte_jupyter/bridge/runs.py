"""Runs and task instances in the metastore, and Airflow's answers about them.

Why internal: running DAGs against a metastore without a scheduler has no public API beyond
``DAG.test()``, which only runs DAGs it finds in a bundle and always starts a new run. Kyte
needs the pieces ``DAG.test()`` is built from (runs, task instances, dependency evaluation,
mapped-task expansion, XCom reads): they are translated here, each with the reason, and the
run's policy (what to run when) lives in ``kyte_jupyter.runner.plan``. Plain strings cross
this boundary for states ("success", "none" …), never Airflow's enums.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

FINISHED = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
# Airflow's SCHEDULEABLE_STATES: the states a task instance may be started from.
SCHEDULABLE = frozenset({"none", "up_for_retry", "up_for_reschedule"})


class MapNotReady(Exception):
    """A mapped task cannot be expanded: the upstream values it maps over do not exist."""

    def __init__(self, task_id: str, missing: list[str]) -> None:
        super().__init__(task_id, missing)
        self.task_id, self.missing = task_id, missing


@contextmanager
def db_session() -> Iterator[Any]:
    """A metastore session that commits on success (Airflow's ``create_session``)."""
    from airflow.utils.session import create_session

    with create_session() as session:
        yield session


def state_name(state: Any) -> str:
    """An Airflow state (either enum, or None) as its plain string: "success", "none"…"""
    if state is None:
        return "none"
    return str(getattr(state, "value", state))


# ---- runs -----------------------------------------------------------------------------------
SET_ASIDE_NOTE = "Kyte: set aside"
"""Start of the DagRun note on a run Kyte set aside: a what-if run that was refused or aborted
part-way. It stays in the metastore (its tries, logs and XComs kept, the note shown in
Airflow's UI), but it is never the notebook's current run (:func:`latest_run`)."""


def latest_run(dag_id: str, session: Any) -> DagRun | None:
    """The notebook's current run of a DAG: its newest run that was not set aside."""
    from airflow.models.dagrun import DagRun, DagRunNote
    from sqlalchemy import or_, select

    run: DagRun | None = session.scalar(
        select(DagRun)
        .outerjoin(DagRunNote, DagRunNote.dag_run_id == DagRun.id)
        .where(DagRun.dag_id == dag_id, or_(
            DagRunNote.content.is_(None), ~DagRunNote.content.startswith(SET_ASIDE_NOTE)))
        .order_by(DagRun.id.desc()).limit(1)
    )
    return run


def set_aside(dag_id: str, run_id: str, why: str) -> bool:
    """Keep a run out of the notebook's current run; ``False`` if the run does not exist.

    A DagRun note says why: the one field of a run meant for people (Airflow's UI shows it).
    Its own session, committed: call it after the run's own session has ended.
    """
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    with db_session() as session:
        dr = session.scalar(
            select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if dr is None:
            return False
        dr.note = f"{SET_ASIDE_NOTE}: {why}"[:1000]
    return True


def run_for_date(dag_id: str, logical_date: _dt.datetime, session: Any) -> DagRun | None:
    """The run of a DAG with this logical date, if there is one."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    run: DagRun | None = session.scalar(
        select(DagRun).where(DagRun.dag_id == dag_id, DagRun.logical_date == logical_date)
    )
    return run


def get_run(dag_id: str, run_id: str, session: Any) -> DagRun | None:
    """One run by id."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    run: DagRun | None = session.scalar(
        select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    )
    return run


def create_run(
    sdag: Any,
    *,
    logical_date: _dt.datetime | None,
    conf: dict[str, Any] | None,
    session: Any,
) -> DagRun:
    """A new manual run, exactly as ``DAG.test()`` creates one."""
    from airflow.models.dagrun import DagRun, get_or_create_dagrun
    from airflow.sdk import timezone
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    run_after = timezone.utcnow()
    logical = timezone.coerce_datetime(logical_date) if logical_date else run_after
    data_interval = coerce_to_core_timetable(sdag.timetable).infer_manual_data_interval(
        run_after=logical
    )
    return get_or_create_dagrun(
        dag=sdag,
        start_date=logical,
        logical_date=logical,
        data_interval=data_interval,
        run_after=run_after,
        run_id=DagRun.generate_run_id(
            run_type=DagRunType.MANUAL, logical_date=logical, run_after=run_after
        ),
        session=session,
        conf=conf,
        triggered_by=DagRunTriggeredByType.TEST,
        triggering_user_name="kyte",
    )


def bind_deadline_ids(dr: DagRun, session: Any) -> None:
    """Give the run's scheduler DAG its deadline alerts as the metastore's row ids.

    Why: a scheduler DAG read from the metastore lists its ``deadline`` alerts as the ids of
    their ``deadline_alert`` rows (``DagRun.update_state`` looks them up when the run
    succeeds); one deserialized from the notebook's DAG, as Kyte builds it, holds the
    encoded alerts instead, which that lookup cannot use.
    """
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    from airflow.models.serialized_dag import SerializedDagModel
    from sqlalchemy import select

    sdag = dr.dag
    if sdag is None or not sdag.deadline or all(isinstance(d, str) for d in sdag.deadline):
        return
    serialized = select(SerializedDagModel.id).where(
        SerializedDagModel.dag_version_id == dr.created_dag_version_id).scalar_subquery()
    ids = session.scalars(select(DeadlineAlertModel.id).where(
        DeadlineAlertModel.serialized_dag_id == serialized)).all()
    sdag.deadline = [str(i) for i in ids]


def latest_version_id(dag_id: str, session: Any) -> Any:
    """The id of a DAG's newest version (None before it is written)."""
    from airflow.models.dag_version import DagVersion

    version = DagVersion.get_latest_version(dag_id, session=session)
    return None if version is None else version.id


def verify_integrity(dr: DagRun, version_id: Any, session: Any) -> None:
    """Point a run at a DAG version, adding the task instances it lacks (loads them all)."""
    dr.verify_integrity(session=session, dag_version_id=version_id)
    session.flush()


def set_run_state(dr: DagRun, state: str) -> None:
    """Set a run's state (committed with the session's next commit)."""
    dr.state = state


def run_state(dr: DagRun) -> str:
    """A run's state as a plain string."""
    return state_name(dr.state)


def update_run_state(dr: DagRun, session: Any) -> list[TaskInstance]:
    """Airflow's ``DagRun.update_state``: sets the run's state; returns what may start now."""
    ready, _ = dr.update_state(session=session)
    return list(ready)


#: Task instance states Airflow's "mark run failed" treats as mid-try (fails them); every
#: other unfinished state is one that never started a try (skips them).
MID_TRY_STATES = ("running", "deferred", "up_for_reschedule", "awaiting_input")


def mark_run_failed(dr: DagRun, session: Any) -> list[str]:
    """End ``dr`` as Airflow's "mark run failed" does (``set_dag_run_state_to_failed``, the
    UI's and REST API's action), committed: task instances mid-try (:data:`MID_TRY_STATES`)
    fail, unfinished ones that never started a try (no status, scheduled, queued, waiting to
    retry) are skipped, finished ones keep their state, and the run fails.

    Airflow leaves a running teardown to finish and the run open while a teardown is still
    to run; nothing runs after this in a notebook's session (the tries were stopped, and
    there is no scheduler), so a mid-try teardown fails too, one that never started keeps its
    state (it does not run), and the run fails anyway. Airflow fails a running task by task
    id, every map index of it, finished ones included; here each mid-try task instance fails
    on its own first, so finished map indexes keep their state.

    Returns the task instances whose tries were stopped (failed here), as ``task_id`` or
    ``task_id[map_index]``, sorted.
    Raises ``LookupError`` when the metastore has no version of the run's DAG.
    """
    from airflow.api.common.mark_tasks import set_dag_run_state_to_failed
    from airflow.models.dagbag import DBDagBag
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.sdk import timezone
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    sdag = dr.dag if dr.dag is not None else DBDagBag().get_dag_for_run(dr, session=session)
    if sdag is None:
        raise LookupError(f"no version of DAG {dr.dag_id!r} in the metastore")
    # Mid-try task instances fail one by one first: Airflow's function fails a running task
    # by task id, so every map index of it, finished ones included.
    stopped = []
    for ti in session.scalars(select(TI).where(TI.dag_id == dr.dag_id, TI.run_id == dr.run_id,
                                               TI.state.in_(MID_TRY_STATES))):
        ti.set_state("failed", session=session)
        stopped.append(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]")
    session.flush()
    set_dag_run_state_to_failed(dag=sdag, run_id=dr.run_id, commit=True, session=session)
    if dr.state != "failed":  # a teardown was still to run: Airflow left the run open
        dr.set_state(DagRunState.FAILED)
        dr.end_date = dr.end_date or timezone.utcnow()
    session.merge(dr)
    session.commit()
    return sorted(stopped)


def fail_unfinished_run(dr: DagRun, session: Any) -> list[str]:
    """Mark a run failed, and its task instances that were mid-try or waiting for one (queued,
    scheduled, running, deferred, waiting to retry or reschedule) failed (committed); the ids
    of those task instances.

    For a run only part of which was running (``%run_task`` in the notebook's current run):
    the task instances that never started keep their state, for the next ``%run_task``.
    :func:`mark_run_failed` ends a whole run as Airflow does.
    """
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.sdk import timezone
    from sqlalchemy import select, update

    now = timezone.utcnow()
    unfinished = (TI.dag_id == dr.dag_id, TI.run_id == dr.run_id,
                  TI.state.in_(["queued", "scheduled", "running", "deferred", "up_for_retry",
                                "up_for_reschedule", "restarting"]))
    stopped = sorted(set(session.scalars(select(TI.task_id).where(*unfinished))))
    session.execute(update(TI).where(*unfinished).values(state="failed", end_date=now)
                    .execution_options(synchronize_session=False))
    dr.state = "failed"
    dr.end_date = now
    session.merge(dr)
    session.commit()
    return stopped


def delete_runs(session: Any, dag_id: str | None = None) -> int:
    """Delete runs (and with them task instances and XComs) from the metastore."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import delete

    stmt = delete(DagRun)
    if dag_id:
        stmt = stmt.where(DagRun.dag_id == dag_id)
    result = session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


# ---- task instances -------------------------------------------------------------------------
def task_instances(
    dr: DagRun, session: Any, task_ids: Iterable[str] | None = None
) -> list[TaskInstance]:
    """Task instances of a run (all, or of some tasks), fresh from the database.

    ``populate_existing`` overwrites the objects this session already holds with the rows as
    they are now (the execution API changes them in its own sessions); pending changes are
    flushed first so that none is overwritten.
    """
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    session.flush()
    query = select(TaskInstance).where(
        TaskInstance.dag_id == dr.dag_id, TaskInstance.run_id == dr.run_id
    )
    if task_ids is not None:
        query = query.where(TaskInstance.task_id.in_(list(task_ids)))
    query = query.order_by(TaskInstance.task_id, TaskInstance.map_index)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def ti_versions(dr: DagRun, session: Any) -> dict[tuple[str, int], tuple[str, str]]:
    """``(task_id, map_index) -> (state, updated_at)`` of every task instance of a run.

    Cheap (no objects built, ``updated_at`` as the database stores it): tells which rows
    changed since they were last read.
    """
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import String, select, type_coerce

    session.flush()  # so that the rows show this session's own changes too
    rows = session.execute(
        select(TI.task_id, TI.map_index, TI.state, type_coerce(TI.updated_at, String)).where(
            TI.dag_id == dr.dag_id, TI.run_id == dr.run_id
        )
    ).all()
    return {(t, i): (state_name(s), str(u)) for t, i, s, u in rows}


def reload_task_instances(
    dr: DagRun, session: Any, task_ids: set[str] | None
) -> list[TaskInstance]:
    """Reload rows of a run (of some tasks, or all) into this session's objects."""
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import select

    query = select(TI).where(TI.dag_id == dr.dag_id, TI.run_id == dr.run_id)
    if task_ids is not None:
        query = query.where(TI.task_id.in_(task_ids))
    return list(session.scalars(query.execution_options(populate_existing=True)))


def bind_task(dr: DagRun, ti: TaskInstance) -> Any:
    """Give a task instance its scheduler task; None if the DAG no longer has the task."""
    from airflow.exceptions import TaskNotFound

    assert dr.dag is not None, "attach() or create_run() sets the run's DAG"
    try:
        task = dr.dag.get_task(ti.task_id)
    except TaskNotFound:
        return None  # update_state marks it removed
    ti.task = task
    return task


def ready_among(
    dr: DagRun, candidates: list[TaskInstance], finished: list[TaskInstance], session: Any
) -> list[TaskInstance]:
    """Which of ``candidates`` may start now, by Airflow's dependency rules.

    Why internal: ``DagRun._get_ready_tis`` is the evaluation ``update_state`` runs (trigger
    rules, upstream_failed and skip propagation, mapped-task expansion), with the
    ``DepContext`` it builds; asking it about a subset keeps a round linear in the DAG's size.
    """
    ready, _, _ = dr._get_ready_tis(candidates, finished, session=session)
    return list(ready)


def expand_mapped(dr: DagRun, task_id: str, session: Any) -> bool:
    """Create a mapped task's instances now that its upstream results exist.

    Returns False for a task that is not mapped (nothing to expand). Raises
    :class:`MapNotReady` when the values it maps over were never pushed in this run, where
    Airflow would mark the task upstream_failed.
    """
    from airflow.exceptions import NotMapped
    from airflow.models.expandinput import NotFullyPopulated
    from airflow.models.taskmap import TaskMap
    from airflow.serialization.definitions.mappedoperator import get_mapped_ti_count

    assert dr.dag is not None, "attach() sets the run's DAG first"
    task = dr.dag.get_task(task_id)
    # Airflow's sessions do not autoflush: its queries must see a cleared instance as such.
    session.flush()
    try:
        get_mapped_ti_count(task, dr.run_id, session=session)
    except NotMapped:
        return False
    except NotFullyPopulated as e:
        raise MapNotReady(task_id, sorted(e.missing)) from None
    try:
        TaskMap.expand_mapped_task(task, dr.run_id, session=session)
    except NotMapped:
        return False
    session.flush()
    return True


def static_map_count(task: Any, session: Any) -> int | None:
    """How many instances a mapped task has in any run, if that is known before a run.

    Known when it maps over literal values (``expand(x=[1, 2, 3])``); None when it maps over
    an upstream's XCom (known only once that ran) or is not mapped.
    """
    from airflow.exceptions import NotMapped
    from airflow.models.expandinput import NotFullyPopulated
    from airflow.serialization.definitions.mappedoperator import get_mapped_ti_count

    try:
        # A run id no run has: the count comes from the literal values, never from TaskMap.
        return int(get_mapped_ti_count(task, "kyte-static-map-count", session=session))
    except (NotMapped, NotFullyPopulated):
        return None
    except Exception:  # an expand input Airflow cannot count without a run
        return None


def prepare_try(tis: list[TaskInstance], session: Any) -> None:
    """Start a new try of task instances and queue them, as the scheduler would.

    One commit for the batch: the execution API only starts queued instances.
    """
    for ti in tis:
        if ti.state != "up_for_reschedule":
            ti.try_number += 1
        ti.state = "queued"
        ti.end_date = None
        if ti not in session:
            session.merge(ti)
    session.commit()


def clear(ti: TaskInstance) -> None:
    """Forget a task instance's state, so the dependency rules decide afresh (as a clear)."""
    ti.state = None


def set_state(ti: TaskInstance, state: str) -> None:
    """Record a task instance's final state, committed now.

    In the session that holds ``ti`` (the run's): ``TaskInstance.set_state`` without a
    session uses Airflow's thread-scoped session, which *is* the run's session in this
    thread, and closes it afterwards, detaching every task instance the run holds (a mapped
    task's then has no ``task`` in ``_get_ready_tis``). A detached ``ti`` gets a session of
    its own.
    """
    from sqlalchemy.orm import object_session

    session = object_session(ti)
    if session is None:
        with _own_session() as own:
            ti.set_state(state, session=own)
        return
    ti.set_state(state, session=session)
    session.commit()


def refresh_state(ti: TaskInstance) -> str:
    """A task instance's state as the metastore has it now (read in a session of its own)."""
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import select

    with _own_session() as session:
        state = session.scalar(select(TI.state).where(TI.id == ti.id))
    return state_name(state)


@contextmanager
def _own_session() -> Iterator[Any]:
    """A session that is not the thread's scoped one, so closing it leaves the run's alone."""
    from airflow.utils.session import create_session

    with create_session(scoped=False) as session:
        yield session


# ---- XComs ----------------------------------------------------------------------------------
def xcom_value(
    dag_id: str, run_id: str, task_id: str, key: str, map_index: int | None, session: Any
) -> tuple[bool, Any]:
    """(found, value) of an XCom in a run; all of a mapped task's values as a list."""
    from airflow.models.xcom import XComModel
    from airflow.sdk.serde import deserialize

    query = XComModel.get_many(
        run_id=run_id,
        key=key,
        task_ids=task_id,
        dag_ids=dag_id,
        map_indexes=map_index if map_index is not None else None,
    )

    def value(row: Any) -> Any:
        # Stored JSON, then Airflow's serde envelope (tuples, datetimes, dataclasses …), as
        # a downstream task's xcom_pull would see it.
        raw = XComModel.deserialize_value(row)
        try:
            return deserialize(raw)
        except Exception:
            return raw

    rows = list(session.scalars(query))
    if not rows:
        return False, None
    if map_index is None and (len(rows) > 1 or rows[0].map_index >= 0):
        rows.sort(key=lambda r: r.map_index)
        return True, [value(r) for r in rows]
    return True, value(rows[0])


def ti_states(
    dag_id: str, run_id: str, task_id: str, session: Any
) -> dict[int, str]:
    """``map_index -> state`` of one task's instances in a run."""
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import select

    rows = session.execute(
        select(TI.map_index, TI.state).where(
            TI.dag_id == dag_id, TI.run_id == run_id, TI.task_id == task_id
        )
    ).all()
    return {int(i): state_name(s) for i, s in rows}
