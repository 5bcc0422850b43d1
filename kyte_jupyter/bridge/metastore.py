"""SQL on Airflow's own tables that Kyte runs itself, and the engine reset after a repair.

Plain ``sqlite3`` on purpose: recovery runs at kernel start, before Airflow is imported (an
import costs seconds, and it must not happen before the kernel's home is set). Every
statement here names the Airflow tables and columns it relies on; they are stable across
Airflow 3.x (``task_instance``: dag_id, run_id, task_id, map_index, state, end_date,
updated_at; ``dag_run``: dag_id, run_id, state, end_date, updated_at). A PostgreSQL
metastore runs the same statements through :func:`kyte_jupyter.session.metastore.
connect_postgres` (sqlite3's conventions over psycopg).
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from collections.abc import Iterable
from pathlib import Path

#: Try states that mean "a process is (or was) working on it": left by a dead kernel, the
#: try will never finish.
UNFINISHED_TRY = ("running", "queued", "scheduled", "restarting")
#: Run states of a run still in progress.
UNFINISHED_RUN = ("running", "queued")


def _key(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def fail_interrupted(
    db_path: Path,
    *,
    protected_dags: set[str],
    dead_claims: Iterable[tuple[str, str]],
    timeout: float = 10.0,
    metastore_url: str | None = None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Mark runs interrupted by a dead kernel failed, with their unfinished tries.

    A run is interrupted if its DAG is not in ``protected_dags`` (claimed by a live kernel)
    and either it has an unfinished try, or a dead kernel claimed its DAG at ``since`` (a
    pair in ``dead_claims``) and the run is still in progress and changed after ``since``.
    Returns the tries marked failed (``dag.task[i]``) and the runs marked failed.
    An unreadable or unmigrated database is left alone (health checks report it).
    With ``metastore_url`` the metastore is that PostgreSQL database, not ``db_path``.
    """
    from ..session.metastore import PgConnection, connect_postgres

    placeholders = ",".join("?" * len(UNFINISHED_TRY))
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    con: sqlite3.Connection | PgConnection
    try:
        if metastore_url:
            con = connect_postgres(metastore_url, readonly=False, timeout=timeout)
        else:
            con = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, timeout=timeout)
    except sqlite3.Error:
        return [], []
    try:
        con.execute("BEGIN IMMEDIATE")  # one writer decides; nobody changes rows meanwhile
        rows = con.execute(
            "SELECT dag_id, run_id, task_id, map_index FROM task_instance "
            f"WHERE state IN ({placeholders})", UNFINISHED_TRY,
        ).fetchall()
        rows = [r for r in rows if r[0] not in protected_dags]
        runs = {(d, r) for d, r, _, _ in rows}
        run_states = ",".join("?" * len(UNFINISHED_RUN))
        for dag_id, since in dead_claims:
            if dag_id in protected_dags or not since:
                continue
            for (run_id,) in con.execute(
                f"SELECT run_id FROM dag_run WHERE dag_id=? AND state IN ({run_states}) AND "
                "(updated_at >= ? OR EXISTS (SELECT 1 FROM task_instance ti WHERE "
                "ti.dag_id=dag_run.dag_id AND ti.run_id=dag_run.run_id AND ti.updated_at >= ?))",
                (dag_id, *UNFINISHED_RUN, since, since),
            ):
                runs.add((dag_id, str(run_id)))
        tries: list[str] = []
        for dag_id, run_id in sorted(runs):
            tries += [
                f"{dag_id}.{_key(t, m)}" for t, m in con.execute(
                    "SELECT task_id, map_index FROM task_instance WHERE dag_id=? AND run_id=? "
                    f"AND state IN ({placeholders}) ORDER BY task_id, map_index",
                    (dag_id, run_id, *UNFINISHED_TRY),
                )
            ]
            con.execute(
                "UPDATE task_instance SET state='failed', end_date=? WHERE dag_id=? AND "
                f"run_id=? AND state IN ({placeholders})", (now, dag_id, run_id, *UNFINISHED_TRY),
            )
            con.execute(
                "UPDATE dag_run SET state='failed', end_date=? WHERE dag_id=? AND run_id=?",
                (now, dag_id, run_id),
            )
        con.commit()
    except sqlite3.Error:
        con.rollback()
        return [], []  # an unmigrated, damaged or foreign database: health checks report it
    finally:
        con.close()
    return tries, sorted(runs)


def dispose_engine() -> None:
    """Close this process's pooled metastore connections (after the file was replaced).

    Why internal: ``airflow.settings.engine`` keeps connections open on the old file (a
    renamed file keeps its inode, so they would go on writing to the damaged copy).
    """
    import sys

    if "airflow" not in sys.modules:
        return
    from airflow import settings

    if settings.engine is not None:
        settings.engine.dispose()


def migrate_new_metastore() -> None:
    """Create and migrate the metastore of ``$AIRFLOW_HOME`` (the session template).

    Why internal: ``airflow db migrate``'s function; a subprocess calls it once per Airflow
    version (:mod:`kyte_jupyter.session.template`).
    """
    from airflow.utils import db

    db.initdb()
