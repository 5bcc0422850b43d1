"""Kyte against Airflow's own tools, measured in the same run on the same machine.

Run ``python -m benchmarks`` (or ``python benchmarks/run.py``) from the repository root;
``--quick`` for fewer repetitions and no 1,000-task runs, ``--smoke`` for the tiny run the
test suite uses. See benchmarks/README.md for what is measured and how to read it.

The harness itself never imports Airflow: Airflow reads its home at import time, so every
Airflow measurement runs in a subprocess with an ``AIRFLOW_HOME`` of its own, and every Kyte
measurement in a real IPython kernel (or, for session creation and export, in this process
through Kyte's Airflow-free modules).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import dags, lint_overhead, parallel  # noqa: E402
from benchmarks.airflow_side import RESULT_PREFIX  # noqa: E402
from benchmarks.kernel import BenchKernel, CellError  # noqa: E402
from benchmarks.report import (  # noqa: E402
    Row,
    Stat,
    fmt_value,
    markdown_table,
    plot_sizes,
    ratios_text,
    speedup,
    stat,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results"


class BenchError(RuntimeError):
    """A measurement could not be taken; the message says which and why."""


@dataclass
class Plan:
    """How much to repeat each measurement, by mode."""

    mode: str
    sizes: list[int]
    session_reps: int
    migrate_reps: int
    cli_reps: int
    import_reps: int
    first_reps: int
    warm_task_reps: int
    dag_reps: dict[int, int]
    ui_repeat: int
    export_reps: int

    @classmethod
    def for_mode(cls, mode: str) -> Plan:
        """The plan for ``full``, ``quick`` or ``smoke``."""
        if mode == "smoke":
            return cls(mode, [3], 3, 0, 0, 1, 1, 3, {3: 1}, 0, 1)
        if mode == "quick":
            return cls(mode, [3, 200], 10, 2, 1, 2, 2, 15, {3: 5, 200: 2}, 1, 3)
        return cls(mode, [3, 200, 1000], 20, 3, 3, 3, 3, 30, {3: 10, 200: 3, 1000: 2}, 3, 5)


# ---- helpers --------------------------------------------------------------------------------

def log(msg: str) -> None:
    """Progress on stderr, so stdout stays the readable report."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_text() -> str:
    """The 1/5/15-minute load averages and the number of CPUs."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def airflow_cli() -> list[str]:
    """The ``airflow`` command of this interpreter's environment."""
    exe = Path(sys.executable).with_name("airflow")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "airflow"]


