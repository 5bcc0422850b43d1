"""Parallel runs (issue 17): ``%run_dag --parallelism 16`` against ``dag.test()``.

Tasks that wait on an external system are stood in for by ``time.sleep``:

* 64 independent tasks of 1 s each — target ≥ 8× ``dag.test()``;
* 200 tasks of 1 s in 10 chains of 20 — target ≥ 5× ``dag.test()``;
* 1,000 tasks of 50 ms in 50 chains of 20 — completes; the scheduling overhead per task is
  printed (wall time × parallelism ÷ tasks, minus the task's own 50 ms).

Both sides run the same generated DAG file: ``dag.test()`` in a fresh process of its own
(after a warm-up ``dag.test()``), Kyte in a warm kernel (the DAG defined by a ``%%dag`` cell,
one warm-up parallel run of a small DAG first, so the session's execution API is up). The
kernel's peak RSS over the parallel runs is recorded too.

For the cases with a target, Airflow's own deployment runs the same file as a second
reference: its API server, scheduler (LocalExecutor, the same 16 slots) and DAG processor,
one warm-up run, then a run triggered through the REST API and timed by Airflow's own record
of it (``end_date`` − ``queued_at``). It shows what Airflow's own executor reaches with these
tasks on the machine at hand: on a 2-CPU machine, the tries' start-up and tear-down CPU, not
the 1 s waits, set the pace of both.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from benchmarks.report import Row, fmt_value, ratios_text, speedup

if TYPE_CHECKING:
    from benchmarks.run import Bench

PARALLELISM = 16
#: (name, tasks, chains, seconds per task, target ratio or None)
CASES: list[tuple[str, int, int, float, float | None]] = [
    ("par_wide_64", 64, 64, 1.0, 8.0),
    ("par_chains_200", 200, 10, 1.0, 5.0),
    ("par_many_1000", 1000, 50, 0.05, None),
]


def dag_source(name: str, n: int, width: int, seconds: float) -> str:
    """A DAG file of ``n`` tasks that each sleep ``seconds``, in ``width`` parallel chains."""
    return f'''\
"""Kyte parallel benchmark DAG: {n} tasks of {seconds} s in {width} chains."""
import time

from airflow.sdk import DAG, task


@task
def wait():
    time.sleep({seconds})


with DAG({name!r}, schedule=None, catchup=False, max_active_tasks=64,
         tags=["kyte-bench"]) as dag:
    tasks = [wait.override(task_id=f"t_{{i}}")() for i in range({n})]
    for i in range({width}, {n}):
        tasks[i - {width}] >> tasks[i]
'''


def measure(bench: Bench, cases: list[tuple[str, int, int, float, float | None]] | None = None,
            ) -> None:
    """Run every case on both sides and add the rows to ``bench``."""
    from benchmarks import dags
    from benchmarks.run import BenchError, child_env, child_result, run_child

    cases = cases if cases is not None else CASES
    k = bench.kernel("kyte-parallel")
    k.ok("%load_ext kyte_jupyter")
    # Warm-up: the execution API starts and Cadwyn builds its routers once per kernel.
    k.ok(f"get_ipython().run_cell_magic('dag', '', {dag_source('par_warm', 4, 4, 0.0)!r})")
    k.ok("_kb_r = %run_dag par_warm --parallelism 4")
    k.reset_peak()
    for name, n, width, seconds, target in cases:
        source = dag_source(name, n, width, seconds)
        with bench.section(f"Kyte: %run_dag {name} --parallelism {PARALLELISM}"):
            k.ok(f"get_ipython().run_cell_magic('dag', '', {source!r})")
            r = k.ok(
                "import time as _kb_time\n_kb_t0 = _kb_time.perf_counter()\n"
                f"_kb_r = get_ipython().run_line_magic('run_dag', "
                f"'{name} --parallelism {PARALLELISM}')\n"
                "_kb_dt = _kb_time.perf_counter() - _kb_t0",
                {"dt": "_kb_dt", "state": "_kb_r.state", "n": "len(_kb_r.task_states)"},
                timeout=7200,
            )
            if r.expressions["state"] != "success" or r.expressions["n"] != n:
                raise BenchError(f"%run_dag {name} --parallelism ended "
                                 f"{r.expressions['state']} with {r.expressions['n']} tasks")
            kyte = bench.put(f"kyte.parallel.{name}", [r.expressions["dt"]])
        baseline = scheduled = None
        if target is not None:
            with bench.section(f"Airflow: dag.test() of {name}"):
                home = bench.home(f"airflow-{name}", [1])
                path = home / "dags" / f"{name}.py"
                path.write_text(source, encoding="utf-8")
                _, out = run_child(
                    [sys.executable, "-m", "benchmarks.airflow_side", "dag-test", str(path),
                     name, "--warmup-file", str(home / "dags" / f"{dags.dag_id(1)}.py"),
                     "--warmup-id", dags.dag_id(1), "--reps", "1"],
                    child_env(home), bench.logfile, timeout=7200)
                baseline = bench.put(f"airflow.dag_test.{name}", child_result(out)["runs_s"])
            with bench.section(f"Airflow: scheduler + LocalExecutor ({PARALLELISM} slots) "
                               f"on {name}"):
                _, out = run_child(
                    [sys.executable, "-m", "benchmarks.airflow_side", "scheduler", str(path),
                     name, "--parallelism", str(PARALLELISM), "--reps", "1"],
                    child_env(home), bench.logfile, timeout=7200)
                scheduled = bench.put(f"airflow.scheduler.{name}", child_result(out)["runs_s"])
        ratio = speedup(kyte, baseline)
        per_task = kyte["median"] * PARALLELISM / n - seconds
        note = (f"{n} tasks × {seconds:g} s in {width} chains; wall {1000 * kyte['median'] / n:.0f}"
                f" ms/task; scheduling overhead ≈ {1000 * per_task:.0f} ms/task "
                f"(wall × {PARALLELISM} ÷ tasks − {seconds:g} s)")
        bench.info[f"parallel_overhead_ms.{name}"] = 1000 * per_task
        bench.extra_rows.append(Row(
            f"`%run_dag --parallelism {PARALLELISM}`, {n} tasks of {seconds:g} s "
            f"({width} chains)", kyte,
            "`dag.test()`, warm" if baseline else "", baseline, ratio,
            ratio_text=ratios_text([("dag.test", ratio),
                                    ("scheduler", speedup(kyte, scheduled))]),
            extra_baselines=[{"name": f"Airflow's scheduler + LocalExecutor, {PARALLELISM} slots",
                              "stat": scheduled}] if scheduled else [],
            target=f"≥ {target:g}× dag.test()" if target else "completes; overhead printed",
            met=(None if ratio is None else ratio >= target) if target else True,
            note=note,
        ))
    peak = k.memory()["peak_mb"]
    bench.put("kyte.parallel.peak_mb", [peak], "MB")
    bench.extra_rows.append(Row(
        "Kernel peak RSS over the parallel runs", bench.m["kyte.parallel.peak_mb"],
        target="≤ 300 MB", met=peak <= 300,
        note="the LocalExecutor's workers are separate processes (not counted)",
    ))
    bench.stop_kernel(k)


def summary_line(bench: Bench) -> str:
    """One line per case for the log."""
    parts = []
    for name, *_ in CASES:
        s: Any = bench.m.get(f"kyte.parallel.{name}")
        if s:
            parts.append(f"{name} {fmt_value(s['median'], 's')}")
    return ", ".join(parts)
