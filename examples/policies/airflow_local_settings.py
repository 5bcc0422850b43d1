"""An example of a deployment's cluster policies (``airflow_local_settings.py``).

Airflow applies ``dag_policy`` to every DAG and ``task_policy`` to every task when it parses a
DAG file; a policy that raises ``AirflowClusterPolicyViolation`` keeps the DAG out of the
deployment (an import error in the UI). Kyte applies the same functions to notebook DAGs when
the ``policy_module`` setting names this file, so a DAG the deployment would reject is flagged
in the notebook (see docs/operator-guide.md).

Each message starts with a ``[rule]`` tag; Kyte reports it as the rule's name
(``dag_policy:owner-required``), so a user knows which rule and an operator can turn one off.
"""

from __future__ import annotations

from typing import Any

from airflow.exceptions import AirflowClusterPolicyViolation

DEFAULT_OWNER = "airflow"
MAX_CATCHUP_RUNS = 3


def dag_policy(dag: Any) -> None:
    """Every DAG has tags; catchup only with a low ``max_active_runs``."""
    if not dag.tags:
        raise AirflowClusterPolicyViolation(
            f"[tags-required] DAG {dag.dag_id!r} has no tags; add tags=[...] (team, domain) "
            "so it can be found in the UI."
        )
    # max_active_runs defaults to [core] max_active_runs_per_dag (16): catching up needs less.
    if dag.catchup and (dag.max_active_runs or 0) > MAX_CATCHUP_RUNS:
        raise AirflowClusterPolicyViolation(
            f"[catchup-needs-max-active-runs] DAG {dag.dag_id!r} sets catchup=True with "
            f"max_active_runs={dag.max_active_runs}; set max_active_runs to at most "
            f"{MAX_CATCHUP_RUNS}, or catching up starts that many missed runs at once."
        )


def task_policy(task: Any) -> None:
    """Every task has a real owner (not Airflow's default ``airflow``)."""
    owner = (getattr(task, "owner", None) or "").strip()
    if not owner or owner == DEFAULT_OWNER:
        raise AirflowClusterPolicyViolation(
            f"[owner-required] task {task.task_id!r} has no owner; set default_args="
            '{"owner": "<team>"} on the DAG or owner=... on the task.'
        )
