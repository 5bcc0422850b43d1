"""Static checks (SPEC §8, issue 16) with real Airflow, real ruff and real sqlfluff.

Airflow reads its configuration when first imported, so everything that imports it runs in a
subprocess with its own ``AIRFLOW_HOME``: the CLI (``python -m kyte_jupyter.cli lint``) and
``tests/lint/run_library.py`` for the library calls. Each runs once per module (fixtures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "examples" / "policies" / "airflow_local_settings.py"
LIBRARY_SCRIPT = Path(__file__).parent / "lint" / "run_library.py"

INCLUDE = """\
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.standard.operators.bash import BashOperator
"""

DAG_LINE = (
    "%%dag orders --schedule @daily --start-date 2026-01-01 --tags sales "
    '--default-args \'{"owner": "data"}\''
)

SQL = "SELECT id FROM orders WHERE customer = '{{ params.customer }}' AND day = '{{ ds }}'"


def cell(*lines: str) -> str:
    """A cell's source from its lines."""
    return "\n".join(lines) + "\n"


# One of each problem, each on its own line of cell 3 (the %%dag line is line 1).
PROBLEMS = cell(
    DAG_LINE,
    "from airflow.models.baseoperator import chain",
    "",
    'extract = BashOperator(task_id="extract", bash_command="echo {{ ds }} {{ batch_size }}")',
    f'load = SQLExecuteQueryOperator(task_id="load", conn_id="warehouse", sql="{SQL}", '
    """params={"customer": "O'Brien"})""",
    'report = SQLExecuteQueryOperator(task_id="report", conn_id="warehouse", '
    'sql="reports/missing.sql")',
    'notify = BashOperator(task_id="notify", bash_command="echo done", owner="airflow")',
    "chain(extract, load, report, notify)",
)

CLEAN = cell(
    DAG_LINE,
    "from airflow.sdk import chain",
    "",
    'extract = BashOperator(task_id="extract", bash_command="echo {{ ds }} '
    '{{ params.batch_size }}", params={"batch_size": 10})',
    f'load = SQLExecuteQueryOperator(task_id="load", conn_id="warehouse", sql="{SQL}", '
    """params={"customer": "O''Brien"})""",
    'report = SQLExecuteQueryOperator(task_id="report", conn_id="warehouse", '
    'sql="reports/daily.sql")',
    'notify = BashOperator(task_id="notify", bash_command="echo done")',
    "chain(extract, load, report, notify)",
)

DAILY_SQL = "SELECT day, SUM(amount)\nFROM orders\nWHERE day = '{{ ds }}'\nGROUP BY day\n"

# (check, rule, task_id, field, cell, line) of every finding PROBLEMS must produce, no more.
EXPECTED = {
    ("airflow", "AIR311", None, None, 3, 8),
    ("templates", "undefined", "extract", "bash_command", 3, 4),
    ("sql", "PRS", "load", "sql", 3, 5),
    ("templates", "missing-template", "report", "sql", 3, 6),
    ("policy", "task_policy:owner-required", "notify", None, 3, 7),
}


def write_notebook(folder: Path, name: str, dag_cell: str, extra: Sequence[str] = ()) -> Path:
    """A notebook: a markdown cell, a kyte-include cell, the %%dag cell, scratch cells."""
    v4: Any = nbformat.v4
    include = v4.new_code_cell(INCLUDE)
    include.metadata["tags"] = ["kyte-include"]
    nb = v4.new_notebook()
    nb.cells = [
        v4.new_markdown_cell("# Orders"),
        include,
        v4.new_code_cell(dag_cell),
        *(v4.new_code_cell(c) for c in extra),
    ]
    path = folder / name
    write: Any = nbformat.write
    write(nb, path)
    return path


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a subprocess that imports Airflow, with its own home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "KYTE"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )
    env.update(extra)
    return env


