"""Parallel runs through Airflow's LocalExecutor end as serial in-kernel runs end.

One real kernel for the module (a parallel run starts the session's execution API and the
executor's workers once; later runs reuse the API). The notebook file holds every cell, so
the workers import the DAG file export writes from it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from kernels import Kernel, wait_for_ti_state

from kyte_jupyter.session import SessionStore

ROOT = Path(__file__).parent
TRIGGER_RULES = (ROOT / "dags" / "kyte_trigger_rules.py").read_text()

# Two tasks that can only both succeed if they run at the same time (each waits for the
# other's marker): proof of concurrency without a timed assertion.
TOGETHER = '''%%dag
import pathlib
import time

from airflow.sdk import DAG, task

MARKS = pathlib.Path({marks!r})

with DAG("kx_together", schedule=None):
    @task
    def meet(me: str, other: str) -> str:
        (MARKS / me).touch()
        deadline = time.monotonic() + 120
        while not (MARKS / other).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{{other}} never ran while {{me}} ran")
            time.sleep(0.05)
        return me

    meet.override(task_id="a")("a", "b")
    meet.override(task_id="b")("b", "a")
'''

# Four independent tasks in a pool of one slot, and five under max_active_tasks=2.
LIMITS = '''%%dag
import time

from airflow.sdk import DAG, task

with DAG("kx_pool", schedule=None):
    @task(pool="kx_one_slot")
    def slot(i: int) -> int:
        time.sleep(0.2)
        return i

    for i in range(4):
        slot.override(task_id=f"p{i}")(i)

with DAG("kx_mat", schedule=None, max_active_tasks=2):
    @task
    def busy(i: int) -> int:
        time.sleep(0.2)
        return i

    for i in range(5):
        busy.override(task_id=f"m{i}")(i)
'''

SLOW = '''%%dag
import time

from airflow.sdk import DAG, task

with DAG("kx_slow", schedule=None):
    @task
    def forever() -> None:
        time.sleep(600)

    @task
    def quick() -> int:
        return 1

    forever() >> quick()
'''

SLOW_MAPPED = '''%%dag
import time

from airflow.sdk import DAG, task

with DAG("kx_slow_mapped", schedule=None):
    @task
    def work(x: int) -> int:
        if x:
            time.sleep(600)
        return x

    @task
    def after(values: list[int]) -> None:
        pass

    after(work.expand(x=[0, 1, 2, 3]))
'''

SEGFAULT = '''%%dag
from airflow.sdk import DAG, task

with DAG("kx_segv", schedule=None):
    @task
    def crash() -> None:
        import ctypes
        ctypes.string_at(0)

    @task
    def fine() -> int:
        return 1

    crash()
    fine()
'''

SCRATCH = "THRESHOLD = 3"
NOTEBOOK_ONLY = '''%%dag
from airflow.sdk import DAG, task

with DAG("kx_scratch", schedule=None):
    @task
    def check() -> int:
        return THRESHOLD
    check()
'''

DRIFT = '''%%dag
from airflow.sdk import DAG, task

with DAG("kx_drift", schedule=None):
    @task
    def v() -> str:
        return "saved-version"
    v()
'''

# A task that reads a Variable: a call the session's fast lane leaves to Airflow's app.
VARIABLE = '''%%dag
from airflow.sdk import DAG, Variable, task

with DAG("kx_variable", schedule=None):
    @task
    def read() -> str:
        return Variable.get("kx_greeting")

    read()
'''

# Files whose top-level code notes each parse (by process id), in tasks t0..t{n-1}. Besides
# the plain one, some leave something behind that forked tries would share (or, for atexit
# handlers, never run).
NOTED_PARSES = '''%%dag
import _thread
import atexit
import os
import pathlib
import time

from airflow.sdk import DAG, task

with open(pathlib.Path({parses!r}) / "{dag_id}", "a") as notes:
    notes.write(f"{{os.getpid()}}\\n")
{keep}

with DAG("{dag_id}", schedule=None):
    @task
    def one(i: int) -> int:
        return i

    for i in range({tasks}):
        one.override(task_id=f"t{{i}}")(i)
'''
KEEPS = {
    "kx_keep_fd": "KEPT = open(pathlib.Path({parses!r}) / 'kx_keep_fd.kept', 'a')",
    "kx_keep_atexit": "atexit.register(print, 'parsed here')",
    "kx_keep_thread": "_thread.start_new_thread(time.sleep, (600,))",
}

# A file whose top-level code reads a Variable (an answer that belongs to each try).
TOP_LEVEL_VARIABLE = '''%%dag
from airflow.sdk import DAG, Variable, task

GREETING = Variable.get("kx_top_level", default="unset")

with DAG("kx_top_variable", schedule=None):
    @task
    def greet() -> str:
        return GREETING

    greet()
'''

# Retries: a task that fails its first try, one that fails both, and their downstreams.
RETRY = '''%%dag
from datetime import timedelta

from airflow.sdk import DAG, task

with DAG("kx_retry", schedule=None):
    @task(retries=1, retry_delay=timedelta(seconds=0))
    def flaky(ti=None) -> int:
        if ti.try_number == 1:
            raise RuntimeError("the first try fails")
        return ti.try_number

    @task(retries=1, retry_delay=timedelta(seconds=0))
    def broken() -> None:
        raise RuntimeError("every try fails")

    @task
    def after(n: int) -> int:
        return n + 1

    @task(trigger_rule="all_done")
    def cleanup() -> str:
        return "done"

    [after(flaky()), broken()] >> cleanup()
'''

# A task that logs at info on Airflow's task logger.
LOGS = '''%%dag
import logging

from airflow.sdk import DAG, task

with DAG("kx_logs", schedule=None):
    @task
    def say() -> str:
        logging.getLogger("airflow.task").info("a line at info")
        return "said"

    say()
'''

EXAMPLES = ["example_dynamic_task_mapping", "example_setup_teardown"]


def _example(name: str) -> str:
    import importlib.util

    spec = importlib.util.find_spec("airflow")
    assert spec is not None and spec.submodule_search_locations
    return (Path(spec.submodule_search_locations[0]) / "example_dags" / f"{name}.py").read_text()


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory, template_root: Path) -> Iterator[Any]:
    """One kernel for the module, with a notebook file holding every cell used here."""
    tmp = tmp_path_factory.mktemp("executors")
    root = tmp / "sessions"
    root.mkdir()
    shutil.copytree(template_root / ".templates", root / ".templates")
    marks = tmp / "marks"
    marks.mkdir()
    parses = tmp / "parses"
    parses.mkdir()
    cells = {
        "rules": "%%dag\n" + TRIGGER_RULES,
        "together": TOGETHER.format(marks=str(marks)),
        "limits": LIMITS,
        "slow": SLOW,
        "slow_mapped": SLOW_MAPPED,
        "scratch": SCRATCH,
        "notebook_only": NOTEBOOK_ONLY,
        "drift": DRIFT,
        "variable": VARIABLE,
        "retry": RETRY,
        "logs": LOGS,
        "parse_once": NOTED_PARSES.format(parses=str(parses), dag_id="kx_parse_once",
                                          keep="", tasks=6),
        **{dag_id: NOTED_PARSES.format(parses=str(parses), dag_id=dag_id, tasks=3,
                                       keep=keep.format(parses=str(parses)))
           for dag_id, keep in KEEPS.items()},
        "top_variable": TOP_LEVEL_VARIABLE,
        **{name: "%%dag\n" + _example(name) for name in EXAMPLES},
    }
    nb = tmp / "parallel.ipynb"
    saved = [nbformat.v4.new_code_cell(src) for src in cells.values()]
    nbformat.write(nbformat.v4.new_notebook(cells=saved), nb)
    k = Kernel(nb, root, tmp, {})
    try:
        k.ok("%load_ext kyte_jupyter")
        for cell in saved:  # as JupyterLab runs the saved notebook's cells: by their ids
            k.ok(cell.source, cell_id=cell.id)
        k.home = SessionStore(root).find(str(nb)).home  # type: ignore[union-attr]
        k.cell_ids = {name: cell.id for name, cell in zip(cells, saved, strict=True)}
        k.marks = marks
        k.parses = parses
        yield k
    finally:
        k.shutdown()


def _run(k: Any, line: str) -> dict[str, Any]:
    """Run a magic line; the summary's run id, state and task states."""
    k.run(f"_r = {line}")
    r = k.ok("import json\nprint('SUMMARY' + json.dumps({'run_id': _r.run_id, "
             "'state': _r.state, 'states': _r.task_states}))")
    return dict(json.loads(r.stdout.split("SUMMARY", 1)[1].strip().splitlines()[0]))


