"""A graph snapshot from the serialized DAG Airflow stores, read as plain JSON (no Airflow)."""

from __future__ import annotations

import json
import zlib
from typing import Any


def graph_from_serialized(data: Any, compressed: bytes | None = None) -> dict[str, Any] | None:
    """A graph snapshot (``docs/design.md`` shape) from a ``serialized_dag`` row, or ``None``.

    Reads the JSON Airflow stores for a DAG (``{"__version": 3, "dag": {...}}``) as plain data;
    anything unexpected makes it give up rather than guess.
    """
    try:
        if data is None and compressed is not None:
            data = zlib.decompress(compressed)
        doc = json.loads(data) if isinstance(data, str | bytes) else data
        dag = doc["dag"]
        tasks = [t.get("__var", t) for t in dag["tasks"]]
    except (KeyError, TypeError, ValueError, AttributeError, zlib.error):
        return None
    groups: list[dict[str, Any]] = []
    task_group_of: dict[str, str | None] = {}

    def walk(group: dict[str, Any], group_id: str | None) -> None:
        for child in (group.get("children") or {}).values():
            if not isinstance(child, list) or len(child) != 2:
                continue
            kind, value = child
            if kind == "taskgroup" and isinstance(value, dict):
                gid = value.get("_group_id")
                label = (
                    gid.rsplit(".", 1)[-1] if gid and value.get("prefix_group_id", True) else gid
                )
                groups.append({"group_id": gid, "parent": group_id, "label": label})
                walk(value, gid)
            elif kind == "operator":
                task_group_of[str(value)] = group_id

    if isinstance(dag.get("task_group"), dict):
        walk(dag["task_group"], None)
    nodes = []
    edges: list[list[str]] = []
    for t in tasks:
        if not isinstance(t, dict) or "task_id" not in t:
            return None
        task_id = str(t["task_id"])
        group = task_group_of.get(task_id)
        label = task_id[len(group) + 1 :] if group and task_id.startswith(group + ".") else task_id
        nodes.append(
            {
                "task_id": task_id,
                "label": label,
                "operator": t.get("_operator_name") or t.get("task_type"),
                "task_group": group,
                "is_mapped": bool(t.get("_is_mapped", False)),
                "is_setup": bool(t.get("_is_setup", False)),
                "is_teardown": bool(t.get("_is_teardown", False)),
                "trigger_rule": t.get("trigger_rule", "all_success"),
            }
        )
        edges.extend([task_id, str(down)] for down in sorted(t.get("downstream_task_ids") or []))
    return {
        "dag_id": dag.get("dag_id"),
        "description": dag.get("description"),
        "nodes": nodes,
        "edges": edges,
        "task_groups": groups,
    }