def run_cli(args: list[str], home: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``jupyter kyte lint …`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "kyte_jupyter.cli", "lint", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=airflow_env(home, **env),
        timeout=300,
        check=False,
    )


def keys(findings: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """The identifying parts of findings, as in EXPECTED."""
    return {
        (f["check"], f["rule"], f["task_id"], f["field"], f["cell"], f["line"]) for f in findings
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the problem and clean notebooks and the clean one's .sql file."""
    folder = tmp_path_factory.mktemp("lint")
    write_notebook(folder, "problems.ipynb", PROBLEMS)
    write_notebook(folder, "clean.ipynb", CLEAN, extra=["%run_dag orders"])
    sql = folder / "dags" / "reports" / "daily.sql"
    sql.parent.mkdir(parents=True)
    sql.write_text(DAILY_SQL)
    (folder / "home").mkdir()
    return folder


@pytest.fixture(scope="module")
def problems_json(workdir: Path) -> tuple[int, dict[str, Any]]:
    """``jupyter kyte lint problems.ipynb --format json --policy-module …``."""
    proc = run_cli(
        ["problems.ipynb", "--format", "json", "--policy-module", str(POLICY)],
        workdir / "home",
        workdir,
    )
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def library(workdir: Path) -> dict[str, Any]:
    """What tests/lint/run_library.py reports (the library called directly)."""
    proc = subprocess.run(
        [sys.executable, str(LIBRARY_SCRIPT), str(workdir / "problems.ipynb"), str(POLICY)],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=airflow_env(
            workdir / "home", AIRFLOW_CONN_WAREHOUSE="postgres://u:p@db.example:5432/shop"
        ),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_cli_json_has_exactly_the_problems(problems_json: tuple[int, dict[str, Any]]) -> None:
    code, payload = problems_json
    assert code == 1
    assert payload["dag_ids"] == ["orders"]
    assert keys(payload["findings"]) == EXPECTED, json.dumps(payload["findings"], indent=1)
    assert payload["errors"] == 4 and payload["warnings"] == 1  # AIR311 works, is a warning
    by_rule = {f["rule"]: f for f in payload["findings"]}
    assert "batch_size" in by_rule["undefined"]["message"]
    assert "missing.sql" in by_rule["missing-template"]["message"]
    assert by_rule["PRS"]["field_line"] == 1
    assert "SQL line 1" in by_rule["PRS"]["message"]
    assert "owner-required" in by_rule["task_policy:owner-required"]["message"]
    assert all(f["dag_id"] == "orders" for f in payload["findings"])
    assert all(f["cell_id"] for f in payload["findings"])


def test_library_finds_the_same(library: dict[str, Any]) -> None:
    assert keys(library["notebook"]) == EXPECTED


def test_clean_notebook_has_no_findings(workdir: Path) -> None:
    proc = run_cli(["clean.ipynb", "--policy-module", str(POLICY)], workdir / "home", workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines() == ["0 error(s), 0 warning(s) in DAGs: orders"]


def test_disable_turns_checks_off(workdir: Path) -> None:
    proc = run_cli(
        [
            "problems.ipynb",
            "--format",
            "json",
            "--disable",
            "templates",
            "--disable",
            "sql",
            "--disable",
            "AIR311",
        ],
        workdir / "home",
        workdir,
    )
    payload = json.loads(proc.stdout)
    assert keys(payload["findings"]) == set()  # no policy module given: no policy finding
    assert proc.returncode == 0


def test_render_fields_renders_the_next_logical_date(library: dict[str, Any]) -> None:
    rendered = library["render"]
    assert rendered["bash_command"] == {"value": "echo 2026-03-04 7", "error": None}
    assert rendered["env"] == {"value": "None", "error": None}


def test_sql_dialect_comes_from_the_connection(library: dict[str, Any]) -> None:
    assert library["dialect"] == "postgres"
    assert library["dialect_override"] == "snowflake"


def test_dag_level_checks(library: dict[str, Any]) -> None:
    assert keys(library["dag_checks"]) == {
        ("dag", "invalid-schedule", None, None, 5, 1),
        ("dag", "undeclared-param", "t", "bash_command", 7, 3),
        ("dag", "unused-param", None, "params", 7, 1),
        ("dag", "missing-start-date", None, None, 8, 2),
    }
    assert keys(library["ok_dag"]) == set()


def test_slow_top_level_code_is_an_error(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path,
        "slow.ipynb",
        '%%dag slow --default-args \'{"owner": "x"}\'\n'
        "import time\n\ntime.sleep(1.5)\nBashOperator(task_id='t', bash_command='true')\n",
    )
    (tmp_path / "home").mkdir()
    proc = run_cli(
        [nb.name, "--format", "json"],
        tmp_path / "home",
        tmp_path,
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="1",
    )
    payload = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert keys(payload["findings"]) == {("dag", "import-timeout", None, None, 3, 4)}


def test_export_refuses_on_errors_unless_no_lint(workdir: Path) -> None:
    out = workdir / "exported"
    cmd = [sys.executable, "-m", "kyte_jupyter.cli", "export", "problems.ipynb", "-o", str(out)]
    env = airflow_env(workdir / "home", KYTE_POLICY_MODULE=str(POLICY))
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=workdir, env=env, timeout=300, check=False
    )
    assert proc.returncode == 1, proc.stderr
    assert "4 error(s) found by jupyter kyte lint" in proc.stderr
    for rule in ("undefined", "PRS", "missing-template", "task_policy:owner-required"):
        assert f"- {rule} cell 3" in proc.stderr
    assert "Nothing was written" in proc.stderr and not out.exists()
    proc = subprocess.run(
        [*cmd, "--no-lint"], capture_output=True, text=True, cwd=workdir, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "orders.py").is_file()


def test_template_files_next_to_the_notebook_are_found(workdir: Path, tmp_path: Path) -> None:
    """The notebook's folder is the DAG file's folder (11.3): its .sql files pass the check."""
    write_notebook(tmp_path, "beside.ipynb", CLEAN)
    sql = tmp_path / "reports" / "daily.sql"
    sql.parent.mkdir()
    sql.write_text(DAILY_SQL)
    proc = run_cli(["beside.ipynb", "--policy-module", str(POLICY)], workdir / "home", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "missing" not in proc.stdout


def test_cli_refuses_a_dialect_sqlfluff_does_not_know(workdir: Path) -> None:
    proc = run_cli(["problems.ipynb", "--dialect", "warehouse=notadialect"],
                   workdir / "home", workdir)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--dialect warehouse=notadialect: sqlfluff has no dialect 'notadialect'" in proc.stderr
    assert "postgres" in proc.stderr and "snowflake" in proc.stderr  # sqlfluff's own list


def test_cli_takes_the_servers_policy_module(workdir: Path, tmp_path: Path) -> None:
    """As notebook kernels get KyteExtensionApp.policy_module, so does jupyter kyte lint."""
    config = tmp_path / "jupyter-config"
    config.mkdir()
    (config / "jupyter_server_config.py").write_text(
        f"c.KyteExtensionApp.policy_module = {str(POLICY)!r}\n")
    proc = run_cli(["problems.ipynb", "--format", "json", "--disable", "templates",
                    "--disable", "sql", "--disable", "AIR311"],
                   workdir / "home", workdir, JUPYTER_CONFIG_DIR=str(config))
    payload = json.loads(proc.stdout)
    assert {f["rule"] for f in payload["findings"]} == {"task_policy:owner-required"}


RAISES = cell("%%dag", "import json", 'CONFIG = json.loads("{not json")')


def test_cli_shows_the_exception_of_a_cell_that_raises(workdir: Path) -> None:
    write_notebook(workdir, "raises.ipynb", RAISES)
    proc = run_cli(["raises.ipynb", "--format", "json"], workdir / "home", workdir)
    payload = json.loads(proc.stdout)
    (finding,) = payload["findings"]
    assert finding["rule"] == "import-error" and finding["cell"] == 3, finding
    assert "this %%dag cell raises when run" in finding["message"]
    assert "JSONDecodeError" in finding["message"] and "defines no DAG that" not in str(payload)
