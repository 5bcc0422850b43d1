"""The notebook is the DAG (issue 11, items 1-4, 12, 13), in real kernels.

Cases from public Airflow bug reports live in ``tests/cases/`` (copied from the shared
case list); their headers say what ``dag.test()`` does, which is what Kyte must do too.
"""

from __future__ import annotations

import json
import queue
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from kyte_jupyter.session import SessionStore

CASES = Path(__file__).parent / "cases"


def _home(root: Path, notebook: Path) -> Path:
    s = SessionStore(root).find(str(notebook))
    assert s is not None
    return s.home


def _graph(root: Path, notebook: Path, dag_id: str) -> dict[str, Any]:
    path = _home(root, notebook) / "kyte" / "graphs" / f"{dag_id}.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _comm(k: Any, data: dict[str, Any], comm_id: str | None = None) -> dict[str, Any]:
    """Open the ``kyte.notebook`` comm (or message it) as the front end does; the reply."""
    if comm_id is None:
        comm_id = uuid.uuid4().hex
        msg = k.kc.session.msg("comm_open", {"comm_id": comm_id, "target_name": "kyte.notebook",
                                             "data": data})
    else:
        msg = k.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
    k.kc.shell_channel.send(msg)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            m = k.kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id:
            reply: dict[str, Any] = m["content"]["data"]
            reply["_comm_id"] = comm_id
            return reply
    raise TimeoutError("no reply on the kyte.notebook comm")


def _cells(*cells: tuple[str, str]) -> dict[str, Any]:
    return {"type": "cells", "cells": [{"cell_id": i, "source": s} for i, s in cells]}


# ---- 11.2: a %%dag cell is a module ------------------------------------------------------
def test_dag_cell_is_a_module_like_a_dag_file(make_kernel):
    k = make_kernel()
    case = (CASES / "11b_dataclass_in_dag_cell.py").read_text()
    r = k.ok("%%dag\n" + case)
    assert "DAG c11b_dataclass: 2 tasks" in r.text
    # dag.test() on the same file: make_point succeeds; use_point fails because Airflow's
    # XCom deserialization refuses classes outside `allowed_deserialization_classes`.
    r = k.ok("r = %run_dag c11b_dataclass\nprint(r.task_states)")
    assert "{'make_point': 'success', 'use_point': 'failed'}" in r.stdout
    assert "allow list" in r.stderr
    # Module semantics a DAG file relies on.
    r = k.ok('''%%dag
from __future__ import annotations
import pickle, typing
from dataclasses import dataclass, field
from airflow.sdk import DAG, task

@dataclass
class Row:
    name: str
    tags: list[str] = field(default_factory=list)

ROUNDTRIP = pickle.loads(pickle.dumps(Row("a", ["x"])))
HINTS = typing.get_type_hints(Row)
MODULE = __name__
if __name__ == "__main__":
    raise RuntimeError("a DAG file is not run as __main__")
with DAG("modsem", schedule=None):
    @task
    def one() -> int:
        return 1
    one()
''')
    assert k.value("ROUNDTRIP == Row('a', ['x'])") is True
    assert k.value("str(HINTS['tags'])") == "list[str]"
    assert k.value("(MODULE, Row.__module__)") == ("kyte_dag_cell", "kyte_dag_cell")
    assert k.value("__name__") == "__main__"  # the notebook itself is still __main__
    assert k.value("__import__('sys').modules['kyte_dag_cell'].Row is Row") is True
    # The cell's own __future__ import applies; without it annotations are evaluated.
    k.ok("%%dag\nfrom airflow.sdk import DAG, task\nwith DAG('ann', schedule=None):\n"
         "    @task\n    def f() -> int:\n        return 1\n    f()\n"
         "ANN = f.function.__annotations__")
    assert k.value("ANN['return'] is int") is True