def _xcoms(k: Any, dag_id: str, run_id: str) -> dict[str, Any]:
    r = k.ok(
        "from kyte_jupyter import bridge\nimport json\n"
        "with bridge.db_session() as _s:\n"
        "    from airflow.models.xcom import XComModel as _X\n"
        f"    _rows = _s.query(_X).filter_by(dag_id={dag_id!r}, run_id={run_id!r}).all()\n"
        "    print('XCOMS' + json.dumps(sorted([(x.task_id, x.map_index, x.key, x.value) "
        "for x in _rows], key=str), default=str))"
    )
    rows = json.loads(r.stdout.split("XCOMS", 1)[1].strip().splitlines()[0])
    return {f"{t}[{m}].{key}": value for t, m, key, value in rows}


def _tis(k: Any, dag_id: str, run_id: str) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(k.home / "airflow.db", timeout=30) as con:
        return list(con.execute(
            "SELECT task_id, state, start_date, end_date FROM task_instance "
            "WHERE dag_id=? AND run_id=?", (dag_id, run_id)))


def _max_overlap(rows: list[tuple[str, str, str, str]]) -> int:
    """Most task instances that were running at the same moment (start/end dates)."""
    events = sorted([(s, 1) for _, _, s, _ in rows] + [(e, -1) for _, _, _, e in rows],
                    key=lambda x: (x[0], x[1]))
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def test_trigger_rules_parallel_ends_as_serial(kernel):
    """Failures, trigger rules, branching, short-circuits: same states and XComs."""
    serial = _run(kernel, "%run_dag kyte_trigger_rules")
    shown = kernel.run("_r = %run_dag kyte_trigger_rules --parallelism 4").text
    parallel = _run(kernel, "_r")
    # The failed task is named with its error, and the way to debug it is said.
    assert "validate failed:" in shown, shown
    assert "run it in the kernel: %run_task kyte_trigger_rules" in shown, shown
    # r.errors names every failed try, as a serial run's does.
    failed = {k for k, v in parallel["states"].items() if v == "failed"}
    errors = kernel.value("sorted(_r.errors)")
    assert failed and set(errors) == failed, (errors, failed)
    assert parallel["states"] == serial["states"]
    assert parallel["state"] == serial["state"] == "failed"
    assert _xcoms(kernel, "kyte_trigger_rules", parallel["run_id"]) == _xcoms(
        kernel, "kyte_trigger_rules", serial["run_id"])
    # Each try has its log in the session's log folder, where %task_log and the sidebar read.
    log = kernel.ok("%task_log kyte_trigger_rules validate").text
    assert "3 rows failed validation" in log
    assert "::group::" not in log and "::endgroup::" not in log  # as an in-kernel try's log


