"""How much the static checks add to a warm ``%%dag`` cell (issue 16: at most 1.5x).

A 20-task DAG (10 SQL tasks with templated SQL, 10 Bash tasks with templates), defined by a
whole-file ``%%dag`` cell in an in-process IPython shell with Kyte loaded. The warm cell is
timed alternately with the checks off (``KYTE_LINT_DISABLE=all``) and on (every check, the
example policy module, sqlfluff already imported), after warm-ups.

``python -m benchmarks`` runs it in a child process (:func:`measure`) and reports it as one
row of its table (:func:`row`); on its own:

    python benchmarks/lint_overhead.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.report import Row
    from benchmarks.run import Bench

ROOT = Path(__file__).resolve().parents[1]

CELL = """\
import pendulum
from airflow.sdk import DAG
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.standard.operators.bash import BashOperator

with DAG("lint_bench", schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params={"region": "eu"}, tags=["bench"], default_args={"owner": "data"}) as dag:
    previous = None
    for i in range(10):
        q = SQLExecuteQueryOperator(
            task_id=f"load_{i}", conn_id="warehouse",
            sql=f"SELECT id, amount FROM orders_{i} WHERE day = '{{{{ ds }}}}' "
                "AND region = '{{ params.region }}' ORDER BY id",
        )
        b = BashOperator(task_id=f"report_{i}", bash_command="echo {{ ds }} {{ params.region }}")
        q >> b
        if previous is not None:
            previous >> q
        previous = b
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--result", action="store_true",
                        help="also print the times as one JSON result line (for the harness)")
    args = parser.parse_args()
    os.environ.setdefault("KYTE_SESSIONS_ROOT", tempfile.mkdtemp(prefix="kyte-lint-bench-"))
    os.environ["KYTE_POLICY_MODULE"] = str(
        ROOT / "examples" / "policies" / "airflow_local_settings.py"
    )
    workdir = Path(tempfile.mkdtemp(prefix="kyte-lint-nb-"))
    os.chdir(workdir)
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()  # type: ignore[no-untyped-call]
    assert ip is not None
    ip.run_line_magic("load_ext", "kyte_jupyter")

    from kyte_jupyter.lint import kernel as lint_kernel

    def define(lint: bool) -> float:
        if lint:
            os.environ.pop("KYTE_LINT_DISABLE", None)
        else:
            os.environ["KYTE_LINT_DISABLE"] = "all"
        started = time.perf_counter()
        ip.run_cell_magic("dag", "", CELL)
        return time.perf_counter() - started

    first_off = define(False)
    first_on = define(True)  # starts importing sqlfluff in the background
    lint_kernel.wait_sql()
    define(True)  # the dialect's parser and the caches
    off, on = [], []
    for _ in range(args.repeat):
        off.append(define(False))
        on.append(define(True))
    d, li = statistics.median(off), statistics.median(on)
    print(f"first %%dag without lint {first_off:.2f}s, then with lint {first_on:.2f}s")
    print(
        f"warm %%dag, 20 tasks (10 SQL), lint off: median {d * 1000:.0f} ms "
        f"(min {min(off) * 1000:.0f}, max {max(off) * 1000:.0f}, n={len(off)})"
    )
    print(
        f"warm %%dag, 20 tasks (10 SQL), lint on:  median {li * 1000:.0f} ms "
        f"(min {min(on) * 1000:.0f}, max {max(on) * 1000:.0f}, n={len(on)})"
    )
    print(f"ratio on / off: {li / d:.2f}x (target <= 1.5x)")
    if args.result:
        import json

        from benchmarks.airflow_side import RESULT_PREFIX

        print(RESULT_PREFIX + json.dumps({"off": off, "on": on, "first_off": first_off,
                                          "first_on": first_on}))
    sys.stdout.flush()


REPEAT = {"full": 7, "quick": 3}


def measure(bench: Bench) -> None:
    """The ``python -m benchmarks`` section: this script in a child, its times recorded."""
    from benchmarks.run import child_env, child_result, run_child

    repeat = REPEAT.get(bench.plan.mode)
    if repeat is None:
        bench.info["lint_overhead"] = f"skipped in --{bench.plan.mode}"
        return
    with bench.section("Kyte: static checks on a warm %%dag cell (20 tasks, 10 SQL)"):
        _, out = run_child(
            [sys.executable, "-m", "benchmarks.lint_overhead", "--repeat", str(repeat),
             "--result"],
            child_env(KYTE_SESSIONS_ROOT=str(bench.root)), bench.logfile, timeout=1800,
        )
        result = child_result(out)
        bench.put("kyte.define_20.lint_off", result["off"])
        bench.put("kyte.define_20.lint_on", result["on"])
        bench.info["lint_first_s"] = {"off": result["first_off"], "on": result["first_on"]}


def row(m: Any, info: dict[str, Any]) -> Row:
    """The table row: the warm cell with the checks on against the same cell without."""
    from benchmarks.report import Row

    name = "Warm `%%dag`, 20 tasks (10 SQL), static checks on"
    on, off = m("kyte.define_20.lint_on"), m("kyte.define_20.lint_off")
    if not on or not off:
        return Row(name, None, target="≤ 1.5× without checks",
                   note=str(info.get("lint_overhead", "not run")))
    ratio = on["median"] / off["median"]
    return Row(name, on, "same cell, checks off (KYTE_LINT_DISABLE=all)", off,
               ratio_text=f"{ratio:.2f}× the time", target="≤ 1.5× without checks",
               met=ratio <= 1.5, note="benchmarks/lint_overhead.py (issue 16)")


if __name__ == "__main__":
    main()
