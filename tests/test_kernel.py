"""The kernel loop, end to end in real kernels: sessions, %%dag, running, XCom, logs."""

from __future__ import annotations

import json
from pathlib import Path

from kyte_jupyter.session import SessionStore

ETL = '''\
%%dag
from airflow.sdk import DAG, task
from airflow.providers.standard.operators.bash import BashOperator

with DAG("etl", schedule=None, tags=["demo"]) as dag:
    @task
    def extract():
        print("extracting rows")
        return [1, 2, 3]

    @task
    def transform(rows):
        print("got", rows)
        return sum(rows)

    report = BashOperator(
        task_id="report",
        bash_command="echo total={{ ti.xcom_pull('transform') }} ds={{ ds }}",
    )
    transform(extract()) >> report
'''


def _session_home(root: Path, notebook: Path) -> Path:
    s = SessionStore(root).find(str(notebook))
    assert s is not None, "no session home was created for the notebook"
    return s.home


def test_load_ext_creates_private_home_and_kyte_shows_it(make_kernel, sessions_root):
    k = make_kernel("work/first.ipynb")
    home = _session_home(sessions_root, k.notebook)
    assert (home / "airflow.db").is_file()
    assert home.parent == sessions_root
    assert k.value("__import__('os').environ['AIRFLOW_HOME']") == str(home)
    r = k.ok("%kyte")
    assert str(home) in r.stdout and str(k.notebook) in r.stdout
    k.ok(ETL)
    assert "etl" in k.ok("%kyte").stdout


def test_pasted_dag_file_registers_and_shows_graph(make_kernel, sessions_root):
    k = make_kernel()
    r = k.ok(ETL)
    text = "\n".join(r.data("text/plain"))
    assert "DAG etl: 3 tasks, 2 edges" in text
    assert "extract >> transform" in text and "transform >> report" in text
    html = "\n".join(r.data("text/html"))
    assert "<svg" in html and "report" in html
    # The namespace keeps the cell's names for inspection.
    assert k.value("sorted(dag.task_dict)") == ["extract", "report", "transform"]
    graph = json.loads((_session_home(sessions_root, k.notebook) / "kyte/graphs/etl.json")
                       .read_text())
    assert sorted(map(tuple, graph["edges"])) == [("extract", "transform"),
                                                   ("transform", "report")]
    assert {n["task_id"]: n["operator"] for n in graph["nodes"]}["report"] == "BashOperator"


def test_dag_grown_cell_by_cell_and_rerun_replaces(make_kernel):
    k = make_kernel()
    k.ok("from airflow.sdk import task\nfrom airflow.providers.standard.operators.empty import "
         "EmptyOperator")
    k.ok("%%dag grow --schedule @daily --start-date 2026-01-01 --tags a,b\n"
         "start = EmptyOperator(task_id='start')", cell_id="c1")
    r = k.ok("%%dag grow\n@task\ndef step_one():\n    return 1\nstart >> step_one()",
             cell_id="c2")
    assert "DAG grow: 2 tasks, 1 edges" in r.text
    # Re-running cell c2 with new code replaces what it contributed, nothing else.
    r = k.ok("%%dag grow\n@task\ndef step_two():\n    return 2\nstart >> step_two()",
             cell_id="c2")
    assert "DAG grow: 2 tasks, 1 edges" in r.text
    assert "step_one" not in r.text and "start >> step_two" in r.text
    k.ok("%%dag grow\nend = EmptyOperator(task_id='end')", cell_id="c3")
    summary = k.ok("r = %run_dag grow\nprint(r.task_states)")
    assert summary.stdout.strip().endswith(
        "{'start': 'success', 'step_two': 'success', 'end': 'success'}")
    assert k.value("r.state") == "success"
    # The options of the cells make the DAG.
    assert k.value("str(_kyte_last_run.dag_id)") == "grow"
    assert k.value("sorted(get_ipython().find_magic('run_dag').__self__.registry"
                   ".get('grow').tags)") == ["a", "b"]


