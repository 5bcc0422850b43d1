"""The what-if oracle (SPEC §7): a forced run in the kernel ends exactly as ``dag.test()``.

For each DAG (Airflow's own examples and ours) and each forced outcome, the notebook runs
``%run_dag DAG --OPTION T`` in a real kernel. Its per-task-instance states and run state
become the expectations of a scenario; Kyte's test generator writes them as a plain pytest
file (no Kyte import) that forces the same outcome under a stock ``dag.test()`` on the DAG
file, in a separate Python with its own Airflow home. The generated tests must all pass: the
kernel's run and ``dag.test()`` agree on every task instance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kyte_jupyter.session import SessionStore

HERE = Path(__file__).parent

# DAG file (relative to the airflow package, or absolute) -> forced-outcome options.
CASES: dict[str, tuple[str, str, list[str]]] = {
    "kyte_trigger_rules": (str(HERE / "dags" / "kyte_trigger_rules.py"), "kyte_trigger_rules", [
        "--fail extract", "--fail alert", "--fail cleanup", "--fail audit",
        "--fail pick", "--fail gate", "--skip extract", "--succeed validate",
        "--xcom validate=3", "--branch pick=right", "--branch pick=left,right",
        "--xcom gate=true", "--timeout extract", "--fail-once validate",
        "--skip pick --fail audit",
    ]),
    "example_nested_branch_dag": ("example_dags/example_nested_branch_dag.py",
                                  "example_nested_branch_dag", [
        "--branch branch_1=false_1", "--branch branch_1=false_1 --branch branch_2=false_2",
        "--fail branch_1", "--skip branch_2 --branch branch_1=false_1",
    ]),
    "example_short_circuit_operator": (
        "providers/standard/example_dags/example_short_circuit_operator.py",
        "example_short_circuit_operator", [
            "--fail condition_is_True", "--skip condition_is_True",
            "--xcom condition_is_False=true", "--succeed short_circuit",
            "--xcom short_circuit=true",
        ]),
    "example_setup_teardown": ("example_dags/example_setup_teardown.py",
                               "example_setup_teardown", [
        "--fail root_setup", "--fail normal", "--fail root_teardown",
        "--fail section_1.taskgroup_setup", "--fail section_1.normal", "--skip section_1",
        "--timeout normal",
    ]),
    "example_task_group": ("example_dags/example_task_group.py", "example_task_group", [
        "--fail section_1", "--fail section_2.inner_section_2.task_2", "--skip section_1",
    ]),
    "example_dynamic_task_mapping": ("example_dags/example_dynamic_task_mapping.py",
                                     "example_dynamic_task_mapping", [
        "--fail 'add_one[1]'", "--skip 'add_one[0]'", "--fail sum_it", "--fail add_one",
    ]),
}


def airflow_dir() -> Path:
    """The installed `airflow` package, found without importing it in the test process."""
    out = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; "
         "print(u.find_spec('airflow').submodule_search_locations[0])"],
        capture_output=True, text=True, check=True,
    )
    return Path(out.stdout.strip())


COLLECT = '''
import json
from IPython.core import magic_arguments
from kyte_jupyter.magics import KyteMagics
from kyte_jupyter.whatif import Scenario
from kyte_jupyter.whatif.options import from_args
from kyte_jupyter.whatif.testgen import render

def _kyte_oracle_case(dag_id, opts, scenarios, registry):
    args = magic_arguments.parse_argstring(KyteMagics.run_dag, f"{dag_id} {opts}")
    dag = registry.get(dag_id)
    whatif = from_args(dag, args)
    try:
        get_ipython().run_line_magic("run_dag", f"{dag_id} {opts}")
    except Exception:
        pass
    r = _kyte_last_run
    scenarios.append(Scenario(opts, dag_id, whatif, dict(r.task_states), r.state))
    return r
'''


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", list(CASES))
def test_forced_runs_match_dag_test(name: str, make_kernel: Any, tmp_path: Path,
                                    template_root: Path) -> None:
    rel, dag_id, options = CASES[name]
    source_file = airflow_dir() / rel
    k = make_kernel(f"{name}.ipynb")
    k.ok("%%dag\n" + source_file.read_text())
    k.ok(COLLECT + "\n_scn = []")
    for opts in options:
        k.ok(f"_r = _kyte_oracle_case({dag_id!r}, {opts!r}, _scn, "
             "__import__('kyte_jupyter.magics').magics.current_registry())")
        assert k.value("bool(_r.forced)"), opts  # something was forced in this run
    # The oracle: the same outcomes forced under dag.test(), in a clean Python and Airflow.
    root = tmp_path / "oracle-root"
    shutil.copytree(template_root / ".templates", root / ".templates")
    home = SessionStore(root).for_notebook(str(root / "oracle.ipynb"))
    folder = Path(home.dags_folder)
    shutil.copy(source_file, folder / f"{dag_id}.py")
    text = k.value(f"render({dag_id!r}, {dag_id + '.py'!r}, _scn)")
    (folder / f"test_{dag_id}.py").write_text(text)
    env = {k_: v for k_, v in os.environ.items()
           if not k_.startswith(("AIRFLOW", "KYTE", "PYTHONPATH"))}
    env.update(home.env(), AIRFLOW__CORE__DAGS_FOLDER=str(folder),
               AIRFLOW__CORE__LOAD_EXAMPLES="False")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         f"test_{dag_id}.py", "-o", "log_level=WARNING", "--rootdir", str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=1200,
    )
    tail = "\n".join(line for line in proc.stdout.splitlines()
                     if line.startswith(("E ", "FAILED", "ERROR")) or "passed" in line)
    assert proc.returncode == 0, tail or proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"{len(options)} passed" in proc.stdout, tail
    json.dumps(options)  # the compared outcomes are listed in CASES
