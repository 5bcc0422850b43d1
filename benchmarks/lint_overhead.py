"""How much the static checks add to a warm ``%%dag`` cell (issue 16: at most 1.5x).

A 20-task DAG (10 SQL tasks with templated SQL, 10 Bash tasks with templates), defined by a
whole-file ``%%dag`` cell in an in-process IPython shell with Kyte loaded. Times, after one
warm-up each: the ``%%dag`` cell alone, and ``lint_dag`` on the DAG it made with the cell's
source (every check, as the cell hook would run them; the policy module is the example one).

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

ROOT = Path(__file__).resolve().parents[1]

CELL = '''\
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
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("KYTE_SESSIONS_ROOT", tempfile.mkdtemp(prefix="kyte-lint-bench-"))
    workdir = Path(tempfile.mkdtemp(prefix="kyte-lint-nb-"))
    os.chdir(workdir)
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    assert ip is not None
    ip.run_line_magic("load_ext", "kyte_jupyter")

    from kyte_jupyter.lint import CellSource, LintConfig, lint_dag

    def define() -> float:
        started = time.perf_counter()
        ip.run_cell_magic("dag", "", CELL)
        return time.perf_counter() - started

    config = LintConfig(
        policy_module=ROOT / "examples" / "policies" / "airflow_local_settings.py"
    )
    cells = [CellSource(CELL, 2, number=1)]

    def lint() -> tuple[float, int]:
        dag = ip.user_ns["dag"]
        started = time.perf_counter()
        found = lint_dag(dag, cells, config)
        return time.perf_counter() - started, len(found)

    first_define = define()
    first_lint, n = lint()
    defines, lints = [], []
    for _ in range(args.repeat):
        defines.append(define())
        seconds, n = lint()
        lints.append(seconds)
    d, li = statistics.median(defines), statistics.median(lints)
    print(f"first %%dag {first_define:.3f}s, first lint {first_lint:.3f}s (imports sqlfluff)")
    print(f"warm %%dag (20 tasks, 10 SQL): median {d * 1000:.0f} ms "
          f"(min {min(defines) * 1000:.0f}, max {max(defines) * 1000:.0f}, n={len(defines)})")
    print(f"warm lint_dag:                 median {li * 1000:.0f} ms "
          f"(min {min(lints) * 1000:.0f}, max {max(lints) * 1000:.0f}), {n} findings")
    print(f"ratio (%%dag + lint) / %%dag:  {(d + li) / d:.2f}x (target <= 1.5x)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
