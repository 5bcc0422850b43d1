"""The DAG files and the notebook the benchmarks run, generated so both sides run the same code.

Every benchmark DAG is made of trivial tasks (a ``@task`` that returns ``None``), laid out as
``WIDTH`` parallel chains: task ``t_i`` runs after ``t_{i-WIDTH}``. So a 3-task DAG is three
independent tasks, a 200-task DAG is 10 chains of 20, and a 1,000-task DAG 10 chains of 100 —
a DAG with both breadth and depth, where the scheduler logic runs once per layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WIDTH = 10


def dag_id(n: int) -> str:
    """The id of the benchmark DAG with ``n`` tasks."""
    return f"bench_{n}"


def dag_source(n: int, dag_name: str | None = None, width: int = WIDTH) -> str:
    """A DAG file with ``n`` trivial tasks in ``width`` parallel chains."""
    name = dag_name or dag_id(n)
    return f'''\
"""Kyte benchmark DAG: {n} trivial tasks in {width} parallel chains."""
from airflow.sdk import DAG, task


@task
def noop():
    return None


with DAG({name!r}, schedule=None, catchup=False, tags=["kyte-bench"]) as dag:
    tasks = [noop.override(task_id=f"t_{{i}}")() for i in range({n})]
    for i in range({width}, {n}):
        tasks[i - {width}] >> tasks[i]
'''


def write_dag_file(folder: Path, n: int, dag_name: str | None = None) -> Path:
    """Write the ``n``-task DAG file into ``folder`` and return its path."""
    name = dag_name or dag_id(n)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(dag_source(n, name), encoding="utf-8")
    return path


def export_notebook(path: Path, n_tasks: int = 1000, per_cell: int = 100) -> Path:
    """A notebook that grows one ``n_tasks``-task DAG over ``%%dag DAG_ID`` cells.

    Written the way a person would: a shared ``kyte-include`` cell with the imports and the
    task function, then cells of explicit task statements and edges, plus scratch cells that
    the export leaves out.
    """
    import nbformat as _nbformat

    nbformat: Any = _nbformat  # nbformat has no type hints
    v4 = nbformat.v4

    cells = [
        v4.new_markdown_cell(f"# Export benchmark: {n_tasks} tasks"),
        v4.new_code_cell(
            "from airflow.sdk import task\n\n\n@task\ndef noop(value=None):\n    return value\n",
            metadata={"tags": ["kyte-include"]},
        ),
        v4.new_code_cell("%load_ext kyte_jupyter"),
    ]
    prev: str | None = None
    for start in range(0, n_tasks, per_cell):
        stop = min(start + per_cell, n_tasks)
        lines = ["%%dag bench_export --schedule @daily --start-date 2026-01-01 --tags bench"]
        for i in range(start, stop):
            lines.append(f"t_{i} = noop.override(task_id='t_{i}')({i})")
        for i in range(start, stop):
            up = i - WIDTH
            if up >= 0:
                lines.append(f"t_{up} >> t_{i}")
        cells.append(v4.new_code_cell("\n".join(lines) + "\n"))
        prev = f"t_{stop - 1}"
        cells.append(v4.new_code_cell(f"print('defined up to {prev}')"))
    cells.append(v4.new_code_cell("r = %run_dag bench_export\nr.task_states"))
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
