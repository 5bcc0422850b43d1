"""Notebooks for the export tests, built with nbformat at test time.

Cells are written here as plain strings so a reviewer reads them as code; ``build()`` turns
them into a real notebook. ``include(...)`` marks a cell tagged ``kyte-include``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

__all__ = [
    "AIRFLOW_EXAMPLES",
    "PIPELINE",
    "build",
    "example_path",
    "examples_notebook",
    "include",
    "md",
]


class include(str):  # noqa: N801 - reads like a cell marker in the fixtures below
    """Source of a cell tagged ``kyte-include``."""


class md(str):  # noqa: N801
    """Source of a markdown cell."""


def build(cells: list[str], tags: dict[int, list[str]] | None = None) -> NotebookNode:
    """A notebook of these cells (``include``/``md`` strings become tagged/markdown cells)."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for i, source in enumerate(cells):
        if isinstance(source, md):
            nb.cells.append(new_markdown_cell(str(source)))
            continue
        cell = new_code_cell(str(source))
        if isinstance(source, include):
            cell.metadata["tags"] = ["kyte-include"]
        if tags and i in tags:
            cell.metadata["tags"] = tags[i]
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


# A realistic notebook: shared imports and helpers, scratch exploration, a DAG grown over
# several cells (task groups, mapping, branching, templated Bash and SQL, options spread over
# cells), a second grown DAG with no options, and two whole-DAG-file cells.
PIPELINE: list[str] = [
    md("# Orders pipeline\nShared code is tagged `kyte-include`; the rest is exploration."),
    include(
        """\
import json
from datetime import timedelta

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import TaskGroup, task, task_group

LIMIT = 100


def normalize(rows):
    \"\"\"Drop empty rows; keep at most LIMIT.\"\"\"
    return [r for r in rows if r][:LIMIT]
"""
    ),
    """\
# scratch: try the helper on a sample
sample = [1, 0, 2, None, 3]
normalize(sample)
""",
    """\
%%dag orders --schedule @daily --start-date 2024-03-01 --tags orders,daily
@task(retries=3, retry_delay=timedelta(minutes=2))
def extract():
    return normalize([{"id": 1, "amount": 5}, {"id": 2, "amount": 7}, {}])


@task
def split(rows):
    return [[r] for r in rows]


batches = split(extract())
""",
    "%kyte",
    """\
%%dag orders --default-args '{"owner": "data", "retries": 1}'
@task
def score(batch, factor):
    return sum(r["amount"] for r in batch) * factor


scores = score.partial(factor=2).expand(batch=batches)

echo = BashOperator.partial(task_id="echo_batch").expand(
    bash_command=["echo batch {{ ds }} 1", "echo batch {{ ds }} 2"]
)

with TaskGroup("quality", tooltip="checks") as quality:
    not_empty = BashOperator(
        task_id="not_empty",
        bash_command=\"\"\"
            set -e
            if [ "{{ params.min_rows }}" -gt 0 ]; then
                echo "checking {{ ds }}"
            fi
        \"\"\",
        params={"min_rows": 1},
    )
    totals = SQLExecuteQueryOperator(
        task_id="totals",
        conn_id="warehouse",
        sql=\"\"\"
    SELECT '{{ ds }}' AS day, SUM(amount) AS total
    FROM orders
    WHERE created_at >= '{{ data_interval_start }}'
    LIMIT {{ params.limit }}
\"\"\",
        params={"limit": LIMIT},
        parameters={"region": "eu"},
    )
    not_empty >> totals

scores >> quality
""",
    """\
# scratch: look at what we have so far
preview = normalize(sample)
print(json.dumps(preview))
""",
    """\
%%dag orders --description "Daily orders, scored and checked"
@task.branch
def choose(total=None):
    return "publish.upload" if LIMIT > 10 else "skip"


@task_group
def publish(path):
    @task
    def upload(p):
        return p

    @task
    def announce(p):
        print(json.dumps({"uploaded": p}))

    announce(upload(path))


skip = EmptyOperator(task_id="skip")
done = EmptyOperator(task_id="done", trigger_rule="none_failed_min_one_success")
quality >> choose() >> [publish("s3://bucket/{{ ds }}.json"), skip] >> done
""",
    """\
%%dag maintenance
cleanup = BashOperator(task_id="cleanup", bash_command="find /tmp -name '*.tmp' -delete")
vacuum = SQLExecuteQueryOperator(task_id="vacuum", conn_id="warehouse", sql="VACUUM")
cleanup >> vacuum
""",
    """\
%%dag
from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator
from airflow.sdk import DAG

REPORT_ID = "weekly_report"


def pick(**context):
    return "email" if context["params"].get("email") else "archive"


with DAG(
    dag_id=REPORT_ID,
    schedule="0 6 * * 1",
    start_date=None,
    catchup=False,
    params={"email": True},
    tags=["reports"],
) as dag:
    branch = BranchPythonOperator(task_id="branch", python_callable=pick)
    email = PythonOperator(
        task_id="email", python_callable=print, op_kwargs={"to": "team@example.com"}
    )
    archive = BashOperator(task_id="archive", bash_command="echo archive {{ ds_nodash }}")
    branch >> [email, archive]
""",
    """\
%%dag
from airflow.sdk import dag


@dag(schedule=None, tags=["adhoc"])
def adhoc_backfill():
    \"\"\"Backfill one day of orders on demand.\"\"\"

    @task
    def days():
        return ["2024-01-01", "2024-01-02"]

    @task(max_active_tis_per_dag=1)
    def reload(day):
        return normalize([day])

    reload.expand(day=days())


adhoc_backfill()
""",
    "!echo scratch shell command",
]


# Airflow's own example DAG files, pasted whole into %%dag cells. Chosen to cover the classic
# operators, task groups (nested and decorated), TaskFlow, branching, mapping (three DAGs in
# one file), setup/teardown and XComArgs; all parse in a clean home without extra files.
AIRFLOW_EXAMPLES: list[str] = [
    "providers/standard/example_dags/example_bash_operator.py",
    "example_dags/example_task_group.py",
    "example_dags/example_task_group_decorator.py",
    "example_dags/tutorial_taskflow_api.py",
    "example_dags/tutorial.py",
    "providers/standard/example_dags/example_branch_operator.py",
    "providers/standard/example_dags/example_branch_operator_decorator.py",
    "example_dags/example_dynamic_task_mapping.py",
    "example_dags/example_setup_teardown_taskflow.py",
    "example_dags/example_xcomargs.py",
]


def example_path(relative: str) -> Path:
    """Where an example DAG file is installed (found without importing Airflow)."""
    spec = importlib.util.find_spec("airflow")
    assert spec is not None and spec.submodule_search_locations, "Airflow is not installed"
    return Path(list(spec.submodule_search_locations)[0]) / relative


def examples_notebook() -> NotebookNode:
    """A notebook with each example DAG file pasted into its own ``%%dag`` cell."""
    cells: list[str] = [md("# Airflow's examples, pasted")]
    for relative in AIRFLOW_EXAMPLES:
        cells.append(md(f"`{relative}`"))
        cells.append("%%dag\n" + example_path(relative).read_text(encoding="utf-8"))
    return build(cells)
