"""Template files next to the notebook are found from the exported DAG file (issue 11.3).

In the notebook, the notebook's folder is the DAG file's folder. The exported files land in
``dags/`` next to the notebook, so they get ``template_searchpath`` holding the notebook's
folder, relative to ``__file__``. The oracle is a stock ``DagBag`` parsing the export and
``dag.test()`` running it in a clean Airflow home whose working directory is elsewhere: the
templated fields must render from ``report.sql`` and ``hello.sh`` next to the notebook.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from kyte_jupyter.export import build_dag_files, export_notebook
from kyte_jupyter.export.templates import TemplateFolder
from kyte_jupyter.session import SessionStore

FIXTURES = Path(__file__).parent / "export_fixtures"
CASE = FIXTURES / "template_files"
sys.path.insert(0, str(FIXTURES))

from notebooks import build  # noqa: E402

SEARCHPATH = 'template_searchpath=[os.path.join(os.path.dirname(__file__), "..")]'

# The same two tasks grown over `%%dag DAG_ID` cells (params on the task: no DAG option).
GROWN = [
    "%%dag c13_grown --start-date 2025-01-01\n"
    "from airflow.providers.standard.operators.bash import BashOperator\n"
    "from airflow.providers.standard.operators.python import PythonOperator\n\n\n"
    "def show(templates_dict=None, **_):\n"
    "    return templates_dict['query']\n\n\n"
    "render_sql = PythonOperator(task_id='render_sql', python_callable=show,\n"
    "    templates_dict={'query': 'report.sql'}, templates_exts=['.sql'],\n"
    "    params={'region': 'north'})",
    "%%dag c13_grown\nrender_sql >> BashOperator(task_id='run_script', bash_command='hello.sh')",
]


def notebook_with_templates(folder: Path) -> Path:
    """``folder/etl.ipynb``: the case's DAG file as a cell, a grown copy, and the files."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("report.sql", "hello.sh"):
        shutil.copy(CASE / name, folder / name)
    source = (CASE / "c13_template_files.py").read_text()
    path = folder / "etl.ipynb"
    nbformat.write(build(["%%dag\n" + source, *GROWN]), path)
    return path


# The oracle, run with a stock Airflow in a clean home whose DAGs folder (the bundle dag.test()
# syncs) is the export: DagBag, then dag.test() per DAG.
RUN = """
import json, sqlite3, sys
from airflow.dag_processing.dagbag import DagBag

out, db, folder = sys.argv[1:]
bag = DagBag(dag_folder=folder)
result = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id in sorted(bag.dag_ids):
    run = bag.get_dag(dag_id).test()
    with sqlite3.connect(db) as conn:
        states = dict(conn.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (dag_id, run.run_id)).fetchall())
        rows = conn.execute(
            "SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? "
            "AND key = 'return_value'", (dag_id, run.run_id)).fetchall()
    xcoms = {task: json.loads(value) for task, value in rows}
    result["dags"][dag_id] = {"run": run.state, "states": states, "xcoms": xcoms}
json.dump(result, open(out, "w"), default=str)
"""


def run_with_stock_airflow(folder: Path, work: Path, template_root: Path) -> dict[str, Any]:
    """Parse and ``dag.test()`` every DAG of ``folder`` in a fresh Airflow home."""
    home = work / f"airflow-home-{folder.name}"
    home.mkdir()
    db = home / "airflow.db"
    shutil.copyfile(SessionStore(template_root).template_db(), db)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "KYTE_", "JPY_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(folder),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{db}",
    )
    out = home / "result.json"
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(out), str(db), str(folder)],
        cwd=home,  # not the notebook's folder: nothing may be found through the working dir
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_exported_dags_find_template_files_next_to_the_notebook(
    tmp_path: Path, template_root: Path
) -> None:
    nb = notebook_with_templates(tmp_path / "proj")
    files = export_notebook(nb)
    dags = nb.parent / "dags"
    assert files == [dags / "c13_template_files.py", dags / "c13_grown.py"]
    for f in files:
        text = f.read_text()
        assert SEARCHPATH in text and "\nimport os\n" in text
    assert not (dags / "report.sql").exists(), "the files are found, not copied"
    # Control: the same files without the search path, as export wrote them before.
    plain = tmp_path / "plain"
    plain.mkdir()
    for f in build_dag_files(nbformat.read(nb, as_version=4), nb.name):
        assert "template_searchpath=" not in f.source
        (plain / f.filename).write_text(f.source)

    exported = run_with_stock_airflow(dags, tmp_path, template_root)
    assert exported["import_errors"] == {}
    for dag_id in ("c13_template_files", "c13_grown"):
        got = exported["dags"][dag_id]
        assert got["run"] == "success", got
        assert got["states"] == {"render_sql": "success", "run_script": "success"}
        sql, script = got["xcoms"]["render_sql"], got["xcoms"]["run_script"]
        assert re.fullmatch(
            r"SELECT \* FROM sales WHERE day = '[-\d]{10}' AND region = 'north'", sql
        )
        assert re.fullmatch(r"hello from script on \d{8}", script)
    # Without the search path a stock Airflow does not find them: the test can fail.
    control = run_with_stock_airflow(plain, tmp_path, template_root)
    for dag_id in ("c13_template_files", "c13_grown"):
        assert control["dags"][dag_id]["run"] == "failed"
        assert control["dags"][dag_id]["states"]["render_sql"] == "failed"