def test_run_task_streams_logs_uses_upstream_xcom_and_templates(make_kernel, sessions_root):
    k = make_kernel()
    k.ok(ETL)
    r = k.ok("r = %run_task etl extract\nr")
    assert "extracting rows" in r.stdout
    assert "success" in r.text
    r = k.ok("%run_task etl transform")
    assert "got [1, 2, 3]" in r.stdout  # the XCom of extract, from the same run
    r = k.ok("%run_task etl report")
    assert "total=6" in r.stdout and "ds=20" in r.stdout  # templates rendered
    assert k.value("%xcom etl transform") == 6
    # Logs are kept per try in the session's log folder.
    home = _session_home(sessions_root, k.notebook)
    logs = sorted(home.glob("logs/dag_id=etl/run_id=*/task_id=extract/attempt=*.log"))
    assert [p.name for p in logs] == ["attempt=1.log"]
    assert "extracting rows" in logs[0].read_text()
    k.ok("%run_task etl extract -q")
    r = k.ok("%task_log etl extract --try 2")
    assert "extracting rows" in r.stdout and "try 2" in r.stdout
    # --downstream re-runs transform and report after extract, in order.
    r = k.ok("r = %run_task etl extract --downstream -q\nprint(list(r.task_states.items()))")
    assert "[('extract', 'success'), ('transform', 'success'), ('report', 'success')]" in r.stdout
    r = k.ok("r = %run_task etl report --upstream -q\nprint(r.task_states)")
    assert "'extract': 'success'" in r.stdout and "'report': 'success'" in r.stdout


def test_run_dag_semantics_summary_and_variables(make_kernel):
    k = make_kernel()
    k.ok("from airflow.models import Variable\nVariable.set('greeting', 'bonjour')")
    k.ok('''%%dag
from airflow.sdk import DAG, task, Variable, TaskGroup
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("semantics", schedule=None):
    @task.branch
    def choose():
        return "left"

    left = EmptyOperator(task_id="left")
    right = EmptyOperator(task_id="right")
    join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")

    @task
    def numbers():
        return [1, 2, 3]

    @task
    def square(x):
        return x * x

    @task
    def greet():
        return Variable.get("greeting")

    with TaskGroup("grp"):
        @task
        def inside():
            return "in group"
        inside()

    choose() >> [left, right] >> join
    square.expand(x=numbers())
    greet()
''')
    r = k.ok("r = %run_dag semantics\nprint(json.dumps(r.task_states, sort_keys=True))"
             if False else "import json\nr = %run_dag semantics\n"
             "print(json.dumps(r.task_states, sort_keys=True))")
    states = json.loads(r.stdout.strip().splitlines()[-1])
    assert states == {
        "choose": "success", "left": "success", "right": "skipped", "join": "success",
        "numbers": "success", "square[0]": "success", "square[1]": "success",
        "square[2]": "success", "greet": "success", "grp.inside": "success",
    }
    assert k.value("%xcom semantics square") == [1, 4, 9]
    assert k.value("%xcom semantics square --map-index 2") == 9
    assert k.value("%xcom semantics greet") == "bonjour"
    assert k.value("r.state") == "success"


def test_state_persists_across_restart_and_notebooks_are_isolated(make_kernel, sessions_root):
    k = make_kernel("one.ipynb")
    k.ok(ETL)
    k.ok("%run_dag etl")
    k.restart()
    k.ok("%load_ext kyte_jupyter")
    r = k.ok("%kyte")
    assert "etl manual__" in r.stdout and "success" in r.stdout
    k.ok(ETL)
    assert k.value("%xcom etl transform") == 6  # the XCom of the run before the restart
    r = k.ok("%task_log etl extract")
    assert "extracting rows" in r.stdout

    other = make_kernel("two.ipynb")
    assert other.value("__import__('os').environ['AIRFLOW_HOME']") != k.value(
        "__import__('os').environ['AIRFLOW_HOME']")
    r = other.fails("%run_dag etl")
    assert "No DAG 'etl' in this notebook" in r.text
    assert "manual__" not in other.ok("%kyte").stdout


