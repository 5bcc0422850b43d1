"""Run the lint library in this process (Airflow imported here) and print one JSON line.

Called by tests/test_lint.py in a subprocess with its own AIRFLOW_HOME:
``run_library.py NOTEBOOK POLICY_MODULE``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

from kyte_jupyter.lint import CellSource, Finding, LintConfig, lint_dag, render_fields
from kyte_jupyter.lint.notebook import lint_notebook
from kyte_jupyter.lint.sql import dialect_of

BAD_SCHEDULE = (
    'with DAG("bad", schedule="not a cron") as bad:\n'
    '    BashOperator(task_id="t", bash_command="true")\n'
)
PARAMS = (
    "with DAG(\n"
    '    "params", params={"used": 1, "unused": 2}) as params:\n'
    '    BashOperator(task_id="t", bash_command="echo {{ params.used }} {{ params.typo }}")\n'
)
NO_START = (
    "# a scheduled DAG\n"
    'with DAG("nostart", schedule="@daily") as nostart:\n'
    '    BashOperator(task_id="t", bash_command="true")\n'
)
OK = (
    'with DAG("ok", schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),'
    ' params={"n": 1}) as ok:\n'
    '    BashOperator(task_id="t", bash_command="echo {{ ds }} {{ params.n }}")\n'
    '    SQLExecuteQueryOperator(task_id="q", conn_id="warehouse", sql="SELECT 1")\n'
)


def build(code: str, number: int) -> tuple[Any, CellSource]:
    ns: dict[str, Any] = {
        "DAG": DAG,
        "BashOperator": BashOperator,
        "SQLExecuteQueryOperator": SQLExecuteQueryOperator,
        "pendulum": pendulum,
    }
    exec(compile(code, f"<cell {number}>", "exec"), ns)
    dag = next(v for v in ns.values() if isinstance(v, DAG))
    return dag, CellSource(code, 1, number)


def dump(findings: list[Finding]) -> list[dict[str, Any]]:
    return [f.model_dump() for f in findings]


def main() -> None:
    notebook, policy = sys.argv[1], Path(sys.argv[2])
    out: dict[str, Any] = {}
    out["notebook"] = dump(lint_notebook(notebook, LintConfig(policy_module=policy)).findings)

    checks: list[Finding] = []
    for code, number in ((BAD_SCHEDULE, 5), (PARAMS, 7), (NO_START, 8)):
        dag, cell = build(code, number)
        checks += lint_dag(dag, [cell])
    out["dag_checks"] = dump(checks)
    ok, ok_cell = build(OK, 9)
    out["ok_dag"] = dump(lint_dag(ok, [ok_cell]))

    rendered = render_fields(
        ok, "t", logical_date=pendulum.datetime(2026, 3, 4, tz="UTC"), conf={"n": 7}
    )
    out["render"] = {
        name: {"value": str(f.value), "error": f.error} for name, f in rendered.fields.items()
    }
    query = ok.get_task("q")
    out["dialect"] = dialect_of(query, LintConfig())
    out["dialect_override"] = dialect_of(query, LintConfig(sql_dialects={"warehouse": "snowflake"}))
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
