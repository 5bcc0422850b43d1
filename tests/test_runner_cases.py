"""Runs that must match Airflow: the cases of issue 11 (items 5-12), in real kernels.

Each ``tests/cases/*.py`` is a DAG file from ``../shared/cases`` (public Airflow bug reports,
rewritten); its ``.cells.py`` is the notebook the case describes. Airflow is the oracle:
``dag.test()`` for whole runs, and ``airflow tasks clear`` (its CLI command, run in-process)
followed by ``dag.test()``'s own scheduling loop on the same run for re-runs — what a
scheduler would do after a clear. The oracle runs once per module in a separate, clean
Airflow home.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kernels import wait_for_ti_state

from kyte_jupyter.session import SessionStore

CASES = Path(__file__).parent / "cases"
MIME = "application/vnd.kyte.run-summary+json"

ORACLE = textwrap.dedent('''
    import json, sys
    from airflow.cli import cli_parser
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    def snapshot(dr):
        out = {"(run)": str(getattr(dr.state, "value", dr.state))}
        for ti in dr.get_task_instances():
            key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            out[key] = [str(getattr(ti.state, "value", ti.state)), ti.try_number]
        return out

    def clear_and_run(dag, dr, task_regex):
        """`airflow tasks clear DAG -t TASK -y`, then dag.test()'s loop on the same run."""
        args = cli_parser.get_parser().parse_args(
            ["tasks", "clear", dag.dag_id, "-t", task_regex, "-y"])
        args.func(args)
        with create_session() as session:
            dr = session.merge(dr)
            dr.state = DagRunState.RUNNING  # the scheduler starts a queued run
            session.commit()
            dr.dag = dag_bag_dag(dag.dag_id, session)
            while dr.state == DagRunState.RUNNING:
                session.expire_all()
                tis, _ = dr.update_state(session=session)
                for s in tis:
                    if s.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                        s.try_number += 1
                    s.state = TaskInstanceState.SCHEDULED
                    s.scheduled_dttm = timezone.utcnow()
                session.commit()
                for ti in [x for x in dr.get_task_instances(session=session)
                           if x.state == TaskInstanceState.SCHEDULED]:
                    try:
                        _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
                    except Exception:
                        pass
            return snapshot(dr)

    def dag_bag_dag(dag_id, session):
        from airflow.models.dagbag import DBDagBag
        return DBDagBag().get_latest_version_of_dag(dag_id, session=session)

    bag = DagBag(dag_folder=sys.argv[1])
    assert not bag.import_errors, bag.import_errors
    out = {}
    for spec in sys.argv[2:]:
        dag_id, _, regex = spec.partition(":")
        dr = bag.get_dag(dag_id).test()
        out[dag_id] = snapshot(dr)
        if regex:
            out[spec] = clear_and_run(bag.get_dag(dag_id), dr, regex)
    print("RESULT" + json.dumps(out))