def test_retries_parallel_end_as_serial(kernel):
    """A try that fails is retried by Airflow's rules in a worker, as in the kernel."""
    serial = _run(kernel, "%run_dag kx_retry")
    serial_tries = kernel.value("_r.tries")
    parallel = _run(kernel, "%run_dag kx_retry --parallelism 2")
    assert parallel["states"] == serial["states"] == {
        "flaky": "success", "after": "success", "broken": "failed", "cleanup": "success"}
    # Airflow decides a run's state by its leaves: here cleanup, which ran all_done.
    assert parallel["state"] == serial["state"] == "success"
    assert kernel.value("_r.tries") == serial_tries
    assert serial_tries["flaky"] == serial_tries["broken"] == 2, serial_tries
    assert _xcoms(kernel, "kx_retry", parallel["run_id"]) == _xcoms(
        kernel, "kx_retry", serial["run_id"])


def test_tries_log_at_info_in_parallel_runs_and_in_serial_runs_after_them(kernel):
    """Quieting the scheduler's bookkeeping in the cell leaves every try's log complete."""
    for line in ("%run_dag kx_logs --parallelism 2", "%run_dag kx_logs --parallelism 2",
                 "%run_dag kx_logs"):
        assert _run(kernel, line)["states"] == {"say": "success"}
        log = kernel.ok("%task_log kx_logs say").text
        assert "a line at info" in log, (line, log)
        assert "Done. Returned value was: said" in log, (line, log)


