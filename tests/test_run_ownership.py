"""Issue 13.1: two live kernels on one notebook, and kernels that die mid-run (real kernels).

Run ownership is a lease per kernel (``kyte_jupyter.session.lease``): recovery at a kernel's
start only repairs what dead kernels left, and two live kernels never run one DAG at once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from kyte_jupyter.session import SessionStore
from kyte_jupyter.session.lease import holders

N_TASKS = 20

# 20 tasks of 0.3 s in a chain, then `gate`, which waits for a file the test creates: the run
# stays live exactly as long as the test needs another kernel to act meanwhile.
MANY = f'''\
%%dag
import os, time
from airflow.sdk import DAG, task, chain
with DAG("many", schedule=None):
    @task
    def step(i):
        time.sleep(0.3)
        return i
    steps = [step.override(task_id=f"t{{i:02d}}")(i) for i in range({N_TASKS})]
    @task
    def gate():
        deadline = time.monotonic() + 120
        while not os.path.exists(os.environ["KYTE_TEST_GATE"]):
            if time.monotonic() > deadline:
                raise TimeoutError("the test never opened the gate")
            time.sleep(0.05)
    chain(*steps, gate())
'''

SMALL = '''\
%%dag
from airflow.sdk import DAG, task
with DAG("small", schedule=None):
    @task
    def hello():
        return "hi"
    hello()
'''


def _db(root: Path, notebook: Path) -> Path:
    s = SessionStore(root).find(str(notebook))
    assert s is not None
    return s.db_path


def _states(db: Path, dag_id: str) -> tuple[dict[str, tuple[str, str | None, int]], dict[str, str]]:
    con = sqlite3.connect(db)
    try:
        tis = {f"{r}/{t}": (r, s, n) for r, t, s, n in con.execute(
            "SELECT run_id, task_id, state, try_number FROM task_instance WHERE dag_id=?",
            (dag_id,))}
        runs = dict(con.execute("SELECT run_id, state FROM dag_run WHERE dag_id=?", (dag_id,)))
    finally:
        con.close()
    return tis, runs


def _wait_for_running(db: Path, dag_id: str, task_id: str | None = None,
                      timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            con = sqlite3.connect(db, timeout=5)
            try:
                q = "SELECT task_id FROM task_instance WHERE dag_id=? AND state='running'"
                running = [t for (t,) in con.execute(q, (dag_id,))]
            finally:
                con.close()
        except sqlite3.Error:
            running = []
        if running and (task_id is None or task_id in running):
            return
        time.sleep(0.1)
    raise AssertionError(f"{dag_id}.{task_id or '*'} never ran")


def _in_background(kernel: Any, code: str) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(kernel.run(code, timeout=300)))
    thread.start()
    return thread, out


def test_second_live_kernel_leaves_a_live_run_alone(make_kernel, sessions_root, tmp_path):
    gate = tmp_path / "gate"
    a = make_kernel("nb.ipynb", KYTE_TEST_GATE=str(gate))
    b = make_kernel("nb.ipynb", load=False, KYTE_TEST_GATE=str(gate))
    a.ok(MANY)
    a_pid = a.value("__import__('os').getpid()")
    db = _db(sessions_root, a.notebook)

    thread, out = _in_background(a, "r = %run_dag many\nprint(r.state, len(r.task_states))")
    _wait_for_running(db, "many")

    # Kernel B starts on the same notebook while A's run is live: its start-up recovery must
    # leave A's run alone, and it says so.
    b.ok("%load_ext kyte_jupyter")
    info = b.ok("%kyte")
    assert "metastore: ok" in info.stdout
    assert f"pid {a_pid}" in info.stdout and "running many" in info.stdout, info.text
    assert "its runs were left alone" in info.stderr, info.text
    # B may define the same DAG, but not run it while A does: the refusal names A.
    b.ok(MANY)
    refused = b.fails("%run_dag many")
    assert f"pid {a_pid}" in refused.text and "run_dag" in refused.text, refused.text
    assert "Two kernels never run the same DAG at once" in refused.text
    # B may run another DAG meanwhile.
    b.ok(SMALL)
    other = b.ok("r = %run_dag small\nprint(r.state)")
    assert other.stdout.strip().endswith("success"), other.text
    # A's run is still going, untouched.
    tis, runs = _states(db, "many")
    assert list(runs.values()) == ["running"]
    assert "failed" not in {s for _, s, _ in tis.values()}

    gate.touch()
    thread.join(300)
    assert out and out[0].status == "ok", out and out[0].text
    assert out[0].stdout.strip().endswith(f"success {N_TASKS + 1}"), out[0].text
    tis, runs = _states(db, "many")
    assert list(runs.values()) == ["success"]
    assert len(tis) == N_TASKS + 1
    assert {(s, n) for _, s, n in tis.values()} == {("success", 1)}, tis

    # Now B may run it.
    again = b.ok("r = %run_dag many\nprint(r.state)")
    assert again.stdout.strip().endswith("success"), again.text


def test_kernel_killed_mid_run_is_repaired_at_next_start_and_the_rest_kept(
    make_kernel, sessions_root, tmp_path
):
    gate = tmp_path / "gate"
    a = make_kernel("nb.ipynb", KYTE_TEST_GATE=str(gate))
    b = make_kernel("nb.ipynb", KYTE_TEST_GATE=str(gate))
    a.ok(MANY)
    b.ok(SMALL)
    gate.touch()
    a.ok("%run_dag many")  # a finished run: kept as it is
    gate.unlink()
    db = _db(sessions_root, a.notebook)
    _, before = _states(db, "many")
    assert list(before.values()) == ["success"]

    thread, out = _in_background(a, "%run_dag many")
    _wait_for_running(db, "many", "gate")
    os.kill(a.km.provisioner.pid, signal.SIGKILL)
    thread.join(60)
    assert out and out[0].status == "dead"
    home = db.parent
    assert [h.alive for h in holders(home)].count(False) == 1  # A's lease, dead

    # B is alive and idle the whole time; it must not mistake the dead run for its own.
    assert b.ok("r = %run_dag small\nprint(r.state)").stdout.strip().endswith("success")

    a.restart()
    r = a.ok("%load_ext kyte_jupyter\n%kyte")
    assert "a kernel stopped while many.gate ran; marked failed" in r.stderr, r.text
    tis, runs = _states(db, "many")
    killed = next(run for run in runs if run not in before)
    assert runs == {**before, killed: "failed"}
    assert tis[f"{killed}/gate"][1] == "failed"
    assert {tis[f"{killed}/t{i:02d}"][1] for i in range(N_TASKS)} == {"success"}
    assert {tis[k][1] for k in tis if not k.startswith(killed)} == {"success"}
    # The dead lease is gone; B's and the new A's are there, alive.
    assert [h.alive for h in holders(home)] == [True, True]
    # The notice is said once; a second start finds nothing left to repair.
    assert "marked failed" not in a.ok("%kyte").stderr
    _, runs_after = _states(db, "small")
    assert set(runs_after.values()) == {"success"}


def test_run_left_running_between_tries_by_a_dead_kernel_is_failed(make_kernel, sessions_root):
    """A kernel killed between two tries leaves no try running, only its claim: the run it
    had claimed (and changed since) is failed; an older run of the DAG that %run_task left
    `running` on purpose (the notebook's current run) is not."""
    k = make_kernel("nb.ipynb")
    k.ok(SMALL.replace('    hello()\n', '    hello() >> hello.override(task_id="bye")()\n'))
    k.ok("%run_task small hello -q")  # the notebook's current run: running, `bye` not run
    db = _db(sessions_root, k.notebook)
    _, runs = _states(db, "small")
    (current,) = runs
    assert runs[current] == "running"
    time.sleep(0.05)
    # A kernel that died mid-run: its lease claims `small` since now; its run is `running`.
    import json

    leases = db.parent / "kyte" / "leases"
    con = sqlite3.connect(db)
    now = con.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')").fetchone()[0]
    con.close()
    (leases / "dead.1.json").write_text(json.dumps({
        "kernel_id": "dead", "pid": 1, "started": now, "command": "x",
        "claims": {"small": {"since": now, "action": "run_dag"}},
    }))
    (leases / "dead.1.lock").touch()
    made = k.ok("%run_dag small")  # stands for the run the dead kernel made
    _, runs = _states(db, "small")
    assert len(runs) == 2, (runs, made.text)
    (dead_run,) = set(runs) - {current}
    con = sqlite3.connect(db)
    con.execute("UPDATE dag_run SET state='running' WHERE run_id=?", (dead_run,))
    con.execute("UPDATE task_instance SET state=NULL WHERE run_id=? AND task_id='bye'",
                (dead_run,))
    con.commit()
    con.close()
    k.restart()
    k.ok("%load_ext kyte_jupyter")
    _, runs = _states(db, "small")
    assert runs == {current: "running", dead_run: "failed"}
    assert not (leases / "dead.1.json").exists()