''')


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory, template_root: Path) -> dict[str, Any]:
    """What Airflow does with the case DAGs: dag.test(), and clear + run for re-runs."""
    root = tmp_path_factory.mktemp("oracle-root")
    shutil.copytree(template_root / ".templates", root / ".templates")
    home = SessionStore(root).for_notebook(str(root / "reference.ipynb"))
    for name in ("01_map_over_xcom.py", "02_zero_length_chain.py", "10_setup_teardown.py"):
        shutil.copy(CASES / name, home.dags_folder / name)
    specs = ["c01_map_over_xcom", "c02_zero_length_chain:double",
             "c10a_work_fails:query", "c10b_teardown_fails", "c10c_teardown_fails_dagrun"]
    env = {**home.env(), "PATH": "/usr/bin:/bin", "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    proc = subprocess.run([sys.executable, "-c", ORACLE, str(home.dags_folder), *specs],
                          capture_output=True, text=True, env=env, timeout=900)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT"):])
    return result


def notebook(case: str, dag_file: str, dag_id: str) -> list[str]:
    """The cells of ``tests/cases/<case>.cells.py`` with ``{SRC}`` and ``{DAG}`` filled in."""
    src = (CASES / dag_file).read_text()
    text = (CASES / f"{case}.cells.py").read_text()
    out = []
    for cell in text.split("# %%\n"):
        cell = cell.strip("\n")
        if cell and cell != "%load_ext kyte_jupyter":
            out.append(cell.replace("{SRC}", src).replace("{DAG}", dag_id))
    return out


def summary_json(result: Any) -> dict[str, Any]:
    """The run summary JSON a cell emitted (the last one)."""
    found = result.data(MIME)
    assert found, f"no {MIME} output:\n{result.text}"
    data: dict[str, Any] = found[-1]
    return data


def states_and_tries(data: dict[str, Any]) -> dict[str, Any]:
    """A summary JSON in the oracle's shape: key -> [state, try], plus the run's state."""
    out: dict[str, Any] = {"(run)": data["run_state"]}
    for ti in data["task_instances"]:
        out[ti["key"]] = [ti["state"], ti["try_number"]]
    return out


# ---- item 5: setup and teardown ------------------------------------------------------------
def test_rerunning_a_work_task_reruns_its_setup_and_teardown(make_kernel, oracle):
    """Case 10 + 10d: %run_task of the work task = `airflow tasks clear` + run (tries 2/2/2)."""
    k = make_kernel()
    src = (CASES / "10_setup_teardown.py").read_text()
    k.ok("%%dag\n" + src)
    for dag_id in ("c10a_work_fails", "c10b_teardown_fails", "c10c_teardown_fails_dagrun"):
        r = k.ok(f"r = %run_dag {dag_id}\nr")
        got = states_and_tries(summary_json(r))
        assert got == oracle[dag_id], dag_id
        assert summary_json(r)["state"] == oracle[dag_id]["(run)"]
    dag_cell, run_dag, rerun, last = notebook("10d_rerun_work", "10_setup_teardown.py",
                                              "c10a_work_fails")
    assert run_dag.startswith("r = %run_dag")
    k.ok(run_dag)  # the notebook's own cells, in order: a new run, then the re-run
    r = k.fails(rerun)
    assert r.error["ename"] == "RuntimeError" and "query crashed" in r.error["evalue"]
    want = oracle["c10a_work_fails:query"]
    assert want["make_cluster"][1] == want["query"][1] == want["drop_cluster"][1] == 2
    assert states_and_tries(summary_json(r)) == want
    r = k.ok(last)
    assert re.search(r"make_cluster\s+success\s+try 2", r.text)
    assert re.search(r"drop_cluster\s+success\s+try 2", r.text)
    assert k.value("(_kyte_last_run.state, _kyte_last_run.run_state)") == ("failed", "failed")


# ---- item 6: mapped tasks ------------------------------------------------------------------
def test_mapped_task_before_its_upstream_and_map_indexes(make_kernel, oracle):
    """Case 01c: a one-line error saying to use --upstream; --map-index checked everywhere."""
    k = make_kernel()
    dag_cell, first, indexed, upstream = notebook("01c_mapped_first", "01_map_over_xcom.py",
                                                  "c01_map_over_xcom")
    k.ok(dag_cell)
    for cell in (first, indexed):
        r = k.fails(cell)
        message = r.text.strip()
        assert "--upstream" in message and "list_files" in message, message
        assert "Traceback" not in message and len(r.error["evalue"].splitlines()) == 1
    r = k.ok(upstream)
    data = summary_json(r)
    assert {ti["key"]: ti["state"] for ti in data["task_instances"]} == {
        "list_files": "success", "make_line[0]": "success", "make_line[1]": "success",
        "make_line[2]": "success"}
    assert data["state"] == "success" and data["run_state"] == "running"  # total never ran
    assert k.value("%xcom c01_map_over_xcom make_line") == [
        "in:alpha.csv", "in:beta.csv", "in:gamma.csv"]
    r = k.ok("r = %run_task c01_map_over_xcom make_line --map-index 1 -q\n"
             "print(r.task_states, r.tries)")
    assert "{'make_line[1]': 'success'} {'make_line[1]': 2}" in r.stdout
    r = k.fails("%run_task c01_map_over_xcom make_line --map-index 7")
    assert "3 mapped instances" in r.text and "(map index 0-2)" in r.text
    r = k.fails("%xcom c01_map_over_xcom make_line --map-index 7")
    assert "3 mapped instances" in r.text and "Has it run?" not in r.text
    r = k.fails("%run_task c01_map_over_xcom list_files --map-index 0")
    assert "not mapped" in r.text
    # The whole DAG as dag.test() runs it.
    r = k.ok("r = %run_dag c01_map_over_xcom\nr")
    assert states_and_tries(summary_json(r)) == oracle["c01_map_over_xcom"]


def test_zero_length_map_reruns_as_airflow_reexpands_it(make_kernel, oracle):
    """Case 02: a re-run of an empty mapped task is skipped again, never a failing try."""
    k = make_kernel()
    dag_cell, run_dag, rerun, rerun_again, xcom = notebook(
        "02_zero_length_chain", "02_zero_length_chain.py", "c02_zero_length_chain")
    k.ok(dag_cell)
    r = k.ok(run_dag)
    assert states_and_tries(summary_json(r)) == oracle["c02_zero_length_chain"]
    want = oracle["c02_zero_length_chain:double"]
    for cell in (rerun, rerun_again):
        r = k.ok(cell)
        data = summary_json(r)
        assert {ti["key"]: [ti["state"], ti["try_number"]] for ti in data["task_instances"]} \
            == {"double": want["double"]}
        assert data["state"] == "skipped" and data["run_state"] == want["(run)"]
    r = k.ok(xcom)
    assert r.stdout.strip() == "[]"
    r = k.fails("%run_task c02_zero_length_chain double --map-index 0")
    assert "no mapped instances" in r.text


MAPPING_PATHS = '''%%dag
import pendulum
from airflow.sdk import dag, task, task_group

