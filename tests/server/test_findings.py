"""Static-check findings reach the REST API: a real notebook kernel lints its ``%%dag`` cells,
writes the findings into the graph snapshots, and ``GET /kyte/sessions/{id}/dags`` serves them
(the sidebar's badges). Cluster policies come from the ``policy_module`` setting.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from test_extension import _execute, write_notebook

POLICY = Path(__file__).resolve().parents[2] / "examples" / "policies" / "airflow_local_settings.py"

HEAD = (
    "%%dag {dag_id} --schedule @daily --start-date 2026-01-01 --tags sales "
    '--default-args \'{{"owner": "data"}}\'\n'
    "from airflow.providers.standard.operators.bash import BashOperator\n"
)

# The five kinds of problem, one each: a deprecated Airflow import (AIR311),
# an undefined Jinja variable (task extract, field bash_command), a missing .sql template
# file (task report), a policy violation (task notify keeps Airflow's default owner) and,
# in the DAG sqlbad below, a SQL syntax error after templating.
PROBLEMS = HEAD.format(dag_id="checks") + (
    "from airflow.models.baseoperator import chain\n"
    "from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator\n"
    'extract = BashOperator(task_id="extract", bash_command="echo {{ ds }} {{ batch_size }}")\n'
    'report = SQLExecuteQueryOperator(task_id="report", conn_id="warehouse", '
    'sql="reports/missing.sql")\n'
    'notify = BashOperator(task_id="notify", bash_command="echo done", owner="airflow")\n'
    "chain(extract, report, notify)\n"
)
CHECKS = {
    ("warning", "airflow", "AIR311", None, None),
    ("error", "templates", "undefined", "extract", "bash_command"),
    ("error", "templates", "missing-template", "report", "sql"),
    ("error", "policy", "task_policy:owner-required", "notify", None),
}

CLEAN = HEAD.format(dag_id="clean") + (
    'extract = BashOperator(task_id="extract", bash_command="echo {{ ds }}")\n'
)

# A SQL syntax error: found once sqlfluff has loaded (in the background, after the cell, for
# a kernel's first %%dag cell).
SQL = HEAD.format(dag_id="sqlbad") + (
    "from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator\n"
    'load = SQLExecuteQueryOperator(task_id="load", conn_id="warehouse", '
    "sql=\"SELECT id FROM WHERE day = '{{ ds }}'\")\n"
)


def _keys(findings: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(f["severity"], f["check"], f["rule"], f["task_id"], f["field"]) for f in findings}


# A loaded test machine can take longer than dagbag_import_timeout for a kernel's first %%dag
# (Airflow's import and metastore sync count too): that finding is not what this test is about.
CONFIG = {
    "policy_module": str(POLICY),
    "extra_env": {"AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600"},
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kyte_extension_config", [CONFIG], indirect=True)
async def test_dags_reply_carries_the_kernels_findings(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    write_notebook(jp_root_dir / "lint.ipynb", PROBLEMS, CLEAN, SQL)
    body = {"path": "lint.ipynb", "name": "lint.ipynb", "type": "notebook",
            "kernel": {"name": "python3"}}  # fmt: skip
    model = json.loads((await jp_fetch("api", "sessions", method="POST",
                                       body=json.dumps(body))).body)  # fmt: skip
    kc = jp_serverapp.kernel_manager.get_kernel(model["kernel"]["id"]).client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=90)
        # policy_module reached the kernel as KYTE_POLICY_MODULE.
        out = await _execute(kc, "import os; print(os.environ['KYTE_POLICY_MODULE'])")
        assert out.strip() == str(POLICY)
        # The SQL cell first: the kernel's first %%dag starts loading sqlfluff, so its SQL is
        # checked after the cell returned, in the background.
        for source in (SQL, PROBLEMS, CLEAN):
            await _execute(kc, source)
        sessions = json.loads((await jp_fetch("kyte", "sessions",
                                              params={"path": "lint.ipynb"})).body)  # fmt: skip
        sid = sessions[0]["id"]

        async def dags() -> dict[str, dict[str, Any]]:
            reply = json.loads((await jp_fetch("kyte", "sessions", sid, "dags")).body)
            return {d["dag_id"]: d for d in reply}

        got = await dags()
        found = got["checks"]["findings"]
        assert _keys(found) == CHECKS, json.dumps(found, indent=1)
        by_rule = {f["rule"]: f for f in found}
        assert "batch_size" in by_rule["undefined"]["message"]
        assert "missing.sql" in by_rule["missing-template"]["message"]
        # ruff reports the deprecated name where it is used (chain(...), line 8).
        assert by_rule["AIR311"]["line"] == 8 and by_rule["undefined"]["line"] == 5
        assert by_rule["task_policy:owner-required"]["line"] == 7
        assert all(f["dag_id"] == "checks" for f in found)
        assert got["clean"]["findings"] == []

        # The SQL check may finish after its cell returned: the snapshot is updated then.
        for _ in range(300):
            sql = got["sqlbad"]["findings"]
            if sql:
                break
            await asyncio.sleep(0.2)
            got = await dags()
        assert _keys(sql) == {("error", "sql", "PRS", "load", "sql")}, json.dumps(sql, indent=1)

        # %lint writes the snapshot too: with the policy rule turned off, its finding goes.
        await _execute(
            kc, "os.environ['KYTE_LINT_DISABLE'] = 'task_policy:owner-required'\n%lint checks"
        )
        got = await dags()
        assert _keys(got["checks"]["findings"]) == CHECKS - {
            ("error", "policy", "task_policy:owner-required", "notify", None)}
    finally:
        kc.stop_channels()
        await jp_fetch("api", "sessions", model["id"], method="DELETE")
