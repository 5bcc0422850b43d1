"""Airflow's own tools, timed in a fresh process: ``python -m benchmarks.airflow_side MODE ...``.

Run by the harness (``python -m benchmarks``) in a subprocess whose ``AIRFLOW_HOME`` is a
home of its own (a migrated metastore with the benchmark DAG files in ``dags/``), so Airflow
reads that home at import. Prints one line ``KYTE-BENCH-RESULT {json}`` at the end.

Modes:

* ``import``: ``import airflow`` in a fresh process (time, RSS).
* ``dag-test FILE DAG_ID --warmup-file W --warmup-id WID --reps N``: ``import airflow``, the
  first ``dag.test()`` in the process (of the small warm-up DAG ``WID``; pass the same file
  and id to time the first run of ``DAG_ID`` itself), then ``N`` timed, warm ``dag.test()``
  runs of ``DAG_ID``.
* ``scheduler FILE DAG_ID --parallelism P --reps N``: Airflow's own deployment on this home —
  ``airflow api-server`` (127.0.0.1 only), ``airflow scheduler`` with a LocalExecutor of
  ``P`` slots and ``airflow dag-processor`` — runs ``DAG_ID`` once to warm up, then ``N``
  timed runs, each triggered through the REST API. A run's time is Airflow's own record of
  it: the DagRun's ``end_date`` minus its ``queued_at``. The three services are stopped
  (their process groups) at the end, also on failure.
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

RESULT_PREFIX = "KYTE-BENCH-RESULT "


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return _peak_mb()


def _load_dag(path: str, dag_id: str) -> Any:
    """Import a DAG file as a module and return the DAG with ``dag_id`` from it."""
    from airflow.sdk import DAG

    name = f"kyte_bench_{Path(path).stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for value in vars(module).values():
        if isinstance(value, DAG) and value.dag_id == dag_id:
            return value
    raise SystemExit(f"no DAG {dag_id!r} in {path}")


def _test(dag: Any, cpu: list[float] | None = None) -> tuple[float, str]:
    """One ``dag.test()``: (wall seconds, final run state); its CPU time appended to ``cpu``."""
    t0, c0 = time.perf_counter(), time.process_time()
    dr = dag.test()
    took = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    state = str(getattr(dr.state, "value", dr.state))
    if state != "success":
        raise SystemExit(f"dag.test() of {dag.dag_id} ended {state}")
    return took, state


SERVICES = (["api-server", "--host", "127.0.0.1", "--port", "{port}"],
            # Its log server would listen on every interface: the logs are files here.
            ["scheduler", "--skip-serve-logs"], ["dag-processor"])
"""Airflow's own services for ``scheduler`` mode, as ``airflow`` CLI arguments."""