def test_failed_task_fails_cell_with_its_traceback_and_debug_target(make_kernel):
    k = make_kernel()
    k.ok('''%%dag
from airflow.sdk import DAG, task
with DAG("boom", schedule=None):
    @task
    def explode():
        numerator = 1
        raise ValueError("the task itself failed")
    explode()
''')
    r = k.fails("%run_task boom explode")
    assert r.error["ename"] == "ValueError"
    assert r.error["evalue"] == "the task itself failed"
    tb = r.traceback
    assert 'raise ValueError("the task itself failed")' in tb
    assert "kyte_jupyter/magics.py" not in tb  # Kyte's own frames are hidden
    # %debug opens post-mortem on sys.last_traceback: its innermost frame is the task's.
    r = k.ok("import sys\ntb = sys.last_traceback\nwhile tb.tb_next: tb = tb.tb_next\n"
             "print(tb.tb_frame.f_code.co_name, tb.tb_frame.f_locals['numerator'])")
    assert r.stdout.strip() == "explode 1"
    r = k.ok("r = %run_dag boom\nprint(r.task_states)")
    assert "{'explode': 'failed'}" in r.stdout
    assert "explode failed: ValueError: the task itself failed" in r.stderr


def test_timeout_and_process_exit_fail_cleanly_kernel_alive(make_kernel):
    k = make_kernel()
    k.ok('''%%dag
import datetime, os, time
from airflow.sdk import DAG, task
with DAG("faults", schedule=None):
    @task(execution_timeout=datetime.timedelta(seconds=1))
    def hang():
        time.sleep(60)

    @task
    def exits():
        os._exit(3)

    @task
    def fine():
        return "still here"

    hang()
    exits()
    fine()
''')
    r = k.fails("%run_task faults hang")
    assert "Timeout" in r.error["ename"] or "timeout" in r.text.lower()
    r = k.fails("%run_task faults exits")
    assert "os._exit(3)" in r.text
    assert k.value("1 + 1") == 2
    r = k.ok("r = %run_task faults fine -q\nprint(r.task_states)")
    assert "{'fine': 'success'}" in r.stdout


def test_kernel_killed_mid_run_marks_run_failed_keeps_rest(make_kernel, sessions_root):
    k = make_kernel()
    k.ok('''%%dag
import os, signal
from airflow.sdk import DAG, task
with DAG("crash", schedule=None):
    @task
    def ok():
        return 1

    @task
    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    ok() >> die()
''')
    r = k.run("%run_dag crash", timeout=60)
    assert r.status != "ok"
    k.restart()
    k.ok("%load_ext kyte_jupyter")
    session = SessionStore(sessions_root).find(str(k.notebook))
    assert session is not None
    con = session.connect_readonly()  # airflow.db, or PostgreSQL (KYTE_TEST_METASTORE)
    states = dict(con.execute("SELECT task_id, state FROM task_instance WHERE dag_id='crash'"))
    run_state = con.execute("SELECT state FROM dag_run WHERE dag_id='crash'").fetchone()[0]
    con.close()
    assert states == {"ok": "success", "die": "failed"}
    assert run_state == "failed"


