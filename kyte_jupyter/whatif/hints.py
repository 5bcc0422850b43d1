"""Say why a task downstream of a ``--succeed`` task did not run, and what to force instead.

``--succeed T`` marks ``T`` success without running it, as ``dag.test(mark_success_pattern=…)``
does, so ``T`` pushes no XCom. Airflow then decides its downstream as it would for any task
whose XCom is missing, and the states stay what ``dag.test()`` gives:

* a mapped task whose expansion needs ``T``'s XCom cannot expand, and Airflow marks it
  ``upstream_failed`` although every upstream task succeeded (its only word is an error line
  in the scheduler's log);
* a task whose arguments pull ``T``'s XCom gets ``None`` (Airflow logs "XCom not found") and
  often fails on it.

Neither tells the user that ``--xcom T=VALUE`` (succeed *and* return a value) was what they
wanted; :func:`missing_xcom_hints` does, one line per task instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["missing_xcom_hints"]


def missing_xcom_hints(
    dag: Any,
    states: Mapping[str, str],
    forced: Mapping[str, str],
) -> dict[str, str]:
    """A hint per task instance that ended without its ``--succeed`` upstream's XCom.

    ``states`` are the run's final task instance states (``task`` or ``task[i]`` -> state),
    ``forced`` the instances whose outcome was forced (key -> ``"succeed"``, ``"fail"`` …).
    Only direct downstream tasks of a task forced ``succeed`` as a whole are considered; what
    they pass on is Airflow's ordinary cascade.
    """
    from ..runner.plan import is_mapped
    from ..runner.summary import split_key

    succeeded = {key for key, how in forced.items() if how == "succeed" and "[" not in key}
    if not succeeded:
        return {}
    by_task: dict[str, list[str]] = {}
    for key, state in states.items():
        by_task.setdefault(split_key(key)[0], []).append(state)
    hints: dict[str, str] = {}
    for key, state in states.items():
        task_id, map_index = split_key(key)
        task = dag.task_dict.get(task_id)
        if task is None or key in forced:
            continue
        feeders = sorted(succeeded & set(task.upstream_task_ids))
        if not feeders:
            continue
        upstream_states = [s for up in task.upstream_task_ids for s in by_task.get(up, [])]
        if (state == "upstream_failed" and map_index < 0 and is_mapped(task)
                and all(s in ("success", "skipped") for s in upstream_states)):
            # Every upstream ended well, yet the task never expanded: its map input is missing.
            hints[key] = (
                f"{_names(feeders)} {_was(feeders)} forced --succeed (marked success without "
                f"running), so it pushed no XCom and {task_id!r} had nothing to map over: "
                f"Airflow marks it upstream_failed, as dag.test() does. To map over values, "
                f"force them instead: {_xcom_option(feeders, mapped=True)}."
            )
        elif state == "failed":
            # Airflow resolves a missing XCom argument to None: the task's own code failed.
            hints[key] = (
                f"{_names(feeders)} {_was(feeders)} forced --succeed and pushed no XCom; "
                f"if {task_id!r} uses it, force the value instead: "
                f"{_xcom_option(feeders, mapped=False)}."
            )
    return hints


def _names(task_ids: list[str]) -> str:
    return ", ".join(repr(t) for t in task_ids)


def _was(task_ids: list[str]) -> str:
    return "was" if len(task_ids) == 1 else "were"


def _xcom_option(task_ids: list[str], mapped: bool) -> str:
    value = "[1, 2]" if mapped else "VALUE"
    return " ".join(f"--xcom '{t}={value}'" for t in task_ids) + (
        " (any JSON list or dict to map over)" if mapped else " (VALUE: JSON)")
