"""The only package of Kyte that imports Airflow's internals (anything beyond ``airflow.sdk``).

The Task SDK is the public API for *writing* DAGs; running them against a metastore without a
scheduler has no public API beyond ``DAG.test()``. Kyte uses the pieces ``DAG.test()`` is
built from, translated here, each with the reason:

* :mod:`.dags` — validating, serializing and registering the notebook's DAGs;
* :mod:`.runs` — runs, task instances, dependency evaluation, mapped-task expansion, XComs;
* :mod:`.tries` — one try through the Task SDK's task runner, deferral to triggers;
* :mod:`.execution` — the execution API served to the task runner without HTTP;
* :mod:`.executors` — parallel runs: Airflow's execution API over HTTP for executor workers,
  an executor fed by the scheduler's own queueing decision (pools, ``max_active_tasks``);
* :mod:`.masking` — Airflow's secrets masker, for everything bound for a cell;
* :mod:`.startup` — setting up this process's Airflow (logs, SQLite, caches, preload files);
* :mod:`.metastore` — the SQL Kyte runs on Airflow's tables itself (crash recovery, plain
  ``sqlite3`` before Airflow is imported).

What must be remembered between calls lives in one :class:`Bridge` object per process (Airflow
reads its configuration per process), with bounded caches. The run's *policy* — what to run
when — is not here: it is ``kyte_jupyter.runner.plan``. Pin the Airflow range in
pyproject.toml to versions these calls were tested with.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .dags import check_dag, collecting_dags, parsing_as_dag_processor
from .masking import redact, redact_value
from .runs import (
    FINISHED,
    SCHEDULABLE,
    MapNotReady,
    create_run,
    db_session,
    delete_runs,
    get_run,
    latest_run,
    run_for_date,
    state_name,
    task_instances,
    ti_states,
    xcom_value,
)
from .startup import cache_task_runner_schemas, preload, quiet_server_logs, tune_sqlite
from .tries import TriggerInterrupted, TryResult

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk import DAG


class Bridge:
    """This process's Airflow, as the runner and the registry use it.

    Holds what is worth keeping between calls, each cache bounded:

    * the scheduler's view of each notebook DAG (one per DAG id, rebuilt when the registry
      hands over a new DAG object: a cell changed it), at most ``max_dags``;
    * which runs were checked against which DAG version (``verify_integrity`` loads every
      task instance, so it runs only when needed), at most ``max_runs``;
    * one execution-API client (and its ``DBDagBag``) for all tries until a DAG changes.
    """

    def __init__(self, *, max_dags: int = 64, max_runs: int = 256) -> None:
        self.max_dags, self.max_runs = max_dags, max_runs
        self._sdags: OrderedDict[str, tuple[DAG, Any]] = OrderedDict()
        self._attached: OrderedDict[tuple[str, str], tuple[Any, Any]] = OrderedDict()
        self._client: Any = None
        self._bundles_synced = False

    # ---- DAGs -------------------------------------------------------------------------------
    def sync_dags(self, dags: Iterable[DAG]) -> None:
        """Write DAGs to the metastore as the DAG processor would (see :mod:`.dags`)."""
        from .dags import write_dags

        # Airflow may update a version row in place and the client's DagBag caches DAGs by
        # version id: start a new client.
        self._client = None
        write_dags(dags, sync_bundles=not self._bundles_synced)
        self._bundles_synced = True

    def scheduler_dag(self, dag: DAG) -> Any:
        """The scheduler's view of ``dag`` (what ``DAG.test()`` builds), kept per DAG id."""
        from .dags import build_scheduler_dag

        cached = self._sdags.get(dag.dag_id)
        if cached is not None and cached[0] is dag:
            self._sdags.move_to_end(dag.dag_id)
            return cached[1]
        sdag = build_scheduler_dag(dag)
        self._sdags[dag.dag_id] = (dag, sdag)
        self._sdags.move_to_end(dag.dag_id)
        while len(self._sdags) > self.max_dags:
            self._sdags.popitem(last=False)
        return sdag

    # ---- runs -------------------------------------------------------------------------------
    def attach(self, dr: DagRun, sdag: Any, session: Any) -> None:
        """Point an existing run at the DAG's latest version, adding task instances it lacks.

        ``verify_integrity`` is costly (it loads every task instance), so it runs only when
        the DAG got a new version, or a new scheduler DAG (Airflow may update a version row in
        place), since this run was last checked.
        """
        from .runs import latest_version_id, verify_integrity

        dr.dag = sdag
        version = latest_version_id(sdag.dag_id, session)
        if version is None:
            return
        key = (dr.dag_id, dr.run_id)
        seen = self._attached.get(key)
        if seen is not None and seen[0] == version and seen[1] is sdag:
            self._attached.move_to_end(key)
            return
        verify_integrity(dr, version, session)
        self._attached[key] = (version, sdag)
        self._attached.move_to_end(key)
        while len(self._attached) > self.max_runs:
            self._attached.popitem(last=False)

    # ---- tries ------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The execution-API client of tries (built on first use, dropped by ``sync_dags``).

        Given no client, ``run_task_in_process`` builds one with a new, empty ``DBDagBag``
        for every try, which then deserializes the whole DAG again. The client's transport
        serves the hot routes without HTTP (see :mod:`.execution`).
        """
        if self._client is None:
            from .execution import enabled
            from .tries import new_client

            self._client = new_client(None, enabled(), None)
        return self._client

    def run_try(self, ti: TaskInstance, task: Any) -> TryResult:
        """Run one try of ``ti`` (queued by ``runs.prepare_try``) in this process."""
        from .tries import run_try

        return run_try(ti, task, self.client)

    def wait_for_trigger(self, ti: TaskInstance, deferral: Any) -> None:
        """Run a deferred try's trigger to its first event (see :func:`.tries.wait_for_trigger`)."""
        from .tries import wait_for_trigger

        wait_for_trigger(ti, deferral, self.client)

    def after_fork(self) -> None:
        """In a forked task process: nothing of the parent's connections or threads is used."""
        from .tries import after_fork

        self._client = None
        after_fork()

    def drop_client(self) -> None:
        """Build the execution-API client again on the next try (a setting changed)."""
        self._client = None

    def metastore_replaced(self) -> None:
        """The metastore file was replaced (``%kyte repair``): forget what it held."""
        from .metastore import dispose_engine

        dispose_engine()
        self._client = None
        self._attached.clear()
        self._bundles_synced = False


_current: Bridge | None = None


def current() -> Bridge:
    """This process's bridge (one per process: Airflow's settings are per process)."""
    global _current
    if _current is None:
        _current = Bridge()
    return _current


def sync_dags(dags: Iterable[DAG]) -> None:
    """Write the notebook's DAGs to the metastore (through this process's bridge)."""
    current().sync_dags(dags)


__all__ = [
    "FINISHED", "SCHEDULABLE", "Bridge", "MapNotReady", "TriggerInterrupted", "TryResult",
    "cache_task_runner_schemas", "check_dag", "collecting_dags", "create_run", "current",
    "db_session", "delete_runs", "get_run", "latest_run", "parsing_as_dag_processor",
    "preload", "quiet_server_logs",
    "redact", "redact_value", "run_for_date", "state_name", "sync_dags", "task_instances",
    "ti_states", "tune_sqlite", "xcom_value",
]