@dag(dag_id="mapping_paths", schedule=None,
     start_date=pendulum.datetime(2025, 1, 1, tz="UTC"))
def paths():
    @task
    def pairs():
        return [{"a": 1, "b": 2}, {"a": 3, "b": 4}]

    @task
    def add(a, b, c=0):
        return a + b + c

    @task
    def nums():
        return [1, 2, 3]

    @task_group
    def grp(x):
        @task
        def inc(x):
            return x + 1

        @task
        def dbl(y):
            return y * 2

        return dbl(inc(x))

    add.partial(c=10).expand_kwargs(pairs())
    grp.expand(x=nums())

paths()
'''


def test_mapped_task_groups_expand_kwargs_and_partial(make_kernel):
    """--map-index on a task in a mapped task group and on expand_kwargs; %xcom of both."""
    k = make_kernel()
    k.ok(MAPPING_PATHS)
    r = k.ok("r = %run_dag mapping_paths\nprint(r.state)")
    assert r.stdout.strip().endswith("success")
    assert k.value("%xcom mapping_paths add") == [13, 17]
    assert k.value("%xcom mapping_paths grp.dbl") == [4, 6, 8]
    assert k.value("%xcom mapping_paths grp.dbl --map-index 2") == 8
    r = k.ok("r = %run_task mapping_paths grp.dbl --map-index 1 -q\n"
             "print(r.task_states, r.tries, r.state)")
    assert "{'grp.dbl[1]': 'success'} {'grp.dbl[1]': 2} success" in r.stdout
    r = k.ok("r = %run_task mapping_paths add --map-index 0 -q\nprint(r.task_states)")
    assert "{'add[0]': 'success'}" in r.stdout
    r = k.fails("%xcom mapping_paths grp.inc --map-index 3")
    assert "3 mapped instances" in r.text


# ---- item 7: deferrable tasks --------------------------------------------------------------
DEFERRING = '''%%dag
import datetime
from airflow.sdk import DAG
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("waits", schedule=None):
    TimeDeltaSensor(task_id="short", delta=datetime.timedelta(seconds=2), deferrable=True) \\
        >> EmptyOperator(task_id="after")
    TimeDeltaSensor(task_id="long", delta=datetime.timedelta(hours=1), deferrable=True)
