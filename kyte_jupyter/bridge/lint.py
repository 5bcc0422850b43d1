"""The few Airflow internals the static checks need, in one place.

Everything else in :mod:`kyte_jupyter.lint` uses ``airflow.sdk`` only. Reached into here, and
why:

* the sample template context: ``RuntimeTaskInstance.get_template_context`` is how a task's
  context is built (``airflow tasks render`` builds it the same way), fed a ``TIRunContext``
  made up for the next logical date instead of one from the API server;
* the next logical date: only the scheduler's (core) timetables compute run infos;
* the connection type (for the SQL dialect): ``Connection.get_connection_from_secrets``
  reads the environment, secrets backends and metastore, as a deployment does;
* loading an exported file: ``DagBag.process_file`` is what the DAG processor runs
  (timeout, validation, cluster policies of the environment);
* ``[core] dagbag_import_timeout`` through Airflow's config and policy hook.
"""

from __future__ import annotations

import datetime as _dt
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import DAG


@dataclass(frozen=True)
class SampleRun:
    """The logical date and data interval a sample context is built for."""

    logical_date: _dt.datetime
    data_interval_start: _dt.datetime
    data_interval_end: _dt.datetime
    run_after: _dt.datetime


def next_run(dag: DAG, logical_date: _dt.datetime | None = None) -> SampleRun:
    """The DAG's next scheduled run from now (or the run at ``logical_date``).

    A DAG with no schedule (or one that never fires) gets a manual run at the current minute.
    """
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    now = pendulum.now("UTC").replace(second=0, microsecond=0)
    if logical_date is not None:
        when = pendulum.instance(logical_date)
        if when.tzinfo is None:
            when = when.replace(tzinfo=pendulum.UTC)
        try:
            interval = timetable.infer_manual_data_interval(run_after=when)
        except Exception:
            interval = DataInterval(when, when)
        return SampleRun(when, interval.start, interval.end, when)
    if getattr(timetable, "can_be_scheduled", False):
        try:
            info = timetable.next_dagrun_info(
                last_automated_data_interval=None,
                restriction=TimeRestriction(
                    earliest=_aware(dag.start_date), latest=None, catchup=False
                ),
            )
        except Exception:
            info = None
        if info is not None and info.data_interval is not None:
            start = info.data_interval.start
            return SampleRun(start, start, info.data_interval.end, info.run_after)
    return SampleRun(now, now, now, now)


def _aware(value: _dt.datetime | None) -> Any:
    """A pendulum DateTime (what core timetables take), or None."""
    import pendulum

    return None if value is None else pendulum.instance(value)


def is_scheduled(dag: DAG) -> bool:
    """Whether the scheduler creates runs of this DAG by itself (a periodic timetable)."""
    from airflow.serialization.encoders import coerce_to_core_timetable

    timetable = coerce_to_core_timetable(dag.timetable)
    return bool(getattr(timetable, "can_be_scheduled", False)) and bool(
        getattr(timetable, "periodic", False)
    )


def never_fires(dag: DAG) -> bool:
    """Whether a scheduled DAG's timetable yields no run at all from its start date on."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    if not getattr(timetable, "can_be_scheduled", False):
        return False
    try:
        info = timetable.next_dagrun_info(
            last_automated_data_interval=None,
            restriction=TimeRestriction(
                earliest=_aware(dag.start_date), latest=_aware(dag.end_date), catchup=True
            ),
        )
    except Exception:
        return False
    return info is None and dag.end_date is None


def template_context(
    task: Any, run: SampleRun, conf: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A task's template context for a run at ``run``, as a worker would build it.

    Raises ``airflow.sdk.exceptions.ParamValidationError`` if the params do not validate.
    """
    from airflow.sdk.api.datamodels._generated import (
        DagRun,
        DagRunState,
        DagRunType,
        TIRunContext,
    )
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    dag = task.dag
    run_id = f"manual__{run.logical_date.isoformat()}"
    dag_run = DagRun(
        dag_id=dag.dag_id,
        run_id=run_id,
        logical_date=run.logical_date,
        data_interval_start=run.data_interval_start,
        data_interval_end=run.data_interval_end,
        run_after=run.run_after,
        start_date=run.run_after,
        end_date=None,
        run_type=DagRunType.MANUAL,
        state=DagRunState.RUNNING,
        conf=dict(conf or {}),
        consumed_asset_events=[],
        partition_key=None,
    )
    ti = RuntimeTaskInstance.model_construct(
        id=uuid.uuid4(),
        task_id=task.task_id,
        dag_id=dag.dag_id,
        run_id=run_id,
        try_number=1,
        map_index=-1,
        dag_version_id=uuid.uuid4(),
        task=task,
        start_date=run.run_after,
        max_tries=getattr(task, "retries", 0) or 0,
        _ti_context_from_server=TIRunContext(dag_run=dag_run, max_tries=0),
    )
    return dict(ti.get_template_context())


