"""Airflow's own tools, timed in a fresh process: ``python -m benchmarks.airflow_side MODE ...``.

Run by the harness in a subprocess whose ``AIRFLOW_HOME`` is a home of its own (a migrated
metastore with the benchmark DAG files in ``dags/``), so Airflow reads that home at import.
Prints one line ``KYTE-BENCH-RESULT {json}`` at the end.

Modes:

* ``import``: ``import airflow`` in a fresh process (time, RSS).
* ``dag-test FILE DAG_ID --warmup-file W --warmup-id WID --reps N``: ``import airflow``, the
  first ``dag.test()`` in the process (of the small warm-up DAG ``WID``; pass the same file
  and id to time the first run of ``DAG_ID`` itself), then ``N`` timed, warm ``dag.test()``
  runs of ``DAG_ID``.
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run one mode and print its result line."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.airflow_side")
    p.add_argument("mode", choices=["import", "dag-test"])
    p.add_argument("dag_file", nargs="?")
    p.add_argument("dag_id", nargs="?")
    p.add_argument("--warmup-file")
    p.add_argument("--warmup-id")
    p.add_argument("--reps", type=int, default=1)
    args = p.parse_args(argv)

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
    out.update(rss_mb=_rss_mb(), peak_mb=_peak_mb())
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