@pytest.mark.parametrize("dag_id", EXAMPLES)
def test_example_dag_parallel_ends_as_serial(kernel, dag_id):
    """Mapping and setup/teardown, decided by Airflow's rules in both paths."""
    serial = _run(kernel, f"%run_dag {dag_id}")
    shown = kernel.ok(f"_r = %run_dag {dag_id} --parallelism 3").text
    parallel = _run(kernel, "_r")
    # No log line of a worker or task process reaches the cell, even after a serial run
    # configured Airflow's logging in the kernel (the workers inherit it).
    for noise in ("XCom not found", "Workload finished", "Secrets backends", "[error",
                  "[info", "[warning"):
        assert noise not in shown, shown
    assert parallel["states"] == serial["states"]
    assert parallel["state"] == serial["state"]
    assert _xcoms(kernel, dag_id, parallel["run_id"]) == _xcoms(kernel, dag_id, serial["run_id"])


def test_a_try_that_needs_the_whole_api_gets_it(kernel):
    """Reading a Variable goes past the fast lane to Airflow's app (built on first use)."""
    kernel.ok("from airflow.models import Variable as _V\n_V.set('kx_greeting', 'hello')")
    out = _run(kernel, "%run_dag kx_variable --parallelism 2")
    assert out["states"] == {"read": "success"}, out
    assert kernel.value("%xcom kx_variable read") == "hello"


@contextlib.contextmanager
def _parse_once(k: Any) -> Iterator[None]:
    """Runs in the block have KYTE_PARSE_ONCE=1: workers parse each DAG file once."""
    k.ok("import os\nos.environ['KYTE_PARSE_ONCE'] = '1'")
    try:
        yield
    finally:
        k.ok("del os.environ['KYTE_PARSE_ONCE']")


def _parses_by_workers(k: Any, dag_id: str, tasks: int) -> list[str]:
    """Run ``dag_id`` with two workers; the process ids of the parses not in the kernel."""
    notes = k.parses / dag_id
    k.ok("import os")
    kernel_pid = int(k.value("os.getpid()"))
    notes.write_text("")
    out = _run(k, f"%run_dag {dag_id} --parallelism 2")
    assert out["states"] == {f"t{i}": "success" for i in range(tasks)}, out
    for i in range(tasks):
        assert k.value(f"%xcom {dag_id} t{i}") == i
    return [p for p in notes.read_text().split() if int(p) != kernel_pid]


def test_each_try_parses_the_dag_file_unless_workers_parse_it_once(kernel):
    """Airflow's task runner parses the DAG file in every try, and so do parallel runs; with
    KYTE_PARSE_ONCE=1 each worker parses it once and forks its tries from that parse."""
    per_try = _parses_by_workers(kernel, "kx_parse_once", 6)
    assert len(per_try) == 6, per_try
    with _parse_once(kernel):
        once = _parses_by_workers(kernel, "kx_parse_once", 6)
    assert 1 <= len(once) <= 2, once  # one per worker, and there are two workers


@pytest.mark.parametrize("dag_id", sorted(KEEPS))
def test_a_dag_file_that_leaves_something_behind_is_parsed_per_try(kernel, dag_id):
    """An open file, a thread, an atexit handler: tries forked from one parse would share
    them (or never run the handler), so with KYTE_PARSE_ONCE=1 such a file is parsed in
    each try all the same."""
    with _parse_once(kernel):
        parses = _parses_by_workers(kernel, dag_id, 3)
    # Each try's own parse, besides the workers' (whose parses were not used).
    assert len(set(parses)) >= 3, parses


