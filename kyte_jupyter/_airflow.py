"""Where Kyte reaches past ``airflow.sdk`` into Airflow's internals (with ``_execution``).

The Task SDK is the public API for *writing* DAGs; running them against a metastore without
a scheduler has no public API beyond ``DAG.test()``, which only runs DAGs it finds in a bundle
and always starts a new run. Kyte needs the pieces ``DAG.test()`` is built from, so they are
wrapped here — each with the reason — and nothing else in Kyte imports ``airflow.models``,
``airflow.dag_processing`` or ``airflow.serialization`` (``_execution`` serves the execution
API's routes to the task runner). Keep this module small; pin the
Airflow range in pyproject.toml to versions these calls were tested with.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk import DAG

BUNDLE = "dags-folder"
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}

_bundles_synced = False


@contextmanager
def db_session() -> Iterator[Any]:
    """A metastore session that commits on success (Airflow's ``create_session``)."""
    from airflow.utils.session import create_session

    with create_session() as session:
        yield session


def quiet_server_logs() -> None:
    """Keep the in-process execution API's request chatter out of cell output."""
    for name in (
        "airflow.api_fastapi",
        "airflow.models.dagrun",
        "airflow.dag_processing",
        "airflow.serialization",
        "airflow.models.dag_version",
        "sqlalchemy",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def tune_sqlite() -> None:
    """Make the session's SQLite metastore cheap to write.

    Every task try commits a handful of small transactions. In WAL mode,
    ``synchronous=NORMAL`` keeps the database consistent after a crash of the kernel (only an
    OS crash can lose the last transactions), and saves an fsync per commit.
    """
    from airflow import settings
    from sqlalchemy import event

    engine = settings.engine
    if engine is None or engine.dialect.name != "sqlite":
        return

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()


def cache_task_runner_schemas() -> None:
    """Build the task runner's pydantic ``TypeAdapter(JsonValue)`` once, not per field per try.

    The Task SDK's ``_serialize_rendered_fields`` constructs a new ``TypeAdapter(JsonValue)``
    for every template field of every try, and building one compiles a pydantic schema: about
    2 ms of a trivial try's ~20 ms. A ``TypeAdapter`` is immutable, so one per type serves
    every call the same way; only ``task_runner``'s own name is rebound, for one-argument
    calls (anything else still builds a new adapter).
    """
    import functools

    from airflow.sdk.execution_time import task_runner
    from pydantic import TypeAdapter

    if getattr(vars(task_runner)["TypeAdapter"], "kyte_cached", False):
        return

    @functools.lru_cache(maxsize=64)
    def cached(kind: Any) -> Any:
        return TypeAdapter(kind)

    def adapter(kind: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return TypeAdapter(kind, *args, **kwargs)
        try:
            return cached(kind)
        except TypeError:  # an unhashable type
            return TypeAdapter(kind)

    adapter.kyte_cached = True  # type: ignore[attr-defined]
    setattr(task_runner, "TypeAdapter", adapter)  # noqa: B010 (a module's own name)


def check_dag(dag: DAG) -> None:
    """Raise what the DAG processor would: cycles, bad params, unserializable arguments."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag.validate()
    dag.check_cycle()
    DagSerialization.serialize_dag(dag)


def sync_dags(dags: Iterable[DAG]) -> None:
    """Write DAGs to the metastore as the DAG processor would (dag, serialized_dag, version).

    Why internal: the DAGs live in the notebook, not in a bundle file, so the processor never
    sees them. ``update_dag_parsing_results_in_db`` is what it calls after parsing a file;
    it versions a DAG only when its serialized form changes.
    """
    global _bundles_synced, _client
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG

    _client = None  # its DagBag caches DAGs by version id (see _execution_client)

    with db_session() as session:
        if not _bundles_synced:
            from airflow.dag_processing.bundles.manager import DagBundlesManager

            DagBundlesManager().sync_bundles_to_db(session=session)
            session.commit()
            _bundles_synced = True
        update_dag_parsing_results_in_db(
            BUNDLE,
            None,
            [LazyDeserializedDAG.from_dag(d) for d in dags],
            {},
            None,
            set(),
            session=session,
        )


_scheduler_dags: dict[int, tuple[Any, Any]] = {}


def scheduler_dag(dag: DAG) -> Any:
    """The scheduler's view of a DAG (what ``DAG.test()`` builds), for dependency decisions.

    Cached per DAG object: the registry builds a new object whenever a cell changes a DAG.
    """
    from airflow.serialization.serialized_objects import DagSerialization

    cached = _scheduler_dags.get(id(dag))
    if cached is not None and cached[0] is dag:
        return cached[1]

    sdag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    # As in DAG.test(): callbacks are lost by serialization; keep the notebook's ones.
    sdag.on_success_callback = dag.on_success_callback  # type: ignore[attr-defined]
    sdag.on_failure_callback = dag.on_failure_callback  # type: ignore[attr-defined]
    _scheduler_dags[id(dag)] = (dag, sdag)
    return sdag


def latest_run(dag_id: str, session: Any) -> DagRun | None:
    """The newest run of a DAG in this metastore."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    run: DagRun | None = session.scalar(
        select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
    )
    return run


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


_attached: dict[tuple[str, str], Any] = {}


def attach_latest_version(dr: DagRun, sdag: Any, session: Any) -> None:
    """Point an existing run at the DAG's latest version, adding task instances it lacks.

    ``verify_integrity`` is costly (it loads every task instance), so it runs only when the
    DAG got a new version since this run was last checked.
    """
    from airflow.models.dag_version import DagVersion

    dr.dag = sdag
    version = DagVersion.get_latest_version(sdag.dag_id, session=session)
    if version is None:
        return
    # Airflow may update a version row in place, so the scheduler DAG object (new whenever a
    # cell changes the DAG) is what tells whether this run has been checked against it.
    key = (dr.dag_id, dr.run_id)
    if _attached.get(key) == (version.id, id(sdag)):
        return
    dr.verify_integrity(session=session, dag_version_id=version.id)
    session.flush()
    _attached[key] = (version.id, id(sdag))


class ReadyTasks:
    """Which task instances of a run may start now, decided by Airflow's dependency rules.

    ``DAG.test()`` calls ``DagRun.update_state`` every round, which loads every task instance
    of the run and evaluates each unfinished one against the finished ones: quadratic in the
    DAG's size, about 0.7 s a round at 1,000 tasks. Two things make a round cheap here
    without changing what decides:

    * **Only changed rows are re-read.** The loaded task instances stay in the session; a
      round reads ``(id, state, updated_at)`` of the run and reloads just the rows that the
      execution API (or anything else) changed since.
    * **Only the frontier is asked.** A task instance none of whose direct upstream tasks has
      finished cannot be ready under any trigger rule except ``always``, so Airflow's own
      evaluation (``DagRun._get_ready_tis``, with the ``DepContext`` ``update_state`` builds)
      is asked only about the others: roots, ``always`` tasks, and tasks with a finished
      upstream (which is also where ``upstream_failed`` and skips propagate).

    When the frontier has nothing ready, the full ``update_state`` runs. It stays the arbiter
    of the run: its state (success, failure, deadlock), callbacks, removed tasks — and any
    ready task instance the frontier left out would be found there.
    """

    def __init__(self, dr: DagRun, session: Any) -> None:
        self.dr, self.session = dr, session
        self._tis: dict[tuple[str, int], TaskInstance] = {}
        self._seen: dict[tuple[str, int], tuple[Any, Any]] = {}  # (state, updated_at) read
        self.changed = False  # the last ready() changed a state (upstream_failed, skipped …)
        self.settled = False  # the last ready() ended in a full update_state with none ready

    def task_instances(self) -> list[TaskInstance]:
        """Every task instance of the run, as the database has it now."""
        from airflow.models.taskinstance import TaskInstance as TI
        from sqlalchemy import String, select, type_coerce

        dr, session = self.dr, self.session
        session.flush()  # so that the rows show this session's own changes too
        # updated_at as the database stores it: comparing raw values costs no parsing.
        rows = session.execute(
            select(TI.task_id, TI.map_index, TI.state, type_coerce(TI.updated_at, String)).where(
                TI.dag_id == dr.dag_id, TI.run_id == dr.run_id
            )
        ).all()
        current = {(task_id, index): (state, updated) for task_id, index, state, updated in rows}
        stale = [key for key, seen in current.items() if self._seen.get(key) != seen]
        if stale:
            query = select(TI).where(TI.dag_id == dr.dag_id, TI.run_id == dr.run_id)
            if len(stale) < 200:  # else the whole run at once (and stay under SQL's limits)
                stale_ids = {task_id for task_id, _ in stale}
                query = query.where(TI.task_id.in_(stale_ids))
            for ti in session.scalars(query.execution_options(populate_existing=True)):
                self._tis[(ti.task_id, ti.map_index)] = ti
        for gone in set(self._tis) - set(current):
            del self._tis[gone]
        self._seen = current
        return list(self._tis.values())

    def ready(self) -> list[TaskInstance]:
        """Task instances that may start now (``[]``: none can, and the run's state is set)."""
        from airflow.exceptions import TaskNotFound
        from airflow.task.trigger_rule import TriggerRule
        from airflow.ti_deps.dependencies_states import SCHEDULEABLE_STATES
        from airflow.utils.state import State

        dr = self.dr
        assert dr.dag is not None, "attach_latest_version() or create_run() sets the DAG"
        known, finished = [], []
        for ti in self.task_instances():
            try:
                task = dr.dag.get_task(ti.task_id)
            except TaskNotFound:
                continue  # update_state marks it removed
            ti.task = task
            known.append((ti, task))
            if ti.state in State.finished:
                finished.append(ti)
        finished_tasks = {ti.task_id for ti in finished}
        frontier = []
        for ti, task in known:
            if ti.state not in SCHEDULEABLE_STATES:
                continue
            upstream = task.upstream_task_ids
            if (
                not upstream
                or task.trigger_rule == TriggerRule.ALWAYS
                or not finished_tasks.isdisjoint(upstream)
            ):
                frontier.append(ti)
        self.settled = self.changed = False
        if frontier:
            before = [ti.state for ti in frontier]
            ready, _, _ = dr._get_ready_tis(frontier, finished, session=self.session)
            self.changed = before != [ti.state for ti in frontier]
            if ready:
                return list(ready)
        unfinished = [ti for ti, _ in known if ti.state not in State.finished]
        before = [ti.state for ti in unfinished]
        ready, _ = dr.update_state(session=self.session)
        self.changed |= before != [ti.state for ti in unfinished]
        self.settled = not ready
        return list(ready)

    def settle(self) -> None:
        """Let ``update_state`` set the run's state, unless the last round just did."""
        if not self.settled:
            self.task_instances()
            self.dr.update_state(session=self.session)
            self.settled = True


def expand_mapped(dr: DagRun, task_id: str, session: Any) -> bool:
    """Create a mapped task's instances now that its upstream results exist.

    Returns False for a task that is not mapped (nothing to expand).
    """
    from airflow.exceptions import NotMapped
    from airflow.models.taskmap import TaskMap

    assert dr.dag is not None, "attach_latest_version() sets the run's DAG first"
    task = dr.dag.get_task(task_id)
    try:
        TaskMap.expand_mapped_task(task, dr.run_id, session=session)
    except NotMapped:
        return False
    session.flush()
    return True


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


def _sdk_ti(ti: TaskInstance) -> Any:
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


_client: Any = None


def _execution_client(dag: Any) -> Any:
    """One execution-API client (and one ``DBDagBag``) for all tries until a DAG changes.

    Given no client, ``run_task_in_process`` builds a new one with a new, empty ``DBDagBag``
    for every try, which then deserializes the whole DAG again: the per-task cost grew with
    the DAG's size. ``sync_dags`` drops this client, because Airflow may update a version row
    in place and the bag caches DAGs by version id. The client's transport serves the hot
    routes without HTTP (see ``_execution``).
    """
    global _client
    if _client is None:
        from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor

        from . import _execution

        if not _execution.enabled():
            _client = InProcessTestSupervisor._api_client(dag)
            return _client
        from airflow.models.dagbag import DBDagBag

        transport = _execution.DirectTransport(DBDagBag())
        _client = InProcessTestSupervisor._Client(
            base_url=None, token="", dry_run=True, transport=transport
        )
        _client.base_url = "http://in-process.invalid./"
    return _client


def run_try(ti: TaskInstance, task: Any) -> Any:
    """Run one try through the Task SDK's in-process supervisor (as ``DAG.test()`` does).

    Returns Airflow's ``TaskRunResult``: the final state, and the task's own exception.
    """
    from airflow.sdk.execution_time.supervisor import run_task_in_process

    sdk_ti = _sdk_ti(ti)
    result = run_task_in_process(ti=sdk_ti, task=task, client=_execution_client(task.dag))
    return result


def run_deferred(ti: TaskInstance, result: Any) -> None:
    """Run a deferred task's trigger inline and make the instance resumable (as DAG.test)."""
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor
    from airflow.sdk.serde import deserialize, serialize

    msg = result.msg
    ti.set_state("queued")
    sdk_ti = _sdk_ti(ti)
    kwargs: dict[str, Any] = deserialize(msg.trigger_kwargs)  # type: ignore[assignment]
    trigger = import_string(msg.classpath)(**kwargs)
    event = InProcessTestSupervisor.run_trigger_in_process(trigger=trigger, ti=sdk_ti)
    with db_session() as session:
        ti.next_method = msg.next_method
        ti.next_kwargs = {"event": serialize(event.payload)} if event else msg.next_kwargs
        ti.state = "scheduled"
        session.merge(ti)


def is_deferral(result: Any) -> bool:
    """True if the task asked to defer to a trigger."""
    from airflow.sdk.execution_time.comms import DeferTask

    return isinstance(result.msg, DeferTask)


def state_name(state: Any) -> str:
    """An Airflow state (either enum, or None) as its plain string: "success", "none"…"""
    if state is None:
        return "none"
    return str(getattr(state, "value", state))


def set_state(ti: TaskInstance, state: str) -> None:
    """Record a task instance's final state."""
    ti.set_state(state)


def xcom_value(
    dag_id: str, run_id: str, task_id: str, key: str, map_index: int | None, session: Any
) -> tuple[bool, Any]:
    """(found, value) of an XCom in a run."""
    from airflow.models.xcom import XComModel

    query = XComModel.get_many(
        run_id=run_id,
        key=key,
        task_ids=task_id,
        dag_ids=dag_id,
        map_indexes=map_index if map_index is not None else None,
    )
    from airflow.sdk.serde import deserialize

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
    if map_index is None and len(rows) > 1:
        rows.sort(key=lambda r: r.map_index)
        return True, [value(r) for r in rows]
    return True, value(rows[0])


def delete_runs(session: Any, dag_id: str | None = None) -> int:
    """Delete runs (and with them task instances and XComs) from the metastore."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import delete

    stmt = delete(DagRun)
    if dag_id:
        stmt = stmt.where(DagRun.dag_id == dag_id)
    result = session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


def set_dag_paused(dag_ids: Iterable[str], session: Any) -> None:
    """Notebook DAGs are never scheduled by a scheduler: keep them paused."""
    from airflow.models.dag import DagModel
    from sqlalchemy import update

    session.execute(update(DagModel).where(DagModel.dag_id.in_(list(dag_ids))).values(is_paused=True))


def preload(home: str, connections: list[str], variables: list[str]) -> tuple[int, int]:
    """Import connection and variable files (JSON, YAML or .env, as ``airflow connections
    import`` reads them) into the session metastore; returns the counts imported."""
    import os

    from airflow.models import Connection, Variable
    from airflow.secrets.local_filesystem import load_connections_dict, load_variables
    from sqlalchemy import select

    n_conn = n_var = 0
    with db_session() as session:
        for rel in connections:
            for conn_id, conn in load_connections_dict(os.path.join(home, rel)).items():
                if session.scalar(select(Connection).where(Connection.conn_id == conn_id)):
                    continue
                session.add(conn)
                n_conn += 1
        session.commit()
    for rel in variables:
        for key, value in load_variables(os.path.join(home, rel)).items():
            Variable.set(key, value, serialize_json=not isinstance(value, str))
            n_var += 1
    return n_conn, n_var


def after_fork() -> None:
    """In a forked task process: drop the parent's DB connections and API loop thread.

    Why internal: the in-process execution API caches a transport whose event-loop thread
    exists only in the parent; the FastAPI app itself can be reused.
    """
    global _client
    from airflow import settings
    from airflow.sdk.execution_time.supervisor import in_process_api_server

    _client = None
    if settings.engine is not None:
        settings.engine.dispose(close=False)
    api = in_process_api_server()
    try:
        del api.transport  # a cached property: the next use builds a loop in this process
    except AttributeError:
        in_process_api_server.cache_clear()


def refresh_state(ti: TaskInstance) -> str:
    """A task instance's state as the metastore has it now."""
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import select

    with db_session() as session:
        state = session.scalar(select(TI.state).where(TI.id == ti.id))
    return state_name(state)