# ---- 11.3: template files next to the notebook ---------------------------------------------
def test_template_files_next_to_the_notebook(make_kernel, tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    for f in (CASES / "13_files").iterdir():
        shutil.copy(f, folder / f.name)
    (folder / "sql").mkdir()
    (folder / "sql" / "count.sql").write_text("SELECT count(*) FROM {{ params.table }}")
    # The kernel's working directory is tmp_path, not the notebook's folder.
    k = make_kernel("reports/monthly.ipynb")
    k.ok("%%dag\n" + (CASES / "13_template_files.py").read_text())
    r = k.ok("r = %run_dag c13_template_files --logs\nprint(r.task_states)")
    assert "{'render_sql': 'success', 'run_script': 'success'}" in r.stdout
    ds = k.value("%xcom c13_template_files render_sql").split("day = '")[1][:10]
    # What dag.test() gives with the files next to the DAG file (the case's header).
    assert k.value("%xcom c13_template_files render_sql") == (
        f"SELECT * FROM sales WHERE day = '{ds}' AND region = 'north'")
    assert f"hello from script on {ds.replace('-', '')}" in r.stdout
    # Relative template_searchpath entries resolve from the notebook's folder too.
    k.ok('''%%dag
from airflow.sdk import DAG, task
with DAG("relpath", schedule=None, template_searchpath=["sql"],
         params={"table": "orders"}):
    @task(templates_exts=[".sql"])
    def q(query):
        return query
    q(query="count.sql")
''')
    k.ok("%run_task relpath q -q")
    assert k.value("%xcom relpath q") == "SELECT count(*) FROM orders"


# ---- 11.1: the kernel's DAG is the notebook's ----------------------------------------------
def test_task_ids_belong_to_one_cell_and_deleted_cells_are_dropped(make_kernel, sessions_root):
    k = make_kernel()
    k.ok("from airflow.sdk import task")
    c1 = "%%dag etl\n@task\ndef extract():\n    return [1, 2]\nrows = extract()"
    c2 = "%%dag etl\n@task\ndef validate(r):\n    return r\nvalidate(rows)"
    c3 = "%%dag etl\n@task\ndef validate(r):\n    return len(r)\nvalidate(rows)"
    c4 = "%%dag etl\n@task\ndef load(r):\n    print(r)\nload(rows)\nload(rows)"
    k.ok(c1, cell_id="c1")
    k.ok(c2, cell_id="c2")
    # c2's own execution count (In [N]): its input is In[N].
    c2_count = k.value("[i for i, s in enumerate(In) if 'return r\\\\nvalidate' in s][0]")
    # Another cell defining `validate` is an error naming the cell that has it.
    r = k.fails(c3, cell_id="c3")
    assert r.error["ename"] == "UsageError"
    assert "'validate'" in r.error["evalue"] and "two cells" in r.error["evalue"]
    assert f"cell [{c2_count}]" in r.error["evalue"]
    assert "validate__1" not in k.value("sorted(get_ipython().find_magic('run_dag')"
                                        ".__self__.registry.get('etl').task_dict)")
    # A task function called twice in one cell keeps Airflow's numbering.
    k.ok(c4, cell_id="c4")
    assert sorted(n["task_id"] for n in _graph(sessions_root, k.notebook, "etl")["nodes"]) == [
        "extract", "load", "load__1", "validate"]

    # The front end reports the notebook: c2 was deleted, c3 exists but has not run.
    reply = _comm(k, _cells(("c1", c1), ("c3", c3), ("c4", c4)))
    assert reply["type"] == "dropped" and reply["dag_ids"] == ["etl"]
    assert any("was deleted" in m and "validate" in m for m in reply["messages"])
    graph = _graph(sessions_root, k.notebook, "etl")
    assert sorted(n["task_id"] for n in graph["nodes"]) == ["extract", "load", "load__1"]
    assert any("was deleted" in w for w in graph["warnings"])
    assert any("has not run" in w for w in graph["warnings"])
    r = k.ok("%kyte")
    assert "warning" in r.stdout and "has not run" in r.stdout
    # Running c3 now works, and brings kernel and notebook back in agreement.
    k.ok(c3, cell_id="c3")
    graph = _graph(sessions_root, k.notebook, "etl")
    assert sorted(n["task_id"] for n in graph["nodes"]) == [
        "extract", "load", "load__1", "validate"]
    assert graph["warnings"] == []
    r = k.ok("r = %run_dag etl\nprint(r.task_states)")
    assert "'validate': 'success'" in r.stdout
    # An edited, not re-run cell is a warning; a cell that now grows another DAG is dropped.
    comm_id = reply["_comm_id"]
    edited = c4.replace("load(rows)\nload(rows)", "load(rows)")
    reply = _comm(k, _cells(("c1", c1), ("c3", c3), ("c4", edited)), comm_id)
    assert reply["dag_ids"] == []
    assert any("was edited since it ran" in w
               for w in _graph(sessions_root, k.notebook, "etl")["warnings"])
    moved = c3.replace("%%dag etl", "%%dag other")
    reply = _comm(k, _cells(("c1", c1), ("c3", moved), ("c4", c4)), comm_id)
    assert any("now grows DAG 'other'" in m for m in reply["messages"])
    assert "validate" not in {n["task_id"] for n in _graph(sessions_root, k.notebook,
                                                             "etl")["nodes"]}
    # A deleted whole-file cell takes its DAGs with it.
    whole = ("%%dag\nfrom airflow.sdk import DAG\nfrom airflow.providers.standard.operators."
             "empty import EmptyOperator\nwith DAG('whole', schedule=None):\n"
             "    EmptyOperator(task_id='a')")
    k.ok(whole, cell_id="w1")
    reply = _comm(k, _cells(("c1", c1), ("c3", moved), ("c4", c4)), comm_id)
    assert "whole" in reply["dag_ids"]
    assert "No DAG 'whole'" in k.fails("%run_dag whole").error["evalue"]
    assert not (_home(sessions_root, k.notebook) / "kyte/graphs/whole.json").exists()


# ---- 11.4: stored results need only the metastore; renamed notebooks -----------------------
def test_xcom_and_task_log_after_restart_and_a_renamed_notebook(make_kernel, sessions_root,
                                                                 tmp_path):
    k = make_kernel("first.ipynb")
    k.ok('''%%dag
from airflow.sdk import DAG, task
with DAG("kept", schedule=None):
    @task
    def make():
        print("making rows")
        return {"rows": 3}
    make()
''')
    k.ok("%run_dag kept")
    k.restart()
    k.ok("%load_ext kyte_jupyter")
    # No %%dag cell has run in this kernel.
    assert k.value("%xcom kept make") == {"rows": 3}
    assert "making rows" in k.ok("%task_log kept make").stdout
    r = k.fails("%xcom kept nope")
    assert "has no task 'nope'" in r.error["evalue"] and "make" in r.error["evalue"]
    assert "No DAG 'gone'" in k.fails("%xcom gone make").error["evalue"]
    # The server renames the session when the notebook is renamed; %kyte follows.
    SessionStore(sessions_root).rename(str(k.notebook), str(tmp_path / "renamed.ipynb"))
    r = k.ok("%kyte")
    assert str(tmp_path / "renamed.ipynb") in r.stdout


# ---- 11.12 (parsing) and 11.13 (completion) ------------------------------------------------
def test_parsing_errors_and_tab_completion(make_kernel):
    k = make_kernel()
    k.ok('''%%dag
from airflow.sdk import DAG, task
with DAG("etl", schedule=None):
    @task
    def extract():
        return 1
    @task
    def transform(x):
        return x
    transform(extract())
''')
    k.ok("%run_task etl extract -q")
    for code in ("%run_dag etl --conf {bad json}", '%run_dag etl --conf {"a": 1}',
                 "%%dag g --default-args {\"retries\": 2}\npass"):
        r = k.fails(code)
        assert r.error["ename"] == "UsageError", code
        assert "is not valid JSON" in r.error["evalue"] and "quote" in r.error["evalue"], code
    # A NUL byte is a syntax error at the cell's line, not an error of Kyte's code.
    r = k.fails("%%dag\nfrom airflow.sdk import DAG\nx = 1\x00\n")
    assert r.error["ename"] == "SyntaxError"
    assert "null bytes" in r.error["evalue"]
    assert "line 3" in r.traceback and "Cell In[" in r.traceback
    assert "kyte_jupyter" not in r.traceback
    r = k.fails("%task_log etl extract --try 0")
    assert r.error["ename"] == "UsageError" and "numbered from 1" in r.error["evalue"]

    def complete(code: str) -> list[str]:
        msg_id = k.kc.complete(code, len(code))
        reply = k.kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = k.kc.get_shell_msg(timeout=60)
        return reply["content"]["matches"]  # type: ignore[no-any-return]

    assert complete("%run_task e") == ["etl"]
    assert complete("%run_task etl ") == ["extract", "transform"]
    assert complete("r = %run_task etl tr") == ["transform"]
    assert complete("%run_task etl extract --up") == ["--upstream"]
    assert "--map-index" in complete("%xcom etl extract --")
    assert complete("%run_dag ") == ["etl"]
    assert complete("%task_log etl extract --t") == ["--try"]
    # Every magic that names a DAG completes it (and %render the task too).
    for magic in ("runs", "dag_diff", "compare", "lint"):
        assert complete(f"%{magic} e") == ["etl"], magic
    assert complete("%render etl ex") == ["extract"]
    assert complete("%runs etl --l") == ["--limit"]
