"""Crash recovery at kernel start: tries left running by a kernel that died end as failed.

A stop-gap kept apart from the magics; the lease-based recovery in ``session/`` and
``bridge/metastore.py`` replaces it.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3

from .session import Session


def recover_interrupted(session: Session) -> list[str]:
    """Mark tries left running by a kernel that died as failed; keep everything else.

    Plain sqlite3 on purpose: it runs at kernel start, before Airflow is imported.
    Returns the interrupted task instances as ``dag.task`` or ``dag.task[i]``.
    """
    if not session.db_path.exists():
        return []
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    con = sqlite3.connect(session.db_path, timeout=10)
    try:
        rows = con.execute(
            "SELECT dag_id, run_id, task_id, map_index FROM task_instance "
            "WHERE state IN ('running', 'queued', 'scheduled', 'restarting')"
        ).fetchall()
        if not rows:
            return []
        con.execute(
            "UPDATE task_instance SET state='failed', end_date=? "
            "WHERE state IN ('running', 'queued', 'scheduled', 'restarting')", (now,)
        )
        runs = {(d, r) for d, r, _, _ in rows}
        for dag_id, run_id in runs:
            con.execute(
                "UPDATE dag_run SET state='failed', end_date=? WHERE dag_id=? AND run_id=?",
                (now, dag_id, run_id),
            )
        con.commit()
    except sqlite3.Error:
        return []  # an unmigrated or foreign database: leave it to Airflow to complain
    finally:
        con.close()
    interrupted = [f"{d}.{t}" + (f"[{m}]" if m >= 0 else "") for d, _, t, m in rows]
    for dag_id, run_id in runs:
        session.audit("run.interrupted", dag_id=dag_id, run_id=run_id, outcome="failed")
    return interrupted
