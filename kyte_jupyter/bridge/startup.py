"""Setting up this process's Airflow for a notebook: logs, SQLite, caches, preload files."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any


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

    from ..session.health import lock_timeout

    engine = settings.engine
    if engine is None or engine.dialect.name != "sqlite":
        return
    busy_ms = int(lock_timeout() * 1000)  # the bound Kyte waits for another writer

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()


def cache_task_runner_schemas() -> None:
    """Build the task runner's pydantic adapters once, not per field per try.

    The Task SDK builds a new ``TypeAdapter`` for each use: ``_serialize_rendered_fields``
    one of ``JsonValue`` for every template field of every try, and each task process's
    ``CommsDecoder`` two of ``ToTask``. Building one compiles a pydantic schema (measured
    here: ~1 ms for ``JsonValue``, ~2-3 ms for ``ToTask``; a trivial try takes ~20 ms).
    A ``TypeAdapter`` is immutable, so one per type serves every call the same way; only
    ``task_runner``'s and ``comms``' own names are rebound, for one-argument calls
    (anything else still builds a new adapter). :func:`warm_task_runner_schemas` builds
    them before the kernel forks executor workers, whose task processes inherit them.
    """
    import functools

    from airflow.sdk.execution_time import comms, task_runner
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
    setattr(comms, "TypeAdapter", adapter)  # noqa: B010


def warm_task_runner_schemas() -> None:
    """Build the cached adapters every try uses (see :func:`cache_task_runner_schemas`)."""
    from airflow.sdk.execution_time import comms, task_runner
    from pydantic import JsonValue

    cache_task_runner_schemas()
    vars(task_runner)["TypeAdapter"](JsonValue)
    vars(comms)["TypeAdapter"](comms.ToTask)


def preload(home: str, connections: list[str], variables: list[str]) -> tuple[int, int]:
    """Import connection and variable files (JSON, YAML or .env, as ``airflow connections
    import`` reads them) into the session metastore; returns the counts imported."""
    from airflow.models import Connection, Variable
    from airflow.secrets.local_filesystem import load_connections_dict, load_variables
    from sqlalchemy import select

    from .runs import db_session

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


def set_dag_paused(dag_ids: Iterable[str], session: Any) -> None:
    """Notebook DAGs are never scheduled by a scheduler: keep them paused."""
    from airflow.models.dag import DagModel
    from sqlalchemy import update

    session.execute(
        update(DagModel).where(DagModel.dag_id.in_(list(dag_ids))).values(is_paused=True)
    )
