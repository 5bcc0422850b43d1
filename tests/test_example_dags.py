"""Airflow's own example DAGs, pasted into %%dag cells, end %run_dag as dag.test() ends them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kyte_jupyter.session import SessionStore

EXAMPLES = {
    "tutorial_taskflow_api": "example_dags/tutorial_taskflow_api.py",
    "example_task_group": "example_dags/example_task_group.py",
    "example_skip_dag": "example_dags/example_skip_dag.py",
    "example_setup_teardown": "example_dags/example_setup_teardown.py",
    "example_dynamic_task_mapping": "example_dags/example_dynamic_task_mapping.py",
    # Defers to a trigger: Kyte runs it in the kernel, whose event loop is already running.
    "example_time_delta_sensor_async": "example_dags/example_time_delta_sensor_async.py",
    # Ours: failures, trigger rules, branching, short-circuits, a long upstream_failed chain.
    "kyte_trigger_rules": str(Path(__file__).parent / "dags" / "kyte_trigger_rules.py"),
}


def airflow_dir() -> Path:
    """The installed `airflow` package, found without importing it in the test process."""
    spec = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; "
         "print(u.find_spec('airflow').submodule_search_locations[0])"],
        capture_output=True, text=True, check=True,
    )
    return Path(spec.stdout.strip())


DAG_TEST = textwrap.dedent('''
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    out = {}
    bag = DagBag(dag_folder=sys.argv[1])
    assert not bag.import_errors, bag.import_errors
    for dag_id in sys.argv[2:]:
        dr = bag.get_dag(dag_id).test()
        out[dag_id] = {"(run)": str(getattr(dr.state, "value", dr.state))}
        for ti in dr.get_task_instances():
            key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            out[dag_id][key] = str(getattr(ti.state, "value", ti.state))
    print("RESULT" + json.dumps(out))
''')


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory, template_root: Path) -> dict:
    """Per-task states of dag.test() on the original files, in a separate, clean Airflow."""
    root = tmp_path_factory.mktemp("dagtest-root")
    shutil.copytree(template_root / ".templates", root / ".templates")
    home = SessionStore(root).for_notebook(str(root / "reference.ipynb"))
    base = airflow_dir()
    for rel in EXAMPLES.values():
        shutil.copy(base / rel, home.dags_folder)
    env = {**home.env(), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", DAG_TEST, str(home.dags_folder), *EXAMPLES],
        capture_output=True, text=True, env=env, timeout=600,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT"):])


@pytest.mark.parametrize("dag_id", list(EXAMPLES))
def test_example_dag_in_a_cell_runs_like_dag_test(dag_id, expected, make_kernel):
    source = (airflow_dir() / EXAMPLES[dag_id]).read_text()  # an absolute path stays as is
    k = make_kernel(f"{dag_id}.ipynb")
    k.ok("%%dag\n" + source)
    k.run(f"%run_dag {dag_id}")  # a run with a failed task fails its cell
    r = k.ok(
        "import json\nr = _kyte_last_run\n"
        "print('STATES' + json.dumps({'(run)': r.state, **r.task_states}))"
    )
    states = json.loads(r.stdout.split("STATES", 1)[1].strip().splitlines()[0])
    assert states == expected[dag_id]
