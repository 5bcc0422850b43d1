"""Describe Airflow DAGs as JSON, so a DAG built in a kernel can be compared with a DAG file.

As a script: ``python describe.py OUT.json FILE...`` parses each file with a stock
``DagBag`` (run it with a clean ``AIRFLOW_HOME``) and writes
``{file: {"import_errors": {...}, "dags": {dag_id: description}}}`` to ``OUT.json``.

``describe_dag(dag)`` is also imported into kernels (nbclient tests) to describe the DAGs of
a Kyte session the same way.

A description has a readable ``summary`` (per task: operator, upstream ids, task group,
trigger rule, retries, callable name, template field values) and the DAG's ``serialized``
form as Airflow's own serializer writes it (every argument the scheduler and workers see),
minus what legitimately differs between a notebook and a file (file locations).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_VARYING = {"fileloc", "relative_fileloc", "_processor_dags_folder"}
# Sets in Airflow (tags, some operators' template_fields) come out in hash order.
_UNORDERED = {"tags", "downstream_task_ids", "upstream_task_ids", "template_fields", "template_ext"}


def _plain(value: Any) -> Any:
    """JSON-able, process-independent form of a value."""
    return _normalize(json.loads(json.dumps(value, default=_fallback)))


def _fallback(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    name = getattr(value, "__qualname__", None)
    if callable(value) and name:
        return f"<callable {name}>"
    return _ADDRESS.sub("", f"<{type(value).__name__} {value!r}>")


def _normalize(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _normalize(v, k) for k, v in value.items() if k not in _VARYING}
    if isinstance(value, list):
        items = [_normalize(v) for v in value]
        if key in _UNORDERED and all(isinstance(i, str) for i in items):
            return sorted(items)
        if key == "tasks":
            return sorted(items, key=lambda t: str(t.get("__var", {}).get("task_id")))
        return items
    if isinstance(value, str):
        return _ADDRESS.sub("", value)
    return value


def _callable_name(task: Any) -> str | None:
    fn = getattr(task, "python_callable", None)
    return getattr(fn, "__qualname__", None) if fn is not None else None


def describe_task(task: Any) -> dict[str, Any]:
    """The arguments of one task that a reviewer would check."""
    group = task.task_group
    out: dict[str, Any] = {
        "class": type(task).__name__,
        "task_type": task.task_type,
        "upstream": sorted(task.upstream_task_ids),
        "downstream": sorted(task.downstream_task_ids),
        "task_group": None if group is None or group.is_root else group.group_id,
        "trigger_rule": str(task.trigger_rule),
        "retries": task.retries,
        "is_mapped": bool(getattr(task, "is_mapped", False)),
        "callable": _callable_name(task),
    }
    if getattr(task, "is_mapped", False):
        out["partial_kwargs"] = _plain(getattr(task, "partial_kwargs", {}))
    else:
        out["templates"] = {f: _plain(getattr(task, f, None)) for f in task.template_fields}
    return out


def describe_dag(dag: Any) -> dict[str, Any]:
    """A JSON-able description of a DAG: readable summary plus Airflow's serialized form."""
    from airflow.serialization.serialized_objects import DagSerialization

    summary = {
        "dag_id": dag.dag_id,
        "schedule": _plain(dag.timetable),
        "start_date": _plain(dag.start_date),
        "tags": sorted(dag.tags),
        "description": dag.description,
        "default_args": _plain(dag.default_args),
        "tasks": {t.task_id: describe_task(t) for t in sorted(dag.tasks, key=lambda t: t.task_id)},
    }
    return {"summary": summary, "serialized": _plain(DagSerialization.to_dict(dag))}


def main(argv: list[str]) -> None:
    from airflow.dag_processing.dagbag import DagBag

    out_path, files = argv[0], argv[1:]
    result: dict[str, Any] = {}
    for path in files:
        bag = DagBag(dag_folder=path)
        result[path] = {
            "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
            "dags": {dag_id: describe_dag(dag) for dag_id, dag in sorted(bag.dags.items())},
        }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