'''


def test_deferrable_task_runs_its_trigger_in_the_kernel_and_is_interruptible(
    make_kernel, sessions_root
):
    """A deferring sensor completes (the kernel's loop is running); a long wait is
    `deferred` in the metastore and the progress line, and the kernel's interrupt stops it."""
    k = make_kernel()
    k.ok(DEFERRING)
    r = k.ok("r = %run_task waits short --downstream\nprint(r.task_states, r.state)")
    assert "{'short': 'success', 'after': 'success'} success" in r.stdout, r.summary()
    assert "asyncio.run() cannot be called" not in r.text
    db = SessionStore(sessions_root).find(str(k.notebook)).home / "airflow.db"  # type: ignore
    msg_id = k.send("r = %run_task waits long")
    wait_for_ti_state(db, "waits", "long", "deferred", timeout=120)
    k.km.interrupt_kernel()
    reply = k.reply(msg_id, timeout=60)
    assert reply["status"] == "error"
    # The metastore says `deferred` a moment before the kernel starts waiting on the trigger:
    # an interrupt in between stops the run as any interrupt does (KeyboardInterrupt), one
    # during the wait names it. Either way the wait is over and the try failed.
    assert (reply["ename"] == "KeyboardInterrupt"
            or "interrupted while long waited for its trigger" in reply["evalue"]), reply
    assert k.value("1 + 1") == 2  # the kernel lives on
    with sqlite3.connect(db, timeout=10) as con:
        row = con.execute("SELECT state FROM task_instance WHERE dag_id='waits' AND "
                          "task_id='long'").fetchone()
    assert row == ("failed",)


SLOW_CHAIN = '''%%dag
import time
from airflow.sdk import DAG, task, teardown

with DAG("slow_chain", schedule=None):
    @task
    def first():
        time.sleep(30)

    @teardown
    def cleanup():
        pass

    # all_done: after a failed upstream these still run, unless the whole run stopped.
    @task(trigger_rule="all_done")
    def second():
        time.sleep(30)

    @task(trigger_rule="all_done")
    def third():
        time.sleep(30)

    first() >> second() >> third() >> cleanup()