class _Deployment:
    """Airflow's API server, scheduler (LocalExecutor) and DAG processor on one home, each
    started in a session of its own, so that everything it starts — executor workers and the
    task processes their supervisors put in process groups of their own — can be found and
    stopped by session id."""

    def __init__(self, home: Path, parallelism: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.home = home
        self.url = f"http://127.0.0.1:{port}"
        env = dict(
            os.environ,
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM=str(parallelism),
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(64),
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__AUTH_MANAGER=("airflow.api_fastapi.auth.managers.simple."
                                         "simple_auth_manager.SimpleAuthManager"),
            # Every REST caller is an admin: the API listens on 127.0.0.1 only, for this run.
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        )
        (home / "logs").mkdir(exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for args in SERVICES:
            with open(self._log(args[0]), "wb") as out:
                self.procs[args[0]] = subprocess.Popen(
                    [sys.executable, "-m", "airflow", *(a.format(port=port) for a in args)],
                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def _log(self, service: str) -> Path:
        return self.home / "logs" / f"{service}.log"

    def check_alive(self) -> None:
        """Raise ``SystemExit`` naming a service that has exited, with its log's tail."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = self._log(name).read_text(errors="replace").splitlines()[-15:]
                raise SystemExit(f"Airflow's {name} exited ({proc.returncode}); the end of "
                                 f"{self._log(name)}:\n" + "\n".join(tail))

    def _members(self) -> list[int]:
        """Every live process in the services' sessions."""
        sessions = {proc.pid for proc in self.procs.values()}
        members = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.getsid(int(entry.name)) in sessions:
                        members.append(int(entry.name))
        return members

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM to every process of the services' sessions, SIGKILL to what is left after
        ``grace`` seconds, until none is left. Signals to this process are ignored meanwhile,
        so a second SIGTERM cannot cut the clean-up short."""
        for ignored in (signal.SIGTERM, signal.SIGINT):
            signal.signal(ignored, signal.SIG_IGN)
        deadline = time.monotonic() + grace
        sig: int | None = signal.SIGTERM
        while True:
            for proc in self.procs.values():
                proc.poll()  # reap the services themselves
            members = self._members()
            if not members:
                return
            if time.monotonic() > deadline:
                sig = signal.SIGKILL
            if sig is not None:
                for pid in members:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)
            sig = None if sig == signal.SIGTERM else sig
            time.sleep(0.5)


@contextlib.contextmanager
def _deployment(home: Path, parallelism: int) -> Iterator[_Deployment]:
    """A :class:`_Deployment` for the block, stopped when it ends (also on failure)."""
    deployment = _Deployment(home, parallelism)
    try:
        yield deployment
    finally:
        deployment.stop()


def _stop_on_sigterm() -> None:
    """SIGTERM (the harness's timeout stops this process's group) ends this process through
    ``SystemExit``, so that :func:`_deployment` stops Airflow's services on the way out."""
    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)


def _get(url: str) -> Any:
    """GET ``url``: the reply, or None when the API did not answer (busy, restarting)."""
    import httpx

    try:
        return httpx.get(url, timeout=60)
    except httpx.TransportError:
        return None


def _scheduled_run(d: _Deployment, dag_id: str, run_id: str, timeout: float) -> float:
    """Trigger ``dag_id`` through the REST API and wait for the DagRun to end; Airflow's own
    record of its duration (``end_date`` − ``queued_at``, seconds).

    Raises ``SystemExit`` if it does not end in success within ``timeout`` seconds (naming
    the failed task instances and their logs), or if a service exits meanwhile.
    """
    import httpx

    runs = f"{d.url}/api/v2/dags/{dag_id}/dagRuns"
    httpx.post(runs, json={"dag_run_id": run_id, "logical_date": None},
               timeout=60).raise_for_status()
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        time.sleep(0.5)
        d.check_alive()
        reply = _get(f"{runs}/{run_id}")
        if reply is None or reply.status_code != 200:  # e.g. SQLite busy: ask again
            last = (" (last reply: " + (f"{reply.status_code} {reply.text[:300]}" if reply
                                        else "none") + ")")
            continue
        run = reply.json()
        if run["state"] == "failed":
            tis = _get(f"{runs}/{run_id}/taskInstances?state=failed")
            failed = ([ti["task_id"] for ti in tis.json().get("task_instances", [])]
                      if tis is not None and tis.status_code == 200 else [])
            raise SystemExit(f"Airflow's scheduler ended {dag_id} failed (failed: "
                             f"{', '.join(failed) or 'none listed'}; logs under "
                             f"{d.home / 'logs' / f'dag_id={dag_id}' / f'run_id={run_id}'})")
        if run["state"] == "success":
            ended = datetime.fromisoformat(run["end_date"])
            return (ended - datetime.fromisoformat(run["queued_at"])).total_seconds()
    raise SystemExit(f"Airflow's scheduler did not finish {dag_id} in {timeout:.0f} s{last}")


def _wait_for_dag(d: _Deployment, dag_file: str, dag_id: str, timeout: float = 300) -> None:
    """Until the API serves ``dag_id`` (the DAG processor parsed it and the API is up);
    ``SystemExit`` with the traceback if the DAG processor cannot import ``dag_file``, or if
    a service exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d.check_alive()
        reply = _get(f"{d.url}/api/v2/dags/{dag_id}")
        if reply is not None and reply.status_code == 200:
            return
        errors = _get(f"{d.url}/api/v2/importErrors")
        with contextlib.suppress(ValueError, AttributeError):
            for error in errors.json().get("import_errors", []):
                if Path(str(error.get("filename"))).name == Path(dag_file).name:
                    raise SystemExit(f"Airflow's DAG processor could not import {dag_file}: "
                                     f"{error.get('stack_trace')}")
        time.sleep(1)
    raise SystemExit(f"Airflow's DAG processor did not parse {dag_id} in {timeout:.0f} s")


def _unpause(url: str, dag_id: str) -> None:
    """Unpause ``dag_id`` (an earlier ``dag.test()`` on this home created it paused)."""
    import httpx

    httpx.patch(f"{url}/api/v2/dags/{dag_id}", json={"is_paused": False},
                timeout=60).raise_for_status()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run one mode and print its result line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.airflow_side", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["import", "dag-test", "scheduler"])
    p.add_argument("dag_file", nargs="?")
    p.add_argument("dag_id", nargs="?")
    p.add_argument("--warmup-file")
    p.add_argument("--warmup-id")
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--parallelism", type=int, default=16)
    p.add_argument("--timeout", type=float, default=1800,
                   help="seconds one scheduled run may take (scheduler mode)")
    args = p.parse_args(argv)
    if args.mode in ("dag-test", "scheduler") and not (args.dag_file and args.dag_id):
        p.error(f"{args.mode} needs FILE and DAG_ID")
    if args.mode == "scheduler" and not os.environ.get("AIRFLOW_HOME"):
        p.error("scheduler needs AIRFLOW_HOME: a migrated Airflow home whose dags/ holds FILE "
                "(python -m benchmarks --only parallel makes one per case)")

    t0 = time.perf_counter()
    import airflow  # noqa: F401  (reads AIRFLOW_HOME now)

    out: dict[str, Any] = {"mode": args.mode, "import_s": time.perf_counter() - t0,
                           "startup_s": t0 - _T_START}
    if args.mode == "dag-test":
        t1 = time.perf_counter()
        warm = _load_dag(args.warmup_file or args.dag_file, args.warmup_id or args.dag_id)
        dag = warm if (args.warmup_id or args.dag_id) == args.dag_id else _load_dag(
            args.dag_file, args.dag_id)
        out["load_dag_files_s"] = time.perf_counter() - t1
        out["first_test_s"], _ = _test(warm)
        # From before `import airflow` to the end of the first dag.test(): what a user waits
        # for when running a DAG file with `python dag.py` and `dag.test()` at its bottom.
        out["first_total_s"] = time.perf_counter() - t0
        out["tasks"] = len(dag.task_dict)
        cpu: list[float] = []
        out["runs_s"] = [_test(dag, cpu)[0] for _ in range(args.reps)]
        out["runs_cpu_s"] = cpu
    if args.mode == "scheduler":
        home = Path(os.environ["AIRFLOW_HOME"])
        _load_dag(args.dag_file, args.dag_id)  # a wrong file or id fails here, not in 300 s
        _stop_on_sigterm()
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        with _deployment(home, args.parallelism) as d:
            _wait_for_dag(d, args.dag_file, args.dag_id)
            _unpause(d.url, args.dag_id)
            out["warm_s"] = _scheduled_run(d, args.dag_id, f"kyte_bench_{stamp}_warm",
                                           args.timeout)
            out["runs_s"] = [_scheduled_run(d, args.dag_id, f"kyte_bench_{stamp}_{i}",
                                            args.timeout) for i in range(args.reps)]
    out.update(rss_mb=_rss_mb(), peak_mb=_peak_mb())
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
