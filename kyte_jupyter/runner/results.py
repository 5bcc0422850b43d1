"""Reading what a run left: XCom values, with messages that say what is there."""

from __future__ import annotations

from typing import Any

from ..bridge import runs
from .plan import RunError


def read_xcom(
    dag_id: str, task_id: str, *, mapped: bool | None = None, key: str = "return_value",
    map_index: int | None = None, run_id: str | None = None,
) -> Any:
    """The XCom a task pushed in a run (default: the notebook's latest run of its DAG).

    Reads the metastore only, so it works after a kernel restart without the DAG's cells.
    ``mapped`` says whether the task is mapped when the DAG is defined in this kernel; with
    ``None`` it is judged from the task's instances in the run. A mapped task's values come
    as a list in map order (``[]`` for a map over an empty input), one instance's with
    ``map_index``. Raises :class:`RunError` saying what exists when there is no such value.
    """
    if map_index is not None and mapped is False:
        raise RunError(f"Task {task_id!r} is not mapped, so --map-index does not apply.")
    with runs.db_session() as db:
        dr = runs.get_run(dag_id, run_id, db) if run_id else runs.latest_run(dag_id, db)
        if dr is None:
            if run_id:
                raise RunError(f"DAG {dag_id!r} has no run {run_id!r} in this notebook.")
            raise RunError(
                f"DAG {dag_id!r} has not run yet in this notebook. Run "
                f"`%run_task {dag_id} {task_id}` first."
            )
        states = runs.ti_states(dag_id, dr.run_id, task_id, db)
        if mapped is None:
            mapped = any(i >= 0 for i in states)
        found, value = runs.xcom_value(dag_id, dr.run_id, task_id, key, map_index, db)
        if found:
            if mapped and map_index is None and not isinstance(value, list):
                value = [value]
            return value
    instances = sorted(i for i, s in states.items() if i >= 0 and s != "removed")
    if mapped and map_index is None and states and not instances and set(
        states.values()
    ) <= {"skipped"}:
        return []  # a map over an empty input: Airflow skipped it, and it has no values
    if map_index is not None and map_index not in instances and states:
        if not instances:
            raise RunError(
                f"Task {task_id!r} has no mapped instances in run {dr.run_id} (it "
                f"{_state_phrase(states)}), so --map-index {map_index} does not exist."
            )
        span = f"{instances[0]}" if len(instances) == 1 else f"{instances[0]}-{instances[-1]}"
        raise RunError(
            f"Task {task_id!r} has {len(instances)} mapped instance"
            f"{'' if len(instances) == 1 else 's'} in run {dr.run_id} (map index {span}): "
            f"--map-index {map_index} is out of range."
        )
    ran = [s for s in states.values() if s not in ("none", "scheduled", "queued")]
    if ran:
        which = states.get(map_index if map_index is not None else -1)
        state = which or _state_phrase(states)
        raise RunError(
            f"Task {task_id!r} has no XCom {key!r} in run {dr.run_id}: it ran and ended "
            f"{state}, without pushing one."
        )
    raise RunError(
        f"Task {task_id!r} has no XCom {key!r} in run {dr.run_id}: it has not run there. "
        f"Try `%run_task {dag_id} {task_id}`."
    )


def _state_phrase(states: dict[int, str]) -> str:
    values = sorted(set(states.values()))
    return values[0] if len(values) == 1 else "in states " + ", ".join(values)