'''


def test_interrupting_a_serial_run_stops_the_whole_run(make_kernel, sessions_root):
    """The kernel's interrupt while a serial run's task sleeps in the kernel: no other task
    starts (even ones that would run after a failure), the run ends as Airflow's "mark run
    failed" ends one (the stopped try failed, what never started skipped, a teardown that
    never started left as it is), and the cell ends with the KeyboardInterrupt after a line
    saying what was stopped."""
    k, db, msg_id = _interrupted_while_first_runs(make_kernel, sessions_root, "%run_dag slow_chain")
    shown = ""
    while True:
        msg = k.kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            shown += msg["content"]["text"]
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    assert "interrupted while first ran" in shown
    assert ("2 task instances (second, third) not started: skipped, as marking a run failed "
            "in Airflow does; teardown cleanup not run" in shown), shown
    tis, runs = _slow_chain_states(db)
    assert tis == {"first": ("failed", 1), "second": ("skipped", 0), "third": ("skipped", 0),
                   "cleanup": (None, 0)}, tis
    assert runs == [("failed",)]
    assert k.value("1 + 1") == 2  # the kernel lives on


def test_interrupting_run_task_keeps_the_rest_of_the_current_run(make_kernel, sessions_root):
    """``%run_task`` runs part of the notebook's current run: an interrupt fails the stopped
    try and the run, and leaves the task instances it did not cover as they were, for the
    next ``%run_task`` (only a whole run is ended as Airflow's "mark run failed" ends it)."""
    _, db, _ = _interrupted_while_first_runs(make_kernel, sessions_root,
                                             "%run_task slow_chain first")
    tis, runs = _slow_chain_states(db)
    assert tis == {"first": ("failed", 1), "second": (None, 0), "third": (None, 0),
                   "cleanup": (None, 0)}, tis
    assert runs == [("failed",)]


def _interrupted_while_first_runs(make_kernel: Any, sessions_root: Path,
                                  line: str) -> tuple[Any, Path, str]:
    """A kernel that defined ``slow_chain`` and ran ``line``, interrupted while ``first``
    ran; the cell ended with the KeyboardInterrupt. (kernel, metastore, the cell's msg id)."""
    k = make_kernel()
    k.ok(SLOW_CHAIN)
    db = SessionStore(sessions_root).find(str(k.notebook)).home / "airflow.db"  # type: ignore
    msg_id = k.send(line)
    wait_for_ti_state(db, "slow_chain", "first", "running")
    k.km.interrupt_kernel()
    reply = k.reply(msg_id, timeout=180)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    return k, db, msg_id


def _slow_chain_states(db: Path) -> tuple[dict[str, tuple[Any, int]], list[Any]]:
    """``slow_chain``'s task instances (state, try number) and its runs' states."""
    with sqlite3.connect(db, timeout=10) as con:
        tis = {r[0]: (r[1], r[2]) for r in con.execute(
            "SELECT task_id, state, try_number FROM task_instance WHERE dag_id='slow_chain'")}
        runs = con.execute("SELECT state FROM dag_run WHERE dag_id='slow_chain'").fetchall()
    return tis, runs


# ---- items 8-12: what the cell shows ---------------------------------------------------------
FAILING = '''%%dag
import os
from airflow.sdk import DAG, task
from airflow.sdk import Connection

with DAG("secrets", schedule=None):
    @task
    def login():
        conn = Connection.get("warehouse")
        print("connecting as", conn.login)
        raise RuntimeError("login failed " + conn.password)

    @task
    def fine():
        return 1

    @task
    def leak():
        return {"pw": Connection.get("warehouse").password}

    fine() >> login()
    leak()
