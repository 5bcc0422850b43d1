"""The what-if oracle (SPEC §7): a forced run in the kernel ends exactly as ``dag.test()``.

For each DAG (Airflow's own examples and ours) and each forced outcome, the notebook runs
``%run_dag DAG --OPTION T`` in a real kernel. Its per-task-instance states and run state
become the expectations of a scenario; Kyte's test generator writes them as a plain pytest
file (no Kyte import) that forces the same outcome under a stock ``dag.test()`` on the DAG
file, in a separate Python with its own Airflow home. The generated tests must all pass: the
kernel's run and ``dag.test()`` agree on every task instance.

Cheap by construction: one kernel runs every DAG's cases, and one pytest process runs every
generated file (each test file parses its DAG once). It is one test, not one per DAG, so that
pytest-xdist never starts the shared kernel twice; a failure lists every case that differs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
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
    "kyte_mapped_forcing": (str(HERE / "dags" / "kyte_mapped_forcing.py"),
                            "kyte_mapped_forcing", [
        "--succeed leak", "--fail leak", "--skip leak", "--succeed square",
        "--succeed 'square[1]'", "--fail 'square[1]'", "--skip square",
        "--fail 'square[0]' --succeed leak", "--fail-once 'square[2]'", "--succeed total",
        "--succeed extract",
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
    before = globals().get("_kyte_last_run")
    try:
        get_ipython().run_line_magic("run_dag", f"{dag_id} {opts}")
    except Exception:
        pass  # a failed run raises; its summary is still kept
    r = _kyte_last_run
    if r is before:
        raise AssertionError(f"%run_dag {dag_id} {opts} left no run summary")
    scenarios.append(Scenario(opts, dag_id, whatif, dict(r.task_states), r.state))
    return r
'''


RUN_CASES = """
_bad = []
for _opts in {options!r}:
    _r = _kyte_oracle_case({dag_id!r}, _opts, _scn.setdefault({dag_id!r}, []), _registry)
    if not _r.forced or _r.run_state not in ("success", "failed"):
        _bad.append((_opts, dict(_r.forced), _r.run_state))
print("BAD", _bad)
"""


@pytest.mark.timeout(3600)
def test_forced_runs_match_dag_test(make_module_kernel: Any, tmp_path: Path,
                                    template_root: Path) -> None:
    k = make_module_kernel("oracle.ipynb")
    k.ok(COLLECT + "\n_scn = {}\n_registry = "
         "__import__('kyte_jupyter.magics').magics.current_registry()")
    root = tmp_path / "oracle-root"
    shutil.copytree(template_root / ".templates", root / ".templates")
    home = SessionStore(root).for_notebook(str(root / "oracle.ipynb"))
    folder = Path(home.dags_folder)
    package = airflow_dir()
    for name, (rel, dag_id, options) in CASES.items():
        source_file = package / rel
        k.ok("%%dag\n" + source_file.read_text())
        r = k.run(RUN_CASES.format(options=options, dag_id=dag_id), timeout=1800)
        assert r.status == "ok", r.text
        # Each case forced something, and the run settled (never left `running`).
        assert "BAD []" in r.stdout, (name, r.stdout[-3000:])
        shutil.copy(source_file, folder / f"{dag_id}.py")
        text = k.value(f"render({dag_id!r}, {dag_id + '.py'!r}, _scn[{dag_id!r}])")
        (folder / f"test_{dag_id}.py").write_text(text)
    # The oracle: the same outcomes forced under dag.test(), in a clean Python and Airflow.
    env = {k_: v for k_, v in os.environ.items()
           if not k_.startswith(("AIRFLOW", "KYTE", "PYTHONPATH"))}
    env.update(home.env(), AIRFLOW__CORE__DAGS_FOLDER=str(folder),
               AIRFLOW__CORE__LOAD_EXAMPLES="False")
    report = tmp_path / "oracle.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-o", "log_level=WARNING", "--rootdir", str(folder), f"--junitxml={report}",
         *sorted(p.name for p in folder.glob("test_*.py"))],
        cwd=folder, env=env, capture_output=True, text=True, timeout=2400,
    )
    assert report.exists(), proc.stdout[-4000:] + proc.stderr[-2000:]
    cases = ET.parse(report).getroot().iter("testcase")
    ran = {(c.get("classname", ""), c.get("name", "")): [
        (e.get("message") or "")[:600] for e in c if e.tag in ("failure", "error")]
        for c in cases}
    differ = {case: why for case, why in ran.items() if why}
    assert not differ, differ
    assert len(ran) == sum(len(o) for _, _, o in CASES.values()), sorted(ran)
    assert proc.returncode == 0, proc.stdout[-4000:]
