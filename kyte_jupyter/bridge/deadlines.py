"""Make a run's deadline alerts miss, and run their callbacks as Airflow runs them.

Why internal: a DAG's ``DeadlineAlert`` (Airflow 3's successor of SLAs) becomes a ``Deadline``
row when its run is created; the scheduler marks a passed one missed (``Deadline.handle_miss``
queues its callback) and the triggerer (``AsyncCallback``, through ``CallbackTrigger``) or an
executor (``SyncCallback``, through the callback supervisor's ``execute_callback``) runs the
callback. Without a scheduler there is no public way to do either; ``--miss-deadline`` does
both steps here, the deadline's time set to now, the callback run in the kernel.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class MissedDeadline:
    """One deadline made to miss: its callback, how the callback ended, and its output."""

    callback: str
    state: str
    output: str | None


def miss_deadlines(dr: Any, session: Any) -> list[MissedDeadline]:
    """Miss every pending deadline of a run now; run each callback to its end (committed)."""
    from airflow.models.callback import TriggererCallback
    from airflow.models.deadline import Deadline
    from airflow.sdk import timezone
    from sqlalchemy import select

    _add_unset_deadlines(dr, session)
    deadlines = list(session.scalars(
        select(Deadline).where(Deadline.dagrun_id == dr.id, ~Deadline.missed)
    ))
    out = []
    for deadline in deadlines:
        deadline.deadline_time = timezone.utcnow()
        deadline.handle_miss(session)  # as the scheduler: marked missed, callback queued
        session.commit()
        callback = deadline.callback
        if isinstance(callback, TriggererCallback):
            _run_on_triggerer(callback, session)
        else:
            _run_on_executor(callback, dr)
        session.merge(callback)
        session.commit()
        output = None if callback.output is None else str(callback.output)
        out.append(MissedDeadline(str(callback.data.get("path")), str(callback.state), output))
    return out


def _add_unset_deadlines(dr: Any, session: Any) -> None:
    """Add the deadlines Airflow skipped when it created the run, due now.

    An alert whose reference has no value yet (``DAGRUN_QUEUED_AT`` on a run that started
    without being queued, as ``dag.test()`` starts its runs) gets no ``Deadline`` row; a
    forced miss means the deadline passed, so it gets one here, built as
    ``SerializedDAG._process_dagrun_deadline_alerts`` builds them.
    """
    from airflow.models.deadline import Deadline
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.sdk import timezone
    from airflow.serialization.decoders import decode_deadline_alert
    from airflow.serialization.definitions.deadline import DeadlineAlertFields
    from airflow.serialization.enums import DagAttributeTypes as DAT
    from airflow.serialization.enums import Encoding
    from sqlalchemy import select

    serialized = select(SerializedDagModel.id).where(
        SerializedDagModel.dag_version_id == dr.created_dag_version_id).scalar_subquery()
    alerts = session.scalars(select(DeadlineAlertModel).where(
        DeadlineAlertModel.serialized_dag_id == serialized)).all()
    have = set(session.scalars(select(Deadline.deadline_alert_id).where(
        Deadline.dagrun_id == dr.id)))
    for alert in alerts:
        if alert.id in have:
            continue
        decoded = decode_deadline_alert({
            Encoding.TYPE: DAT.DEADLINE_ALERT,
            Encoding.VAR: {
                DeadlineAlertFields.REFERENCE: alert.reference,
                DeadlineAlertFields.INTERVAL: alert.interval,
                DeadlineAlertFields.CALLBACK: alert.callback_def,
            },
        })
        session.add(Deadline(
            deadline_time=timezone.utcnow(), callback=decoded.callback, dagrun_id=dr.id,
            deadline_alert_id=alert.id, dag_id=dr.dag_id,
            bundle_name=dr.dag_model.bundle_name,
        ))
    session.flush()


def _run_on_triggerer(callback: Any, session: Any) -> None:
    """An ``AsyncCallback``: its ``CallbackTrigger`` to the end, each event handled as the
    triggerer hands it back (``TriggererCallback.handle_event``)."""
    from airflow.triggers.callback import CallbackTrigger

    trigger = CallbackTrigger(callback_path=callback.data["path"],
                              callback_kwargs=dict(callback.data.get("kwargs") or {}))
    events: list[Any] = []

    async def collect() -> None:
        async for event in trigger.run():
            events.append(event)

    def work() -> None:  # a loop of its own: the kernel's thread already runs one
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(collect())
        finally:
            loop.close()

    thread = threading.Thread(target=work, name="kyte-deadline-callback", daemon=True)
    thread.start()
    thread.join()
    for event in events:
        callback.handle_event(event, session)


def _run_on_executor(callback: Any, dr: Any) -> None:
    """A ``SyncCallback``: called as an executor's callback supervisor calls it."""
    import structlog
    from airflow.sdk.execution_time.callback_supervisor import execute_callback

    data = callback.data
    ok, error = execute_callback(
        data.get("path", ""), dict(data.get("kwargs") or {}), dag_rel_path=None,  # type: ignore[arg-type]
        bundle_path=None, log=structlog.get_logger("kyte.deadline"),
    )
    callback.state = "success" if ok else "failed"
    callback.output = error