'''
PASSWORD = "hunter2-VERY-secret"


def test_failed_task_reads_well_masked_and_names_its_cell(make_kernel):
    """Own frames and the exception once, then the summary; no password anywhere in the
    cell; `Cell In[N]` is the %%dag cell's own number; clean log lines; .state vs .run_state."""
    k = make_kernel()
    k.ok(f"import os\nos.environ['AIRFLOW_CONN_WAREHOUSE'] = "
         f"'postgresql://kyte:{PASSWORD}@db.example:5432/wh'")
    dag_cell = k.ok(FAILING)
    dag_count = k.value("len(In) - 1") - 1  # the %%dag cell's own execution count
    del dag_cell
    r = k.fails("%run_task secrets login")
    everything = r.text + json.dumps(r.outputs) + json.dumps(r.error)
    assert PASSWORD not in everything
    assert r.error["ename"] == "RuntimeError" and r.error["evalue"] == "login failed ***"
    tb = r.traceback
    assert f"Cell In[{dag_count}]" in tb
    assert 'raise RuntimeError("login failed " + conn.password)' in tb
    assert "task_runner.py" not in tb and "airflow/sdk" not in tb  # Airflow's frames folded
    assert tb.count("RuntimeError: login failed ***") == 1
    assert "Traceback" not in r.stdout + r.stderr  # no second traceback from the log
    # Clean log lines: no ANSI, no structlog logger/loc noise, no folding markers.
    assert "\x1b[" not in r.stdout and "::group::" not in r.stdout and "loc=" not in r.stdout
    assert "connecting as kyte" in r.stdout
    assert "RuntimeTaskInstance(" not in r.stdout
    data = summary_json(r)
    assert data["failed"] == ["login"] and data["task_instances"][-1]["error"] == (
        "RuntimeError: login failed ***")
    # item 8: the outcome of what was asked, and the run's own state apart (fine never ran).
    assert k.value("(_kyte_last_run.state, _kyte_last_run.run_state)") == ("failed", "running")
    r = k.ok("r = %run_task secrets fine -q\nprint(r.state, r.run_state)")
    assert r.stdout.strip().endswith("success running")  # leak has not run yet
    # %debug opens the task's own frames (the full traceback is kept for it).
    r = k.fails("%run_task secrets login -q")
    r = k.ok("import sys\ntb = sys.last_traceback\nnames = []\nwhile tb:\n"
             "    names.append(tb.tb_frame.f_code.co_name); tb = tb.tb_next\nprint(names)")
    assert "'login'" in r.stdout and "'run'" in r.stdout  # the task runner's frames too
    # %run_dag: summary and errors masked too.
    r = k.ok("r = %run_dag secrets\nr")
    everything = r.text + json.dumps(r.outputs)
    assert PASSWORD not in everything
    assert "login failed: RuntimeError: login failed ***" in r.stderr
    # r.errors, %xcom's value and %compare's XCom difference reach the cell too: masked.
    assert PASSWORD not in k.ok("print(r.errors)").stdout
    assert k.value("%xcom secrets leak") == {"pw": "***"}
    r = k.ok("h = %runs secrets\nc = %compare secrets {h[1].run_id} {h[0].run_id}\nc")
    assert PASSWORD not in r.text + json.dumps(r.outputs)
    # The stored log keeps the full traceback, masked, without folding markers.
    r = k.ok("%task_log secrets login")
    assert "Traceback (most recent call last)" in r.stdout and PASSWORD not in r.stdout
    assert "::group::" not in r.stdout and "::endgroup::" not in r.stdout


def test_progress_names_running_tasks_and_reads_well(make_kernel):
    """%run_dag progress: running task names, "no status", "1 task"."""
    k = make_kernel()
    k.ok('''%%dag
import time
from airflow.sdk import DAG, task
with DAG("slow", schedule=None):
    @task
    def nap():
        time.sleep(1.5)
    nap()
''')
    r = k.ok("%run_dag slow")
    html = "\n".join(o["data"]["text/html"] for o in r.outputs
                     if "text/html" in o.get("data", {}) and "kyte-progress" in
                     o["data"]["text/html"])
    assert "1 no status" in html and "none" not in html
    assert "now: <code>nap</code>" in html
    texts = [o["data"]["text/plain"] for o in r.outputs if "text/plain" in o.get("data", {})]
    assert "slow finished (1 task): 1 success" in texts


TEMPLATE_ERROR = '''%%dag
from airflow.sdk import DAG
from airflow.providers.standard.operators.bash import BashOperator

with DAG("tq", schedule=None):
    BashOperator(task_id="echo", bash_command="echo {{ params.missing }}")
'''


def test_airflow_log_records_during_a_try_are_clean_and_quiet_with_q(make_kernel):
    """Records Airflow logs inside a try (a template that fails to render) reach the cell as
    one clean line each, nothing with -q, and the stored log keeps the whole traceback."""
    k = make_kernel()
    k.ok(TEMPLATE_ERROR)
    quiet = k.fails("%run_task tq echo -q")
    assert "Exception rendering Jinja template" not in quiet.stdout + quiet.stderr
    shown = k.fails("%run_task tq echo")
    lines = [x for x in shown.stdout.splitlines() if "Exception rendering Jinja template" in x]
    assert len(lines) == 1 and lines[0].startswith("[") and "ERROR" in lines[0]
    assert "\x1b[" not in shown.stdout and "templater.py" not in shown.stdout
    stored = k.ok("%task_log tq echo").stdout
    assert "Exception rendering Jinja template" in stored and "templater.py" in stored
