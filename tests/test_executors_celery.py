"""``%run_dag … --executor CeleryExecutor``: a Redis broker and a Celery worker, started here.

Redis (Debian's ``redis-server``) listens on 127.0.0.1 at a free port; ``airflow celery
worker`` runs with the session's Airflow home and reaches the session's execution API at the
address the kernel serves it on. Both are stopped by PID, also when the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from kernels import Kernel

from kyte_jupyter.session import SessionStore

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"

pytestmark = pytest.mark.skipif(
    not os.path.exists(REDIS), reason="redis-server is not installed (apt-get install redis-server)"
)

DAG = '''%%dag
from airflow.sdk import DAG, task

with DAG("kx_celery", schedule=None):
    @task
    def extract() -> list[int]:
        return [1, 2, 3]

    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    @task
    def broken() -> None:
        raise ValueError("broken on purpose")

    @task(trigger_rule="all_done")
    def report() -> str:
        return "done"

    total(double.expand(x=extract())) >> report()
    broken() >> report()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a process this test started, and its children, by PID."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


def _wait_port(port: int, proc: subprocess.Popen[Any], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, f"{what} did not listen on {port}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def celery(tmp_path_factory: pytest.TempPathFactory, template_root: Path) -> Iterator[Any]:
    """A kernel whose session has CeleryExecutor configured, a Redis broker and a worker."""
    tmp = tmp_path_factory.mktemp("celery")
    root = tmp / "sessions"
    root.mkdir()
    shutil.copytree(template_root / ".templates", root / ".templates")
    nb = tmp / "celery.ipynb"
    cell = nbformat.v4.new_code_cell(DAG)
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), nb)
    home = SessionStore(root).for_notebook(str(nb))
    redis_port, api_port = _free_port(), _free_port()
    broker = f"redis://127.0.0.1:{redis_port}/0"
    settings = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor,CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"redis://127.0.0.1:{redis_port}/1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
    }
    procs: list[subprocess.Popen[Any]] = []
    k = None
    logs = tmp / "logs"
    logs.mkdir()
    try:
        redis = subprocess.Popen(
            [REDIS, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp)],
            stdout=(logs / "redis.log").open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(redis)
        _wait_port(redis_port, redis, "redis-server")
        env = {**os.environ, **home.env(), **settings}
        env.pop("JPY_SESSION_NAME", None)
        worker = subprocess.Popen(
            [sys.executable, "-m", "airflow", "celery", "worker", "--concurrency", "2",
             "--skip-serve-logs", "--without-mingle", "--without-gossip"],
            env=env, cwd=tmp, stdout=(logs / "worker.log").open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(worker)
        deadline = time.monotonic() + 240
        while " ready." not in (logs / "worker.log").read_text(errors="replace"):
            assert worker.poll() is None, (logs / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Celery worker did not get ready"
            time.sleep(0.2)
        k = Kernel(nb, root, tmp, settings)
        k.ok("%load_ext kyte_jupyter")
        k.ok(DAG, cell_id=cell.id)
        k.worker, k.logs = worker, logs
        yield k
    finally:
        if k is not None:
            k.shutdown()
        for proc in reversed(procs):
            _stop(proc)


def _summary(k: Any, line: str) -> dict[str, Any]:
    k.run(f"_r = {line}", timeout=600)
    r = k.ok("import json\nprint('SUMMARY' + json.dumps({'run_id': _r.run_id, "
             "'state': _r.state, 'states': _r.task_states}))")
    return dict(json.loads(r.stdout.split("SUMMARY", 1)[1].strip().splitlines()[0]))


def test_celery_run_ends_as_serial_run(celery):
    serial = _summary(celery, "%run_dag kx_celery")
    distributed = _summary(celery, "%run_dag kx_celery --executor CeleryExecutor --parallelism 4")
    worker_log = (celery.logs / "worker.log").read_text(errors="replace")
    assert distributed["states"] == serial["states"], worker_log[-4000:]
    # report (all_done) is the only leaf and succeeds: the run succeeds, in both.
    assert distributed["state"] == serial["state"] == "success"
    assert serial["states"]["total"] == "success" and serial["states"]["broken"] == "failed"
    assert celery.value("%xcom kx_celery total") == 12
    # The tasks ran in the Celery worker's processes, not in the kernel's.
    assert "kx_celery" in worker_log and celery.worker.poll() is None