def child_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment for a child, with Airflow pointed at ``home``."""
    env = dict(os.environ)
    for name in ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "KYTE_SESSION_HOME"):
        env.pop(name, None)
    if home is not None:
        env["AIRFLOW_HOME"] = str(home)
        if (home / "airflow.cfg").is_file():
            env["AIRFLOW_CONFIG"] = str(home / "airflow.cfg")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
    env.update(extra)
    return env


def spawn(cmd: list[str], env: dict[str, str], logfile: Path, timeout: float,
          cwd: Path = REPO) -> tuple[float, str, int]:
    """Run a command in its own process group: (wall seconds, stdout, exit code).

    Its stderr and the tail of its stdout go to ``logfile``. On timeout the whole process
    group (started here) is stopped.
    """
    logfile.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with logfile.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=f, text=True, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.communicate()
            raise BenchError(
                f"{cmd[:4]} did not finish in {timeout:.0f}s (see {logfile})") from None
        took = time.perf_counter() - t0
        f.write(out[-20000:])
    return took, out, proc.returncode


def run_child(cmd: list[str], env: dict[str, str], logfile: Path, timeout: float,
              cwd: Path = REPO) -> tuple[float, str]:
    """:func:`spawn` a command that must succeed; (wall seconds, stdout)."""
    took, out, code = spawn(cmd, env, logfile, timeout, cwd)
    if code != 0:
        raise BenchError(f"{' '.join(cmd[:5])} failed ({code}); see {logfile}")
    return took, out


def child_result(out: str) -> dict[str, Any]:
    """The ``KYTE-BENCH-RESULT`` line an ``airflow_side`` child printed."""
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
            return result
    raise BenchError("the Airflow child printed no result line")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed_cell(stmt: str) -> str:
    """A cell that times ``stmt`` inside the kernel: wall ``_kb_dt`` and ``_kb_cpu``, the CPU
    time of the whole kernel process (every thread) in seconds. CPU time barely moves when
    other processes load the machine, so it is the steadier measure for comparisons."""
    return ("import time as _kb_time\n"
            "_kb_t0, _kb_c0 = _kb_time.perf_counter(), _kb_time.process_time()\n"
            f"{stmt}\n_kb_dt = _kb_time.perf_counter() - _kb_t0\n"
            "_kb_cpu = _kb_time.process_time() - _kb_c0\n")


def define_cell(source: str) -> str:
    """A cell that runs ``%%dag`` with ``source`` as its body, timed inside the kernel."""
    return timed_cell(f"get_ipython().run_cell_magic('dag', '', {source!r})")


# ---- the benchmark --------------------------------------------------------------------------

class Bench:
    """One benchmark run: its plan, scratch folders, measurements and rows."""

    def __init__(self, plan: Plan, out_dir: Path, sessions_root: Path | None,
                 ui: bool, keep: bool) -> None:
        self.plan = plan
        self.out_dir = out_dir
        self.ui = ui
        self.keep = keep
        self.stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.work = Path(tempfile.mkdtemp(prefix="kyte-bench-"))
        self.root = sessions_root or self.work / "sessions"
        self.root.mkdir(parents=True, exist_ok=True)
        os.environ["KYTE_SESSIONS_ROOT"] = str(self.root)
        self.notebooks = self.work / "notebooks"
        self.notebooks.mkdir()
        # Children's output (Airflow's logs, Playwright's) is kept next to the results.
        self.logfile = out_dir / f"{self.stamp}.log"
        self.m: dict[str, Stat] = {}
        self.info: dict[str, Any] = {}
        self.kernels: list[BenchKernel] = []
        self.extra_rows: list[Row] = []  # rows of the sections in their own modules
        self.only: str | None = None  # run one section only (``--only``)
        from kyte_jupyter.session import SessionStore

        self.store = SessionStore(self.root)

    # ---- bookkeeping ----------------------------------------------------------------------
    def put(self, key: str, values: list[float], unit: str = "s") -> Stat:
        """Record a repeated measurement under ``key``."""
        s = stat(values, unit)
        self.m[key] = s
        log(f"  {key}: {fmt_value(s['median'], unit)} "
            f"({fmt_value(s['min'], unit)}–{fmt_value(s['max'], unit)}, n={s['n']})")
        return s

    def home(self, name: str, sizes: list[int]) -> Path:
        """A fresh Airflow home (migrated metastore) whose dags/ holds these DAG files."""
        session = self.store.for_notebook(str(self.notebooks / f"{name}.ipynb"))
        for n in sizes:
            dags.write_dag_file(session.dags_folder, n)
        return session.home

    def kernel(self, name: str) -> BenchKernel:
        """A real kernel for a new notebook (so a new session)."""
        k = BenchKernel(self.notebooks / f"{name}.ipynb", self.root, self.notebooks,
                        {"PYTHONPATH": child_env()["PYTHONPATH"]})
        self.kernels.append(k)
        return k

    def stop_kernel(self, k: BenchKernel) -> None:
        """Shut one kernel down."""
        k.shutdown()
        self.kernels.remove(k)

    @contextlib.contextmanager
    def section(self, title: str) -> Iterator[None]:
        """Log a section with its duration."""
        log(f"{title} (load {load_text()})")
        t0 = time.perf_counter()
        yield
        log(f"  … {time.perf_counter() - t0:.1f}s")

    # ---- Kyte side ------------------------------------------------------------------------
    def sessions(self) -> None:
        """New session ready: a home cloned from the template metastore."""
        with self.section("Kyte: template metastore and new sessions"):
            reused = any((self.root / ".templates").glob("*/airflow.db"))
            t0 = time.perf_counter()
            self.store.template_db()
            self.info["template_s"] = time.perf_counter() - t0
            self.info["template_reused"] = reused
            values = []
            for i in range(self.plan.session_reps):
                t0 = time.perf_counter()
                self.store.for_notebook(str(self.notebooks / f"session-{i}.ipynb"))
                values.append(time.perf_counter() - t0)
            self.put("kyte.session_new", values)
        if self.plan.mode != "smoke":  # issue 18: 20 back to back, SQLite and PostgreSQL
            with self.section("Kyte: 20 new sessions back to back, SQLite and PostgreSQL"):
                from benchmarks import team

                r = team.session_creation(20)
                self.put("kyte.session_new.sqlite_20", r["sqlite"])
                if r["postgres"]:
                    self.put("kyte.session_new.postgres_20", r["postgres"])
                    self.info["postgres_template_s"] = r["postgres_template_s"]

    def first_run(self, k: BenchKernel, source: str) -> dict[str, float]:
        """``%load_ext``, ``%%dag`` and the first ``%run_task`` in a fresh kernel."""
        phases: dict[str, float] = {"kernel_start_s": k.start_seconds}
        total_rt = 0.0
        k.reset_peak()
        for name, code in (
            ("load_ext", timed_cell("%load_ext kyte_jupyter")),
            ("define", define_cell(source)),
            ("run_task", timed_cell("_kb_r = %run_task bench_1 t_0")),
        ):
            r = k.ok(code, {"dt": "_kb_dt"})
            phases[f"{name}_s"] = r.expressions["dt"]
            phases[f"{name}_round_trip_s"] = r.round_trip
            total_rt += r.round_trip
        state = k.value("_kb_r.state")
        if state != "success":
            raise BenchError(f"first %run_task ended {state}")
        phases["total_s"] = phases["load_ext_s"] + phases["define_s"] + phases["run_task_s"]
        phases["total_round_trip_s"] = total_rt
        phases.update({f"{key}": v for key, v in k.memory().items()})
        return phases

    def first_runs(self) -> BenchKernel:
        """First ``%run_task`` in fresh kernels, interleaved with first ``dag.test()`` runs.

        Returns the first kernel, kept for the warm measurements.
        """
        plan = self.plan
        with self.section("First run: fresh kernels and fresh Airflow processes, interleaved"):
            firsts, airflow_runs = [], []
            warm: BenchKernel | None = None
            for i in range(plan.first_reps):
                k = self.kernel(f"kyte-first-{i}")
                firsts.append(self.first_run(k, dags.dag_source(1)))
                if warm is None:
                    warm = k
                else:
                    self.stop_kernel(k)
                home = self.home(f"airflow-first-{i}", [1])
                reps = max(1, plan.warm_task_reps // max(1, plan.first_reps))
                _, out = run_child([sys.executable, "-m", "benchmarks.airflow_side", "dag-test",
                                    str(home / "dags" / "bench_1.py"), "bench_1",
                                    "--reps", str(reps)],
                                   child_env(home), self.logfile, timeout=1200)
                airflow_runs.append(child_result(out))
            for key in ("kernel_start_s", "load_ext_s", "define_s", "run_task_s", "total_s",
                        "total_round_trip_s"):
                self.put(f"kyte.first.{key[:-2]}", [f[key] for f in firsts])
            self.put("kyte.first.peak_mb", [f["peak_mb"] for f in firsts], "MB")
            runs = airflow_runs
            self.put("airflow.first.import", [r["import_s"] for r in runs])
            self.put("airflow.first.dag_test", [r["first_test_s"] for r in runs])
            self.put("airflow.first.total", [r["first_total_s"] for r in runs])
            self.put("airflow.first.peak_mb", [r["peak_mb"] for r in runs], "MB")
            self.put("airflow.dag_test.warm_1", [v for r in runs for v in r["runs_s"]])
            self.put("airflow.dag_test.warm_1_cpu", [v for r in runs for v in r["runs_cpu_s"]])
        assert warm is not None
        return warm

    def warm_task(self, k: BenchKernel) -> None:
        """Warm ``%run_task`` of a trivial task, then the ``airflow tasks test`` CLI."""
        plan = self.plan
        with self.section("Kyte: warm %run_task"):
            for _ in range(3):  # warm-up tries, not recorded
                k.ok(timed_cell("_kb_r = %run_task bench_1 t_0"))
            k.reset_peak()
            inner, rt, cpu = [], [], []
            for _ in range(plan.warm_task_reps):
                r = k.ok(timed_cell("_kb_r = %run_task bench_1 t_0"),
                         {"dt": "_kb_dt", "cpu": "_kb_cpu", "state": "_kb_r.state"})
                if r.expressions["state"] != "success":
                    raise BenchError(f"%run_task ended {r.expressions['state']}")
                inner.append(r.expressions["dt"])
                rt.append(r.round_trip)
                cpu.append(r.expressions["cpu"])
            self.put("kyte.run_task.warm", inner)
            self.put("kyte.run_task.warm_round_trip", rt)
            self.put("kyte.run_task.warm_cpu", cpu)
            self.put("kyte.run_task.peak_mb", [k.memory()["peak_mb"]], "MB")
        if plan.cli_reps:
            with self.section("Airflow: `airflow tasks test bench_1 t_0` CLI"):
                home = self.home("airflow-cli", [1])
                values = []
                for _ in range(plan.cli_reps):
                    took, _ = run_child(airflow_cli() + ["tasks", "test", "bench_1", "t_0"],
                                        child_env(home), self.logfile, timeout=600)
                    values.append(took)
                self.put("airflow.tasks_test_cli", values)

    def define_all(self, k: BenchKernel) -> None:
        """``%%dag`` of every benchmark DAG (the 1,000-task one always, for the RSS row)."""
        with self.section("Kyte: %%dag of the benchmark DAGs"):
            for n in sorted({3, *self.plan.sizes, 1000}):
                r = k.ok(define_cell(dags.dag_source(n)), {"dt": "_kb_dt"})
                self.put(f"kyte.define.{n}", [r.expressions["dt"]])
                self.put(f"kyte.define.{n}_round_trip", [r.round_trip])
            self.put("kyte.rss_after_define_1000", [k.memory()["rss_mb"]], "MB")

    def kyte_dag(self, k: BenchKernel, n: int) -> None:
        """``%run_dag`` of the ``n``-task DAG in the warm kernel."""
        with self.section(f"Kyte: %run_dag of {n} tasks"):
            if n == 3:
                k.ok(timed_cell("_kb_r = %run_dag bench_3"))  # warm-up, not recorded
            k.reset_peak()
            inner, rt, cpu = [], [], []
            for _ in range(self.plan.dag_reps[n]):
                r = k.ok(timed_cell(f"_kb_r = %run_dag {dags.dag_id(n)}"),
                         {"dt": "_kb_dt", "cpu": "_kb_cpu", "state": "_kb_r.state",
                          "n": "len(_kb_r.task_states)"})
                if r.expressions["state"] != "success" or r.expressions["n"] != n:
                    raise BenchError(f"%run_dag {dags.dag_id(n)} ended "
                                     f"{r.expressions['state']} with {r.expressions['n']}")
                inner.append(r.expressions["dt"])
                rt.append(r.round_trip)
                cpu.append(r.expressions["cpu"])
            self.put(f"kyte.run_dag.{n}", inner)
            self.put(f"kyte.run_dag.{n}_round_trip", rt)
            self.put(f"kyte.run_dag.{n}_cpu", cpu)
            self.put(f"kyte.run_dag.{n}_peak_mb", [k.memory()["peak_mb"]], "MB")

    def airflow_dag(self, n: int) -> None:
        """Warm ``dag.test()`` of the ``n``-task DAG file, in a process of its own."""
        with self.section(f"Airflow: warm dag.test() of {n} tasks"):
            home = self.home(f"airflow-dag-{n}", [1, n])
            _, out = run_child(
                [sys.executable, "-m", "benchmarks.airflow_side", "dag-test",
                 str(home / "dags" / f"bench_{n}.py"), dags.dag_id(n),
                 "--warmup-file", str(home / "dags" / "bench_1.py"), "--warmup-id",
                 "bench_1", "--reps", str(self.plan.dag_reps[n])],
                child_env(home), self.logfile, timeout=7200)
            r = child_result(out)
            if r["tasks"] != n:
                raise BenchError(f"dag.test() DAG has {r['tasks']} tasks, not {n}")
            self.put(f"airflow.dag_test.{n}", r["runs_s"])
            self.put(f"airflow.dag_test.{n}_cpu", r["runs_cpu_s"])
            self.put(f"airflow.dag_test.{n}_peak_mb", [r["peak_mb"]], "MB")

    def kernel_memory(self, k: BenchKernel) -> None:
        """The warm kernel's RSS once every DAG is defined and has run."""
        self.put("kyte.rss_final", [k.memory()["rss_mb"]], "MB")
        self.info["kyte_rss_state"] = (
            f"after %%dag of DAGs with {sorted({3, *self.plan.sizes, 1000})} tasks and "
            f"%run_dag of {self.plan.sizes}")

    def export(self) -> None:
        """Export of a 1,000-task notebook (in this process; export never imports Airflow)."""
        with self.section("Kyte: export of a 1,000-task notebook"):
            from kyte_jupyter.export import export_notebook

            nb = dags.export_notebook(self.work / "export" / "bench_export.ipynb", 1000)
            values = []
            for i in range(self.plan.export_reps + 1):
                out = self.work / "export" / f"out-{i}"
                t0 = time.perf_counter()
                written = export_notebook(nb, output_dir=out)
                took = time.perf_counter() - t0
                if i == 0:
                    self.info["export_first_call_s"] = took  # includes importing nbconvert
                    source = written[0].read_text()
                    compile(source, str(written[0]), "exec")
                    self.info["export_output"] = {"files": len(written),
                                                  "lines": source.count("\n")}
                    continue
                values.append(took)
            self.put("kyte.export.1000", values)

    def ui_render(self) -> None:
        """The sidebar's 1,000-task layout + render, from labextension's Galata benchmark."""
        script = REPO / "labextension" / "ui-tests" / "run.sh"
        why = None
        if not self.ui or self.plan.ui_repeat == 0:
            why = "skipped (--no-ui or --smoke)"
        elif not script.is_file():
            why = "no labextension/ui-tests/run.sh"
        elif not (shutil.which("chromium") or os.environ.get("CHROMIUM_PATH")):
            why = "no Chromium (apt-get install -y chromium)"
        elif not (REPO / "labextension" / "ui-tests" / "node_modules").is_dir():
            why = "labextension/ui-tests dependencies not installed"
        if why:
            self.info["ui"] = why
            return
        with self.section("Sidebar: layout + render of 1,000 tasks in Chromium (Galata)"):
            env = child_env(KYTE_UI_PORT=str(free_port()))
            cmd = ["bash", str(script), "--grep", "lays out and renders 1000 tasks",
                   f"--repeat-each={self.plan.ui_repeat}", "--reporter=line"]
            _, out, code = spawn(cmd, env, self.logfile, timeout=900, cwd=script.parent)
            if code != 0:
                # A repetition over the test's own time limit fails the Playwright run; the
                # times it printed are still measurements.
                self.info["ui_exit"] = f"run.sh exited {code}; see {self.logfile}"
                log(f"  {self.info['ui_exit']}")
            pat = re.compile(r"KYTE-PERF 1000 tasks: layout (\d+) ms, render (\d+) ms, "
                             r"data-to-paint (\d+) ms; zoom frame (\d+) ms")
            found = [tuple(int(x) / 1000 for x in m.groups()) for m in pat.finditer(out)]
            if not found:
                self.info["ui"] = ("the Galata test printed no KYTE-PERF line"
                                   + (f" ({self.info['ui_exit']})" if code else ""))
                return
            for i, key in enumerate(("layout", "render", "total", "zoom_frame")):
                self.put(f"ui.render_1000.{key}", [f[i] for f in found])

    # ---- Airflow side ---------------------------------------------------------------------
    def airflow_setup(self) -> None:
        """Airflow's fixed costs: ``airflow db migrate`` and a plain ``import airflow``."""
        plan = self.plan
        if plan.migrate_reps:
            with self.section("Airflow: `airflow db migrate` into a fresh home"):
                values = []
                for i in range(plan.migrate_reps):
                    home = self.work / f"migrate-{i}"
                    home.mkdir()
                    took, _ = run_child(airflow_cli() + ["db", "migrate"], child_env(home),
                                        self.logfile, timeout=600)
                    values.append(took)
                    shutil.rmtree(home, ignore_errors=True)
                self.put("airflow.db_migrate", values)
        with self.section("Airflow: plain `import airflow` in a fresh process"):
            home = self.home("airflow-import", [])
            runs = []
            for _ in range(plan.import_reps):
                _, out = run_child([sys.executable, "-m", "benchmarks.airflow_side", "import"],
                                   child_env(home), self.logfile, timeout=600)
                runs.append(child_result(out))
            self.put("airflow.import", [r["import_s"] for r in runs])
            self.put("airflow.import_rss", [r["rss_mb"] for r in runs], "MB")

    # ---- rows -----------------------------------------------------------------------------
    def rows(self) -> list[Row]:
        """The comparison table, with each target marked met or missed."""
        m = self.m.get
        rows: list[Row] = []

        s, b = m("kyte.session_new"), m("airflow.db_migrate")
        ratio = speedup(s, b)
        rows.append(Row(
            "New session ready (home + metastore)", s, "`airflow db migrate`, fresh home", b,
            ratio, target="≤ 0.3 s, ≥ 20× migrate",
            met=_all(s and s["median"] <= 0.3, None if ratio is None else ratio >= 20),
            note=(f"template metastore built once per Airflow version in "
                  f"{self.info.get('template_s', 0):.1f}s"
                  + (" (reused)" if self.info.get("template_reused") else "")),
        ))

        pg, sq = m("kyte.session_new.postgres_20"), m("kyte.session_new.sqlite_20")
        if pg or sq:
            rows.append(Row(
                "New session, 20 back to back: PostgreSQL database (team mode)", pg,
                "the same on SQLite (embedded default)", sq, target="≤ 0.5 s",
                met=None if pg is None else pg["median"] <= 0.5,
                note=("PostgreSQL template database migrated once in "
                      f"{self.info.get('postgres_template_s', 0):.1f}s; sessions are "
                      "CREATE DATABASE … TEMPLATE clones"),
            ))

        k, dt, cli = m("kyte.run_task.warm"), m("airflow.dag_test.warm_1"), m(
            "airflow.tasks_test_cli")
        r_dt, r_cli = speedup(k, dt), speedup(k, cli)
        rows.append(Row(
            "Warm `%run_task`, trivial task (in kernel)", k,
            "warm in-process `dag.test()`, 1-task DAG", dt, r_dt,
            ratio_text=ratios_text([("dag.test", r_dt), ("CLI", r_cli)]),
            target="≤ 30 ms, ≥ 3× dag.test(), ≥ 300× CLI",
            met=_all(k and k["median"] <= 0.030, _ge(r_dt, 3), _ge(r_cli, 300)),
            peak_mb=_peak(m("kyte.run_task.peak_mb")),
            extra_baselines=[{"name": "`airflow tasks test` CLI", "stat": cli}] if cli else [],
            note=_rt_note(m("kyte.run_task.warm_round_trip"), cpu=m("kyte.run_task.warm_cpu"),
                          base_cpu=m("airflow.dag_test.warm_1_cpu")),
        ))

        k, f, imp = m("kyte.first.total"), m("airflow.first.total"), m("airflow.import")
        budget = imp["median"] + 0.5 if imp else None
        rows.append(Row(
            "First `%run_task` in a fresh kernel (`%load_ext` + `%%dag` + `%run_task`)", k,
            "`import airflow` + first `dag.test()`, fresh process", f, speedup(k, f),
            target=("≤ Airflow import + 0.5 s" + (f" = {budget:.2f} s" if budget else "")),
            met=None if (k is None or budget is None) else k["median"] <= budget,
            peak_mb=_peak(m("kyte.first.peak_mb")),
            note=self._first_note(),
        ))

        for n in self.plan.sizes:
            k, d = m(f"kyte.run_dag.{n}"), m(f"airflow.dag_test.{n}")
            ratio = speedup(k, d)
            limit = {200: 2.0, 1000: 10.0}.get(n)
            target = f"≤ {limit:g} s, ≥ 10× dag.test()" if limit else ""
            met = _all(k and k["median"] <= limit, _ge(ratio, 10)) if limit else None
            rows.append(Row(
                f"`%run_dag`, {n} trivial tasks", k, "warm `dag.test()`, same DAG file", d,
                ratio, target=target, met=met, peak_mb=_peak(m(f"kyte.run_dag.{n}_peak_mb")),
                note=_rt_note(m(f"kyte.run_dag.{n}_round_trip"), per_task=n, kyte=k, base=d,
                              cpu=m(f"kyte.run_dag.{n}_cpu"),
                              base_cpu=m(f"airflow.dag_test.{n}_cpu")),
            ))
        if 1000 not in self.plan.sizes:
            rows.append(Row("`%run_dag`, 1000 trivial tasks", None,
                            note=f"skipped in --{self.plan.mode}"))

        k, imp_rss = m("kyte.rss_final"), m("airflow.import_rss")
        rows.append(Row(
            "Kernel RSS, session + 1,000-task DAG", k, "plain `import airflow`", imp_rss,
            ratio_text=(f"{k['median'] / imp_rss['median']:.2f}× the RSS" if k and imp_rss
                        else ""),
            target="≤ 250 MB", met=None if k is None else k["median"] <= 250,
            note=(f"{self.info.get('kyte_rss_state', '')}; RSS right after %%dag of the "
                  f"1,000-task DAG: "
                  + (fmt_value(m("kyte.rss_after_define_1000")["median"], "MB")  # type: ignore[index]
                     if m("kyte.rss_after_define_1000") else "—")),
        ))

        k = m("kyte.export.1000")
        rows.append(Row(
            "Export of a 1,000-task notebook", k, target="≤ 1 s",
            met=None if k is None else k["median"] <= 1.0,
            note=(f"first call in the process (imports nbconvert): "
                  f"{self.info.get('export_first_call_s', 0):.2f}s; "
                  f"output {self.info.get('export_output')}"),
        ))

        k = m("ui.render_1000.total")
        if k:
            lay, ren = m("ui.render_1000.layout"), m("ui.render_1000.render")
            zoom = m("ui.render_1000.zoom_frame")
            note = (f"layout {fmt_value(lay['median'], 's') if lay else '—'}, render "
                    f"{fmt_value(ren['median'], 's') if ren else '—'}, zoom frame "
                    f"{fmt_value(zoom['median'], 's') if zoom else '—'} (medians; "
                    "labextension/ui-tests mocked.spec.ts 'performance')"
                    + (f"; {self.info['ui_exit']}" if "ui_exit" in self.info else ""))
            rows.append(Row("Sidebar layout + render, 1,000 tasks (Chromium)", k,
                            target="≤ 1 s", met=k["median"] <= 1.0, note=note))
        else:
            rows.append(Row("Sidebar layout + render, 1,000 tasks (Chromium)", None,
                            target="≤ 1 s",
                            note=f"see labextension ({self.info.get('ui', 'not run')})"))
        rows.append(lint_overhead.row(m, self.info))
        return (rows if self.only is None else []) + self.extra_rows

    def _first_note(self) -> str:
        m = self.m.get
        parts = []
        for key, label in (("kernel_start", "kernel start (not counted)"),
                           ("load_ext", "%load_ext"), ("define", "%%dag (imports Airflow)"),
                           ("run_task", "first %run_task")):
            s = m(f"kyte.first.{key}")
            if s:
                parts.append(f"{label} {fmt_value(s['median'], 's')}")
        imp, fd = m("airflow.first.import"), m("airflow.first.dag_test")
        if imp and fd:
            parts.append(f"Airflow side: import {fmt_value(imp['median'], 's')} + first "
                         f"dag.test() {fmt_value(fd['median'], 's')}")
        rt = m("kyte.first.total_round_trip")
        if rt:
            parts.append(f"round trip of the three cells {fmt_value(rt['median'], 's')}")
        return "; ".join(parts)

    # ---- the whole run ----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Measure everything, in an order that keeps Kyte and Airflow runs side by side."""
        started = time.perf_counter()
        meta: dict[str, Any] = {
            "timestamp": self.stamp,
            "mode": self.plan.mode,
            "plan": self.plan.__dict__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "airflow_version": _airflow_version(),
            "kyte_commit": _git(["rev-parse", "--short", "HEAD"]),
            "kyte_dirty": bool(_git(["status", "--porcelain", "kyte_jupyter"])),
            "load_before": os.getloadavg(),
        }
        try:
            if self.only == "parallel":
                self.store.template_db()
                parallel.measure(self)
                return self._results(meta, started)
            # Each Kyte measurement sits next to its Airflow baseline in time, so a change
            # of load on a shared machine hits both sides alike.
            self.sessions()
            self.airflow_setup()
            k = self.first_runs()
            self.warm_task(k)
            self.define_all(k)
            for n in self.plan.sizes:
                self.kyte_dag(k, n)
                self.airflow_dag(n)
            self.kernel_memory(k)
            self.stop_kernel(k)
            self.export()
            lint_overhead.measure(self)
            if self.plan.mode != "smoke":
                parallel.measure(self)  # issue 17: %run_dag --parallelism vs dag.test()
            self.ui_render()
        finally:
            for k in list(self.kernels):
                with contextlib.suppress(Exception):
                    self.stop_kernel(k)
        return self._results(meta, started)

    def _results(self, meta: dict[str, Any], started: float) -> dict[str, Any]:
        meta["load_after"] = os.getloadavg()
        meta["duration_s"] = time.perf_counter() - started
        rows = self.rows()
        return {"meta": meta, "info": self.info, "measurements": self.m,
                "rows": [r.to_json() for r in rows], "_rows": rows}

    def cleanup(self) -> None:
        """Remove the scratch folder unless asked to keep it."""
        if self.keep:
            log(f"scratch kept in {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def _all(*flags: bool | None | Any) -> bool | None:
    """All checks passed (None when any could not be evaluated)."""
    if any(f is None for f in flags):
        return None
    return all(bool(f) for f in flags)


def _ge(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def _peak(s: Stat | None) -> float | None:
    return None if s is None else float(s["max"])


def _rt_note(rt: Stat | None, per_task: int = 0, kyte: Stat | None = None,
             base: Stat | None = None, cpu: Stat | None = None,
             base_cpu: Stat | None = None) -> str:
    parts = []
    if rt:
        parts.append(f"round trip {fmt_value(rt['median'], 's')}")
    if cpu:
        parts.append(f"CPU time Kyte {fmt_value(cpu['median'], 's')}")
    if cpu and base_cpu:
        parts.append(f"dag.test() {fmt_value(base_cpu['median'], 's')} "
                     f"(CPU ratio {base_cpu['median'] / cpu['median']:.1f}×)")
    if per_task and kyte:
        parts.append(f"Kyte {kyte['median'] / per_task * 1000:.1f} ms/task")
    if per_task and base:
        parts.append(f"dag.test() {base['median'] / per_task * 1000:.1f} ms/task")
    return ", ".join(parts)


def _airflow_version() -> str:
    from kyte_jupyter.session import airflow_version

    return airflow_version()


def _git(args: list[str]) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=False).stdout.strip()
    except OSError:
        return ""


def write_outputs(results: dict[str, Any], out_dir: Path, plot: bool = True) -> dict[str, str]:
    """Write ``<timestamp>.json`` (and ``.md``, ``.png``) into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["meta"]["timestamp"]
    rows: list[Row] = results.pop("_rows")
    paths = {"json": str(out_dir / f"{stamp}.json"), "markdown": str(out_dir / f"{stamp}.md")}
    if plot:
        m = results["measurements"]
        series: dict[str, dict[int, Stat]] = {"Kyte %run_dag (in kernel)": {},
                                               "Airflow dag.test() (warm)": {}}
        for key, s in m.items():
            hit = re.fullmatch(r"(kyte\.run_dag|airflow\.dag_test)\.(\d+)", key)
            if hit:
                label = ("Kyte %run_dag (in kernel)" if hit.group(1) == "kyte.run_dag"
                         else "Airflow dag.test() (warm)")
                series[label][int(hit.group(2))] = s
        png = out_dir / f"{stamp}.png"
        why = plot_sizes(series, png, f"Kyte vs dag.test(), {results['meta']['cpus']} CPUs, "
                                      f"Airflow {results['meta']['airflow_version']}",
                         targets={200: 2.0, 1000: 10.0})
        if why:
            results["meta"]["plot"] = why
        else:
            paths["plot"] = str(png)
    results["meta"]["files"] = paths
    table = render(results, rows)
    Path(paths["markdown"]).write_text(table + "\n", encoding="utf-8")
    Path(paths["json"]).write_text(json.dumps(results, indent=2, default=str) + "\n",
                                   encoding="utf-8")
    results["_table"] = table
    return paths


def render(results: dict[str, Any], rows: list[Row]) -> str:
    """The readable report: context lines and the markdown table."""
    meta = results["meta"]
    lb, la = meta["load_before"], meta.get("load_after", meta["load_before"])
    head = [
        f"## Kyte benchmarks — {meta['timestamp']} ({meta['mode']})",
        "",
        f"Airflow {meta['airflow_version']}, Python {meta['python']}, {meta['cpus']} CPUs, "
        f"Kyte {meta['kyte_commit']}{' (modified)' if meta['kyte_dirty'] else ''}; "
        f"load average {lb[0]:.2f} before, {la[0]:.2f} after; "
        f"took {meta.get('duration_s', 0) / 60:.1f} min.",
        "Kyte times are measured inside the kernel around the magic (round trip in notes); "
        "ratios are Airflow median ÷ Kyte median.",
        "",
        "",
    ]
    if meta.get("plot"):
        head.append(f"(no plot: {meta['plot']})\n")
    return "\n".join(head) + markdown_table(rows)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark Kyte against Airflow's own tools (see benchmarks/README.md).")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true",
                   help="fewer repetitions, no 1,000-task runs (about 5 minutes)")
    g.add_argument("--smoke", action="store_true",
                   help="one repetition, 3-task DAG, no CLI baselines, no browser (tests)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="folder for <timestamp>.json/.md/.png (default benchmarks/results)")
    p.add_argument("--sessions-root", type=Path, default=None,
                   help="sessions root to use (a template metastore in it is reused)")
    p.add_argument("--no-ui", action="store_true", help="skip the Chromium sidebar benchmark")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG plot")
    p.add_argument("--keep", action="store_true",
                   help="keep the scratch folder (homes, notebooks)")
    p.add_argument("--only", choices=["parallel"], default=None,
                   help="run one section only: parallel = %%run_dag --parallelism 16 against "
                        "dag.test() (64 × 1 s, 200 × 1 s in 10 chains, 1,000 × 50 ms)")
    args = p.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    bench = Bench(Plan.for_mode(mode), args.out, args.sessions_root, not args.no_ui, args.keep)
    bench.only = args.only
    log(f"Kyte benchmarks ({mode}); scratch in {bench.work}; load {load_text()}")
    if os.getloadavg()[0] > (os.cpu_count() or 1) * 0.5:
        log("  the machine is busy: timings will be noisy (compare medians, re-run later)")
    try:
        results = bench.run()
    except (BenchError, CellError) as e:
        log(f"benchmark failed: {e}")
        return 1
    finally:
        bench.cleanup()
    paths = write_outputs(results, args.out, plot=not args.no_plot)
    print(results["_table"])
    print()
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