def task_params(task: Any, conf: Mapping[str, Any] | None) -> dict[str, Any]:
    """The validated params a run of ``task`` sees (DAG params, task params, run conf)."""
    from airflow.sdk.definitions.param import process_params

    return dict(process_params(task.dag, task, dict(conf or {}), suppress_exception=False))


def param_validation_error() -> type[Exception]:
    """The exception Airflow raises for params that do not validate."""
    from airflow.sdk.exceptions import ParamValidationError

    return ParamValidationError


_CONN_TTL_S = 30.0
_conn_types: dict[str, tuple[float, str | None]] = {}


def connection_type(conn_id: str) -> str | None:
    """The type of connection ``conn_id`` as the environment defines it, or None.

    Remembered for 30 s: a DAG's SQL tasks usually share one connection, and a lookup reads
    the environment, the secrets backends and the metastore.
    """
    now = time.monotonic()
    hit = _conn_types.get(conn_id)
    if hit is not None and now - hit[0] < _CONN_TTL_S:
        return hit[1]
    found = _connection_type(conn_id)
    _conn_types[conn_id] = (now, found)
    return found


def _connection_type(conn_id: str) -> str | None:
    import logging

    from airflow.models.connection import Connection

    quiet = logging.getLogger("airflow")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # an unknown connection is logged as an error: not ours
    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except Exception:
        return None
    finally:
        quiet.setLevel(level)
    conn_type = getattr(conn, "conn_type", None)
    return str(conn_type) if conn_type else None


def is_sql_operator(task: Any) -> bool:
    """Whether the task is one of the common.sql provider's operators (or a subclass)."""
    try:
        from airflow.providers.common.sql.operators.sql import BaseSQLOperator
    except ImportError:
        return False
    return isinstance(task, BaseSQLOperator)


def dagbag_import_timeout(path: str = "") -> float:
    """``[core] dagbag_import_timeout`` for a file, as the DAG processor computes it."""
    from airflow import settings

    try:
        value = settings.get_dagbag_import_timeout(path)
        return float(value)
    except Exception:
        from airflow.configuration import conf

        return conf.getfloat("core", "dagbag_import_timeout")


def policy_exceptions() -> tuple[type[Exception], type[Exception]]:
    """(AirflowClusterPolicyViolation, AirflowClusterPolicySkipDag)."""
    from airflow.exceptions import AirflowClusterPolicySkipDag, AirflowClusterPolicyViolation

    return AirflowClusterPolicyViolation, AirflowClusterPolicySkipDag


@dataclass
class LoadedFile:
    """What the DAG processor made of one DAG file."""

    dags: dict[str, DAG]
    errors: dict[str, str]
    seconds: float


def load_dag_file(path: Path) -> LoadedFile:
    """Parse one DAG file as the DAG processor does (``DagBag.process_file``), timed."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path.parent), collect_dags=False, load_op_links=False)
    started = time.perf_counter()
    bag.process_file(str(path), only_if_updated=False, safe_mode=False)
    seconds = time.perf_counter() - started
    return LoadedFile(dict(bag.dags), dict(bag.import_errors), seconds)
