"""Realistic session content for server tests: rows in the real metastore schema, snapshots
and logs where the kernel and Airflow put them (docs/design.md)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kyte_jupyter.session import Session
from kyte_jupyter.session.metastore import connect_postgres

RUN_ID = "manual__2026-01-02T03:04:05.123456+00:00"


def write_graph(session: Session, graph: dict[str, Any]) -> None:
    """A graph snapshot as the kernel writes it (docs/design.md)."""
    session.graphs_dir.mkdir(parents=True, exist_ok=True)
    (session.graphs_dir / f"{graph['dag_id']}.json").write_text(json.dumps(graph))


def etl_graph() -> dict[str, Any]:
    """A DAG with a task group and a mapped task."""

    def node(task_id: str, operator: str, group: str | None = None, mapped: bool = False) -> Any:
        label = task_id.split(".")[-1]
        return {
            "task_id": task_id,
            "label": label,
            "operator": operator,
            "task_group": group,
            "is_mapped": mapped,
            "is_setup": False,
            "is_teardown": False,
            "trigger_rule": "all_success",
        }

    return {
        "dag_id": "etl",
        "description": "Extract, transform, load",
        "schedule": "@daily",
        "fileloc": "/somewhere/nb.ipynb",
        "nodes": [
            node("extract", "@task"),
            node("double", "@task", mapped=True),
            node("g.load", "BashOperator", group="g"),
            node("report", "PythonOperator"),
        ],
        "edges": [["extract", "double"], ["double", "g.load"], ["g.load", "report"]],
        "task_groups": [{"group_id": "g", "parent": None, "label": "g"}],
        "updated": "2026-01-02T03:00:00.000+00:00",
    }


def connect_rw(session: Session) -> Any:
    """A writable connection to the session's metastore, SQLite or (with
    ``KYTE_TEST_METASTORE=postgres``) PostgreSQL, with sqlite3's ``?`` parameters."""
    if session.metastore_url:
        return connect_postgres(session.metastore_url, readonly=False)
    return sqlite3.connect(session.db_path)


def add_run(
    session: Session,
    dag_id: str,
    run_id: str,
    state: str | None,
    tis: Iterable[tuple[str, int, str | None, int]] = (),
    *,
    start: str = "2026-01-02 03:04:05.123456",
    conf: str = "{}",
    history: Iterable[tuple[str, int, int, str]] = (),
) -> None:
    """Insert a dag_run with task instances ``(task_id, map_index, state, try_number)`` and
    older tries ``(task_id, map_index, try_number, state)``, with the columns Airflow fills."""
    con = connect_rw(session)
    try:
        con.execute(
            "INSERT INTO dag_run (dag_id, run_id, state, run_type, logical_date, start_date, "
            "end_date, conf, run_after, queued_at, clear_number, span_status, triggered_by) "
            "VALUES (?, ?, ?, 'manual', ?, ?, NULL, ?, ?, ?, 0, 'not_started', 'test')",
            (dag_id, run_id, state, start, start, conf, start, start),
        )
        for task_id, map_index, ti_state, try_number in tis:
            con.execute(
                "INSERT INTO task_instance (id, task_id, dag_id, run_id, map_index, start_date, "
                "end_date, duration, state, try_number, max_tries, hostname, unixname, pool, "
                "pool_slots, queue, priority_weight, operator, custom_operator_name, "
                "span_status, task_display_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, "
                "'host', 'root', 'default_pool', 1, 'default', 1, '_PythonDecoratedOperator', "
                "'@task', 'not_started', ?)",
                (
                    uuid.uuid4().hex,
                    task_id,
                    dag_id,
                    run_id,
                    map_index,
                    start if ti_state else None,
                    start if ti_state in ("success", "failed") else None,
                    0.5 if ti_state in ("success", "failed") else None,
                    ti_state,
                    try_number,
                    task_id,
                ),
            )
        for task_id, map_index, try_number, h_state in history:
            con.execute(
                "INSERT INTO task_instance_history (task_instance_id, task_id, dag_id, run_id, "
                "map_index, try_number, state, pool, pool_slots, span_status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'default_pool', 1, 'not_started')",
                (uuid.uuid4().hex, task_id, dag_id, run_id, map_index, try_number, h_state),
            )
        con.commit()
    finally:
        con.close()


def write_log(
    session: Session,
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int,
    content: bytes,
    map_index: int = -1,
) -> Path:
    """A task log where Airflow's default template puts it."""
    folder = session.logs_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        folder = folder / f"map_index={map_index}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"attempt={try_number}.log"
    path.write_bytes(content)
    return path