def cell_file(code: str, folder: Path, relative: str = "..") -> str:
    """The exported file of one whole-DAG-file cell, with the notebook in ``folder``."""
    templates = TemplateFolder(folder, relative)
    (source,) = [
        f.source
        for f in build_dag_files(build(["%%dag\n" + code]), "nb.ipynb", templates=templates)
    ]
    compile(source, "exported.py", "exec")
    return source


def dag_calls(source: str) -> dict[str, str]:
    """``template_searchpath`` of every DAG call or ``@dag`` decorator, as source text."""
    out = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("DAG", "dag"):
            kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
            out[ast.unparse(node.args[0]) if node.args else "?"] = kw.get("template_searchpath", "")
    return out


HEAD = (
    "from airflow.sdk import DAG, dag\n"
    "from airflow.providers.standard.operators.bash import BashOperator\n"
)
NOTEBOOK_DIR = "[os.path.join(os.path.dirname(__file__), '..')]"


@pytest.mark.parametrize(
    "call",
    [
        'with DAG("d", schedule=None):\n    BashOperator(task_id="t", bash_command="hello.sh")',
        'with DAG("d",):\n    BashOperator(task_id="t", bash_command="hello.sh")',
        'with DAG(\n    "d",\n    schedule=None,\n):\n'
        '    BashOperator(task_id="t", bash_command="hello.sh")',
        'with DAG(\n    "d",\n    schedule=None  # no comma, a comment\n):\n'
        '    BashOperator(task_id="t", bash_command="hello.sh")',
    ],
)
def test_dag_calls_get_the_notebook_folder_whatever_their_layout(tmp_path: Path, call: str) -> None:
    (tmp_path / "hello.sh").write_text("echo hi\n")
    source = cell_file(HEAD + call, tmp_path)
    assert dag_calls(source) == {"'d'": NOTEBOOK_DIR}
    assert source.count("import os\n") == 1


def test_dag_decorators_and_relative_searchpath_entries_are_anchored_at_the_notebook(
    tmp_path: Path,
) -> None:
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "q.sql").write_text("SELECT 1\n")
    code = (
        HEAD + "import os\n\n\n@dag\ndef bare():\n    pass\n\n\nbare()\n\n\n"
        "@dag(schedule=None)\ndef called():\n    pass\n\n\ncalled()\n"
        "with DAG('listed', template_searchpath=['sql', '/abs/x']):\n    pass\n"
        "with DAG('computed', template_searchpath=os.environ['X']):\n    pass\n"
    )
    source = cell_file(code, tmp_path, relative="../nb")
    calls = dag_calls(source)
    here = "os.path.join(os.path.dirname(__file__), '../nb')"
    assert calls["?"] == f"[{here}]"  # @dag and @dag(schedule=None)
    assert source.count(f"@dag(template_searchpath=[{here.replace(chr(39), chr(34))}])") == 1
    assert calls["'listed'"] == (
        f"[{here}, os.path.join(os.path.dirname(__file__), '../nb/sql'), '/abs/x']"
    )
    assert calls["'computed'"] == "os.environ['X']", "computed at parse time: kept as written"
    assert source.count("import os\n") == 1
    # Next to the notebook only relative entries change: they are taken from the DAG file.
    calls = dag_calls(cell_file(code, tmp_path, relative="."))
    assert calls["'listed'"] == "[os.path.join(os.path.dirname(__file__), 'sql'), '/abs/x']"
    assert calls["?"] == "" and calls["'computed'"] == "os.environ['X']"


def test_dags_without_template_files_are_exported_unchanged(tmp_path: Path) -> None:
    code = HEAD + 'with DAG("d"):\n    BashOperator(task_id="t", bash_command="echo report.sql")'
    (tmp_path / "report.sql").write_text("x")
    assert "template_searchpath" not in cell_file(code, tmp_path)
    # Next to the notebook, the DAG file's folder is the notebook's: nothing to add either.
    (tmp_path / "hello.sh").write_text("echo hi\n")
    uses_file = HEAD + 'with DAG("d"):\n    BashOperator(task_id="t", bash_command="hello.sh")'
    assert "template_searchpath" in cell_file(uses_file, tmp_path)
    assert "template_searchpath" not in cell_file(uses_file, tmp_path, ".")