def test_a_dag_file_that_reads_a_variable_at_top_level_is_parsed_per_try(kernel):
    """A DAG file's top-level Variable read sees the metastore in the cell, as in Airflow's
    DAG processor, and in each try (the worker's parse would not see it, so the file is
    parsed in the try): serial and parallel runs return the same value."""
    kernel.ok("from airflow.models import Variable as _V\n"
              "_V.set('kx_top_level', 'from the metastore')")
    kernel.ok(TOP_LEVEL_VARIABLE, cell_id=kernel.cell_ids["top_variable"])
    serial = _run(kernel, "%run_dag kx_top_variable")
    assert serial["states"] == {"greet": "success"}, serial
    assert kernel.value("%xcom kx_top_variable greet") == "from the metastore"
    with _parse_once(kernel):
        parallel = _run(kernel, "%run_dag kx_top_variable --parallelism 2")
    assert parallel["states"] == {"greet": "success"}, parallel
    assert kernel.value("%xcom kx_top_variable greet") == "from the metastore"


def test_independent_tasks_run_at_the_same_time(kernel):
    shown = kernel.ok("_r = %run_dag kx_together --parallelism 2").text
    out = _run(kernel, "_r")
    assert out["states"] == {"a": "success", "b": "success"}, out
    # The cell shows the run, not the scheduler's or executor's bookkeeping.
    for noise in ("SchedulerJobRunner", "Loaded executor", "[info", "certifi"):
        assert noise not in shown, shown
    # The default_parallelism trait makes a run without --parallelism parallel too.
    for mark in kernel.marks.iterdir():
        mark.unlink()
    kernel.ok("%config KyteMagics.default_parallelism = 2")
    try:
        out = _run(kernel, "%run_dag kx_together")
    finally:
        kernel.ok("%config KyteMagics.default_parallelism = 1")
    assert out["states"] == {"a": "success", "b": "success"}, out


def test_pool_and_max_active_tasks_are_honoured(kernel):
    kernel.ok("from airflow.models.pool import Pool\n"
              "Pool.create_or_update_pool('kx_one_slot', 1, 'one at a time', False)")
    pool = _run(kernel, "%run_dag kx_pool --parallelism 4")
    assert set(pool["states"].values()) == {"success"}
    assert _max_overlap(_tis(kernel, "kx_pool", pool["run_id"])) == 1
    mat = _run(kernel, "%run_dag kx_mat --parallelism 4")
    assert set(mat["states"].values()) == {"success"}
    assert _max_overlap(_tis(kernel, "kx_mat", mat["run_id"])) <= 2


def test_run_task_downstream_in_parallel(kernel):
    """%run_task … --downstream --parallelism reruns part of the current run."""
    _run(kernel, "%run_dag kx_mat")
    shown = kernel.ok("_r = %run_task kx_mat m0 --downstream --parallelism 2")
    out = _run(kernel, "_r")
    assert out["states"] == {"m0": "success"} and out["state"] == "success"
    # The live progress line, as %run_dag shows it.
    texts = [o["data"]["text/plain"] for o in shown.outputs if "text/plain" in o.get("data", {})]
    assert "kx_mat finished (1 task): 1 success" in texts, shown.text


def test_notebook_only_names_get_the_export_refusal(kernel):
    r = kernel.fails("%run_dag kx_scratch --parallelism 2")
    assert "THRESHOLD" in r.text and "serial" in r.text, r.text
    assert _run(kernel, "%run_dag kx_scratch")["states"] == {"check": "success"}
    # Refused before anything starts: no worker flood, no "starting" line, no run row.
    for code, message in (("%run_dag kx_scratch --parallelism 10000", "more than 64"),
                          ("%run_dag kx_scratch --executor ''", "needs an executor name"),
                          ("%run_dag kx_scratch --parallelism 0", "1 or more")):
        r = kernel.fails(code)
        assert r.error["ename"] == "UsageError" and message in r.error["evalue"], r.text
        assert "starting" not in r.text, r.text


