"""How much the static checks add to a warm ``%%dag`` cell (issue 16: at most 1.5x).

A 20-task DAG (10 SQL tasks with templated SQL, 10 Bash tasks with templates), defined by a
whole-file ``%%dag`` cell in an in-process IPython shell with Kyte loaded. The warm cell is
timed alternately with the checks off (``KYTE_LINT_DISABLE=all``) and on (every check, the
example policy module, sqlfluff already imported), after warm-ups.

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
    args = parser.parse_args()
    os.environ.setdefault("KYTE_SESSIONS_ROOT", tempfile.mkdtemp(prefix="kyte-lint-bench-"))
    os.environ["KYTE_POLICY_MODULE"] = str(
        ROOT / "examples" / "policies" / "airflow_local_settings.py"
    )
    workdir = Path(tempfile.mkdtemp(prefix="kyte-lint-nb-"))
    os.chdir(workdir)
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
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
    sys.stdout.flush()


if __name__ == "__main__":
    main()