def test_bad_input_gives_clear_errors_and_keeps_last_valid_dag(make_kernel):
    k = make_kernel()
    k.ok(ETL, cell_id="etl")
    r = k.fails("%%dag\nwith DAG('etl', schedule=None:\n    pass", cell_id="etl")
    assert r.error["ename"] == "SyntaxError"
    assert "line 2" in r.traceback
    r = k.fails('''%%dag
from airflow.providers.standard.operators.empty import EmptyOperator
with DAG("etl", schedule=None):
    a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    a >> b >> a
''', cell_id="etl")
    assert "cycle" in r.text.lower()
    r = k.fails('''%%dag
from airflow.providers.standard.operators.empty import EmptyOperator
with DAG("etl", schedule=None):
    EmptyOperator(task_id="same")
    EmptyOperator(task_id="same")
''', cell_id="etl")
    assert "same" in r.text and "DuplicateTaskIdFound" in r.text
    # An exception in a cell (file or grown) shows the cell's frames, none of Kyte's own.
    for code in ("%%dag\ndef helper():\n    raise ValueError('boom')\nhelper()",
                 "%%dag grown\ndef helper():\n    raise ValueError('boom')\nhelper()"):
        r = k.fails(code)
        assert r.error["ename"] == "ValueError" and "boom" in r.error["evalue"], r.text
        assert "line 3, in helper" in r.traceback and "kyte_jupyter" not in r.traceback, code
    # The previous valid definition is still the one that runs.
    r = k.ok("r = %run_dag etl\nprint(sorted(r.task_states))")
    assert "['extract', 'report', 'transform']" in r.stdout

    cases = {
        "%run_task nope extract": "No DAG 'nope' in this notebook",
        "%run_task etl nope": "has no task 'nope'",
        "%run_task etl": "Usage: %run_task DAG_ID TASK_ID",
        "%run_dag etl --conf '{bad json'": "--conf is not valid JSON",
        "%run_dag etl --conf '[1]'": "must be a JSON object",
        "%run_dag etl --logical-date yesterday": "is not a date",
        "%%dag g --default-args '{\"retries\": }'\npass": "--default-args is not valid JSON",
        "%%dag g --start-date 2026-13-45\npass": "is not a date",
        "%%dag bad/id\npass": "is not a valid DAG id",
        "%%dag\nx = 1": "defined no DAG",
        "%run_task etl extract --map-index 1": "is not mapped",
        "%xcom etl nope": "has no task 'nope'",
        "%kyte reset": "--yes",
        "%run_task etl extract --frobnicate": "unrecognized arguments",
    }
    for code, message in cases.items():
        r = k.fails(code)
        assert r.error["ename"] == "UsageError", (code, r.text)
        assert message in r.error["evalue"], (code, r.error["evalue"])
        assert len(r.error["traceback"]) <= 2, (code, r.error["traceback"])


def test_reset_wipes_runs_keeps_dags_and_audit_records_actions(make_kernel, sessions_root):
    k = make_kernel()
    k.ok(ETL)
    k.ok("%run_dag etl")
    r = k.ok("%kyte reset --yes")
    assert "1 runs deleted" in r.stdout
    assert "manual__" not in k.ok("%kyte").stdout
    k.ok("%run_task etl extract -q")
    home = _session_home(sessions_root, k.notebook)
    entries = [json.loads(line) for line in (home / "kyte/audit.jsonl").read_text().splitlines()]
    actions = [e["action"] for e in entries]
    assert actions[0] == "session.create"
    assert "dag.define" in actions and "task.run" in actions and "session.reset" in actions
    define = next(e for e in entries if e["action"] == "dag.define")
    assert define["dag_id"] == "etl" and len(define["code_hash"]) == 16
    assert {"time", "user", "outcome"} <= set(define)
    run = [e for e in entries if e["action"] == "task.run"][-1]
    assert run["task_id"] == "extract" and run["outcome"] == "success"


def test_operator_preload_files_reach_tasks(make_kernel, sessions_root, tmp_path):
    conns = tmp_path / "conns.json"
    conns.write_text(json.dumps({"warehouse": {"conn_type": "sqlite", "host": "/tmp/w.db"}}))
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({"region": "eu-west", "limits": {"rows": 10}}))
    SessionStore(sessions_root, connections_files=[str(conns)],
                 variables_files=[str(variables)]).for_notebook(str(tmp_path / "pre.ipynb"))
    k = make_kernel("pre.ipynb")
    k.ok('''%%dag
from airflow.sdk import DAG, task, Variable
from airflow.sdk.bases.hook import BaseHook
with DAG("pre", schedule=None):
    @task
    def read():
        conn = BaseHook.get_connection("warehouse")
        return [conn.conn_type, conn.host, Variable.get("region"),
                Variable.get("limits", deserialize_json=True)["rows"]]
    read()
''')
    k.ok("%run_task pre read -q")
    assert k.value("%xcom pre read") == ["sqlite", "/tmp/w.db", "eu-west", 10]