def test_unsaved_cell_changes_are_refused_not_run_from_the_old_file(kernel):
    """The workers import the DAG file exported from the saved notebook: when the kernel ran
    other code for the DAG than the notebook file holds, the parallel run says so."""
    cell_id = kernel.cell_ids["drift"]
    kernel.ok(DRIFT.replace("saved-version", "kernel-version"), cell_id=cell_id)
    try:
        r = kernel.fails("%run_dag kx_drift --parallelism 2")
        assert "differs from what this kernel ran" in r.error["evalue"], r.text
        assert "Save the notebook" in r.error["evalue"]
        # The "starting" line of the refused run is cleared (its display updated to nothing).
        assert r.outputs[-1]["data"].get("text/plain") == "", r.outputs
        assert _run(kernel, "%run_dag kx_drift")["states"] == {"v": "success"}
    finally:
        kernel.ok(DRIFT, cell_id=cell_id)


def test_interrupt_stops_the_workers_and_fails_their_tries(kernel):
    k = kernel
    kernel_proc = psutil.Process(k.km.provisioner.process.pid)
    msg_id = _start_slow_run(k, k.home)
    workers = kernel_proc.children(recursive=True)
    assert workers
    k.km.interrupt_kernel()
    reply = k.reply(msg_id)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, alive
    with sqlite3.connect(k.home / "airflow.db", timeout=30) as con:
        rows = dict(con.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id='kx_slow' AND run_id="
            "(SELECT run_id FROM dag_run WHERE dag_id='kx_slow' ORDER BY id DESC LIMIT 1)"))
    # As Airflow's "mark run failed" (set_dag_run_state_to_failed): the stopped try failed,
    # what never started was skipped, and the run failed (never left running).
    assert rows == {"forever": "failed", "quick": "skipped"}
    with sqlite3.connect(k.home / "airflow.db", timeout=30) as con:
        run_state = con.execute("SELECT state FROM dag_run WHERE dag_id='kx_slow' "
                                "ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert run_state == "failed"
    assert k.value("1 + 1") == 2


def test_interrupt_keeps_finished_map_indexes_and_survives_a_second_interrupt(kernel):
    """Interrupted twice while mapped task instances run: the finished map index keeps its
    success (Airflow's "mark run failed" would fail every map index of a running task), the
    stopped ones fail, the waiting ones are skipped, and the second press of the stop button,
    during the clean-up, leaves nothing ``running``."""
    k = kernel
    db = k.home / "airflow.db"
    msg_id = k.send("%run_dag kx_slow_mapped --parallelism 2")
    deadline, states = time.monotonic() + 180, set()
    while not {(0, "success"), "running"} <= states:  # work[0] done, another one mid-try
        assert time.monotonic() < deadline, states
        time.sleep(0.2)
        with sqlite3.connect(db, timeout=30) as con:
            rows = con.execute(
                "SELECT map_index, state FROM task_instance WHERE dag_id='kx_slow_mapped' AND "
                "task_id='work' AND run_id=(SELECT run_id FROM dag_run WHERE "
                "dag_id='kx_slow_mapped' ORDER BY id DESC LIMIT 1)").fetchall()
        states = {*rows, *(st for _, st in rows)}
    k.km.interrupt_kernel()
    time.sleep(0.3)  # lands in the clean-up (killing the workers), as a double press does
    k.km.interrupt_kernel()
    reply = k.reply(msg_id)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    with sqlite3.connect(db, timeout=30) as con:
        run_id, run_state = con.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id='kx_slow_mapped' "
            "ORDER BY id DESC LIMIT 1").fetchone()
        rows = {(t, i): st for t, i, st in con.execute(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id='kx_slow_mapped' "
            "AND run_id=?", (run_id,))}
    assert run_state == "failed", rows
    assert rows[("work", 0)] == "success", rows
    stopped = [i for i in (1, 2, 3) if rows[("work", i)] == "failed"]
    assert stopped and all(rows[("work", i)] == "skipped" for i in (1, 2, 3)
                           if i not in stopped), rows
    assert rows[("after", -1)] in ("skipped", None), rows
    assert "running" not in rows.values(), rows
    assert k.value("1 + 1") == 2


def _start_slow_run(k: Any, home: Path) -> str:
    """Send ``%run_dag kx_slow --parallelism 2`` and wait until ``forever`` runs; the msg id."""
    msg_id = k.send("%run_dag kx_slow --parallelism 2")
    wait_for_ti_state(home / "airflow.db", "kx_slow", "forever", "running")
    return msg_id


