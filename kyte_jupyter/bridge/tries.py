"""One try of a task instance, through the Task SDK's task runner (as ``DAG.test()`` runs it).

Why internal: ``run_task_in_process`` and its ``InProcessTestSupervisor`` are what
``DAG.test()`` uses; they take the Task SDK's own view of a task instance and an execution-API
client. Deferral runs the trigger in-process as ``DAG.test()`` does, but never with
``asyncio.run`` on the calling thread: a kernel already runs an event loop there.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .runs import db_session, state_name

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance


@dataclass
class TryResult:
    """What the task runner reported for one try."""

    state: str
    error: BaseException | None
    deferral: Any = None  # the DeferTask message, when the task deferred to a trigger


def sdk_ti(ti: TaskInstance) -> Any:
    """The Task SDK's view of a task instance, as the supervisor sends it to the runner."""
    from airflow.sdk.api.datamodels._generated import TaskInstance as SDKTaskInstance

    return SDKTaskInstance(
        id=UUID(str(ti.id)),
        task_id=ti.task_id,
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        try_number=ti.try_number,
        map_index=ti.map_index,
        dag_version_id=UUID(str(ti.dag_version_id)),
    )


def new_client(dag_bag: Any | None, direct: bool, dag: Any) -> Any:
    """An execution-API client for tries: the direct transport, or the stock in-process app."""
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor

    if not direct:
        return InProcessTestSupervisor._api_client(dag)
    from airflow.models.dagbag import DBDagBag

    from .execution import DirectTransport

    transport = DirectTransport(dag_bag if dag_bag is not None else DBDagBag())
    client = InProcessTestSupervisor._Client(
        base_url=None, token="", dry_run=True, transport=transport
    )
    client.base_url = "http://in-process.invalid./"
    return client


def run_try(ti: TaskInstance, task: Any, client: Any) -> TryResult:
    """Run one try through the Task SDK's in-process supervisor (as ``DAG.test()`` does)."""
    from airflow.sdk.execution_time.comms import DeferTask
    from airflow.sdk.execution_time.supervisor import run_task_in_process

    result = run_task_in_process(ti=sdk_ti(ti), task=task, client=client)
    state = state_name(result.ti.state)
    deferral = result.msg if isinstance(result.msg, DeferTask) else None
    return TryResult(state=state, error=result.error, deferral=deferral)


class TriggerInterrupted(Exception):
    """The wait for a deferred task's trigger was interrupted."""


def wait_for_trigger(
    ti: TaskInstance, deferral: Any, client: Any, *, poll: Callable[[], None] | None = None
) -> None:
    """Run a deferred task's trigger until its first event, then make the task resumable.

    The task instance stays ``deferred`` in the metastore while the trigger runs, as under a
    triggerer. The trigger runs on its own event loop in a worker thread (``DAG.test()``
    calls ``asyncio.run``, which fails where a loop already runs, as in a kernel); this
    thread waits in short steps, so a ``KeyboardInterrupt`` (the kernel's interrupt) cancels
    the trigger and raises :class:`TriggerInterrupted`. ``poll`` is called at every step.
    """
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.execution_time.supervisor import (
        InProcessSupervisorComms,
        InProcessTestSupervisor,
        set_supervisor_comms,
    )
    from airflow.sdk.serde import deserialize, serialize

    kwargs: dict[str, Any] = deserialize(deferral.trigger_kwargs)  # type: ignore[assignment]
    trigger = import_string(deferral.classpath)(**kwargs)
    the_ti = sdk_ti(ti)
    loop = asyncio.new_event_loop()
    outcome: dict[str, Any] = {}

    async def first_event() -> Any:
        events = trigger.run()
        try:
            return await anext(events, None)
        finally:
            await events.aclose()

    def work() -> None:
        try:
            outcome["event"] = loop.run_until_complete(task)
        except BaseException as e:  # reported to the waiting thread
            outcome["error"] = e

    import os

    import psutil
    import structlog

    supervisor = InProcessTestSupervisor(
        id=the_ti.id,
        pid=os.getpid(),
        process=psutil.Process(),
        process_log=structlog.get_logger(logger_name="task").bind(),
        client=client,
    )
    supervisor.comms = InProcessSupervisorComms(supervisor=supervisor)
    task = loop.create_task(first_event())
    with set_supervisor_comms(supervisor.comms):
        thread = threading.Thread(target=work, name=f"kyte-trigger-{ti.task_id}", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.1)
                if poll is not None:
                    poll()
        except KeyboardInterrupt:
            raise TriggerInterrupted(
                f"interrupted while {ti.task_id} waited for its trigger"
            ) from None
        finally:
            if thread.is_alive():
                loop.call_soon_threadsafe(task.cancel)
                thread.join(5)
            if not thread.is_alive():
                with contextlib.suppress(RuntimeError):
                    loop.close()
    if "error" in outcome:
        raise outcome["error"]
    event = outcome.get("event")
    next_kwargs = {"event": serialize(event.payload)} if event else deferral.next_kwargs
    resume(ti, deferral.next_method, next_kwargs)


def resume(ti: TaskInstance, next_method: str, next_kwargs: Any) -> None:
    """Make a deferred task instance resumable: queued, with its ``next_method`` (as
    ``DAG.test()`` does once the trigger fired). Written with an ``UPDATE`` of its own, so
    no session's stale copy of the row decides."""
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import update

    with db_session() as session:
        session.execute(
            update(TI).where(TI.id == ti.id).values(
                state="queued", next_method=next_method, next_kwargs=next_kwargs
            ).execution_options(synchronize_session=False)
        )
    ti.next_method, ti.next_kwargs = next_method, next_kwargs


def after_fork() -> None:
    """In a forked task process: drop the parent's DB connections and API loop thread.

    Why internal: the in-process execution API caches a transport whose event-loop thread
    exists only in the parent; the FastAPI app itself can be reused.
    """
    from airflow import settings
    from airflow.sdk.execution_time.supervisor import in_process_api_server

    if settings.engine is not None:
        settings.engine.dispose(close=False)
    api = in_process_api_server()
    try:
        del api.transport  # a cached property: the next use builds a loop in this process
    except AttributeError:
        in_process_api_server.cache_clear()