def test_isolated_runs_survive_a_segfaulting_task(make_kernel, sessions_root):
    k = make_kernel()
    k.ok('''%%dag
import ctypes, os, signal
from airflow.sdk import DAG, task
with DAG("crashy", schedule=None):
    @task
    def segfault():
        print("about to crash")
        ctypes.string_at(0)

    @task
    def fine():
        print("fine ran in", "a child" if os.getpid() != KERNEL_PID else "the kernel")
        return 7

    segfault() >> fine()
KERNEL_PID = os.getpid()
''')
    r = k.fails("%run_task crashy segfault --isolated")
    assert "about to crash" in r.stdout
    assert "killed by SIGSEGV" in r.stderr
    assert "segfault did not succeed" in r.error["evalue"]
    assert k.value("1 + 1") == 2  # the kernel is alive
    r = k.ok("r = %run_dag crashy --isolated\nprint(r.task_states)")
    assert "{'segfault': 'failed', 'fine': 'upstream_failed'}" in r.stdout
    r = k.ok("%run_task crashy fine --isolated")
    assert "fine ran in a child" in r.stdout
    assert k.value("%xcom crashy fine") == 7
    log = next((_session_home(sessions_root, k.notebook) / "logs/dag_id=crashy").glob(
        "run_id=*/task_id=segfault/attempt=1.log"))
    assert "killed by SIGSEGV" in log.read_text()


def test_walkthrough_regressions(make_kernel, sessions_root):
    """Found by walking the tour as a new user: each line once failed."""
    k = make_kernel()
    k.ok('''%%dag grown
from airflow.sdk import task
@task
def first():
    return ("a", 1)
first()
''', cell_id="g1")
    k.ok("%run_task grown first  # a trailing comment is fine")
    # A task added after the run started runs in that same run.
    k.ok("%%dag grown\n@task\ndef second():\n    return 2\nsecond()", cell_id="g2")
    r = k.ok("r = %run_task grown second -q\nprint(r.task_states)")
    assert "{'second': 'success'}" in r.stdout
    # XComs come back as the Python values the task returned.
    assert k.value("%xcom grown first") == ("a", 1)
    # Connection passwords never reach the cell or the log.
    k.ok("import os\nos.environ['AIRFLOW_CONN_VAULT'] = 'postgres://u:sup3rs3cretpw@h:5432/d'")
    k.ok('''%%dag
from airflow.sdk import DAG, task
from airflow.sdk.bases.hook import BaseHook
with DAG("secrets", schedule=None):
    @task
    def leak():
        print("password is", BaseHook.get_connection("vault").password)
    leak()
''')
    r = k.ok("%run_task secrets leak")
    assert "password is ***" in r.stdout and "sup3rs3cretpw" not in r.stdout
    log = next((_session_home(sessions_root, k.notebook) / "logs/dag_id=secrets").glob(
        "run_id=*/task_id=leak/attempt=1.log")).read_text()
    assert "password is ***" in log and "sup3rs3cretpw" not in log
    assert "\x1b[" not in log  # plain text, no terminal colours
    assert "::group::" not in r.stdout
    # Every option of %%dag is in its help.
    r = k.ok("print(get_ipython().find_cell_magic('dag').__doc__)")
    for option in ("--schedule", "--start-date", "--default-args", "--tags", "--description"):
        assert option in r.stdout


def test_fix_a_failed_task_and_rerun_it_with_downstream(make_kernel):
    k = make_kernel()
    k.ok("SHOULD_FAIL = True")
    k.ok('''%%dag
from airflow.sdk import DAG, task
@task
def extract():
    return [1, 2]
@task
def check(v):
    if SHOULD_FAIL:
        raise ValueError("bad data")
    return sum(v)
@task
def load(total):
    print("loaded", total)
with DAG("fixme", schedule=None):
    load(check(extract()))
''')
    r = k.ok("r = %run_dag fixme\nprint(r.task_states)")
    assert "'check': 'failed', 'load': 'upstream_failed'" in r.stdout
    k.ok("SHOULD_FAIL = False")
    r = k.ok("r = %run_task fixme check --downstream\nprint(r.task_states, r.state)")
    assert "loaded 3" in r.stdout
    assert "{'check': 'success', 'load': 'success'} success" in r.stdout