def test_killed_worker_and_killed_kernel(tmp_path: Path, template_root: Path) -> None:
    """A worker killed mid-try: the try ends as Airflow ends a try without heartbeats (failed,
    no retries left) and the run goes on; so does a task that segfaults. A kernel killed
    mid-run leaves no process behind."""
    root = tmp_path / "sessions"
    root.mkdir()
    shutil.copytree(template_root / ".templates", root / ".templates")
    nb = tmp_path / "dies.ipynb"
    slow = nbformat.v4.new_code_cell(SLOW)
    crash = nbformat.v4.new_code_cell(SEGFAULT)
    nbformat.write(nbformat.v4.new_notebook(cells=[slow, crash]), nb)
    # Airflow's own setting: how long a try may go without a heartbeat.
    k = Kernel(nb, root, tmp_path, {"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "5"})
    try:
        k.ok("%load_ext kyte_jupyter")
        k.ok(SLOW, cell_id=slow.id)
        k.ok(SEGFAULT, cell_id=crash.id)
        home = SessionStore(root).find(str(nb)).home  # type: ignore[union-attr]
        kernel_proc = psutil.Process(k.km.provisioner.process.pid)  # type: ignore[union-attr]

        msg_id = _start_slow_run(k, home)
        busy = [p for p in kernel_proc.children() if "<idle>" not in " ".join(p.cmdline())]
        assert len(busy) == 1, [p.cmdline() for p in kernel_proc.children()]
        busy[0].kill()
        reply = k.reply(msg_id, timeout=180)
        assert reply["status"] == "ok", reply
        out = _run(k, "_kyte_last_run")
        assert out["states"] == {"forever": "failed", "quick": "upstream_failed"}, out
        assert "its worker stopped" in k.ok("print(_kyte_last_run.error_lines)").stdout

        # A task that segfaults ends its try (it spun forever under a Python SIGSEGV handler
        # Airflow's DAG importer leaves installed); the run goes on.
        out = _run(k, "%run_dag kx_segv --parallelism 2")
        assert out["states"] == {"crash": "failed", "fine": "success"}, out

        _start_slow_run(k, home)
        workers = kernel_proc.children(recursive=True)
        assert workers
        kernel_proc.kill()
        gone, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        k.shutdown()
    # The next kernel repairs the run and says what happened: the tries ran in workers, so
    # --isolated (for tasks that crash the kernel) is not the advice.
    k = Kernel(nb, root, tmp_path, {})
    try:
        k.ok("%load_ext kyte_jupyter")
        notice = k.ok("%kyte").text
        assert "a kernel stopped while" in notice and "executor's workers" in notice, notice
        assert "--isolated" not in notice, notice
    finally:
        k.shutdown()


GROWN = ['''%%dag kx_grown --start-date 2026-01-01
from airflow.sdk import task


@task
def numbers() -> list:
    return [1, 2, 3]


made = numbers()
''', '''%%dag kx_grown
@task
def total(xs: list) -> int:
    return sum(xs)


total(made)
''']


def test_a_kernel_that_does_not_know_its_notebook_runs_grown_dags(tmp_path: Path,
                                                                  template_root: Path) -> None:
    """Under nbclient (or a console) the kernel is not told its notebook's file: the workers
    get the DAG file exported from the %%dag cells the kernel ran, grown cells included."""
    root = tmp_path / "sessions"
    root.mkdir()
    shutil.copytree(template_root / ".templates", root / ".templates")
    k = Kernel(tmp_path / "unknown.ipynb", root, tmp_path, {"JPY_SESSION_NAME": ""})
    try:
        k.ok("%load_ext kyte_jupyter")
        assert "notebook : unknown" in k.ok("%kyte").text
        for cell in GROWN:
            k.ok(cell)
        out = _run(k, "%run_dag kx_grown --parallelism 2")
        assert out["states"] == {"numbers": "success", "total": "success"}, out
        assert k.value("%xcom kx_grown total") == 6
    finally:
        k.shutdown()
