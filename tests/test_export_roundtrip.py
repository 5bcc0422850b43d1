"""The export guarantee (SPEC §5), checked with a stock Airflow in a separate process.

For each notebook the test exports every DAG, parses the files with a stock ``DagBag`` in a
subprocess with a clean ``AIRFLOW_HOME`` (no import errors allowed), and compares each DAG
with the same DAG as a real kernel session built it (the notebook executed with nbclient
and ``%load_ext kyte_jupyter``). Airflow's own example DAG files pasted into a notebook must
also export to files equal to the originals.

Everything heavy (one DagBag subprocess, one kernel per notebook) runs once per module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from kyte_jupyter.export import export_notebook

FIXTURES = Path(__file__).parent / "export_fixtures"
sys.path.insert(0, str(FIXTURES))

import notebooks  # noqa: E402

NOTEBOOKS = {
    "pipeline.ipynb": lambda: notebooks.build(notebooks.PIPELINE),
    "examples.ipynb": notebooks.examples_notebook,
}


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "KYTE_", "JPY_"))}
    env.update(extra)
    return env


def describe_files(files: list[Path], home: Path) -> dict[str, Any]:
    """Parse DAG files with a stock DagBag in one subprocess with a clean AIRFLOW_HOME."""
    home.mkdir(parents=True)
    out = home / "described.json"
    env = _clean_env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "describe.py"), str(out), *map(str, files)],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def describe_in_kernel(nb_path: Path, sessions_root: Path) -> dict[str, Any]:
    """Execute the notebook in a real kernel with Kyte loaded; describe the session's DAGs."""
    nb = nbformat.read(nb_path, as_version=4)
    out = nb_path.with_suffix(".kernel.json")
    nb.cells.insert(0, new_code_cell("%load_ext kyte_jupyter"))
    nb.cells.append(
        new_code_cell(
            "import json as _json, sys as _sys\n"
            f"_sys.path.insert(0, {str(FIXTURES)!r})\n"
            "from describe import describe_dag as _describe\n"
            "_registry = get_ipython().find_magic('dag', 'cell').__self__.registry\n"
            f"with open({str(out)!r}, 'w') as _f:\n"
            "    _json.dump({d: _describe(g) for d, g in sorted(_registry.dags.items())}, _f)\n"
        )
    )
    env = _clean_env(KYTE_SESSIONS_ROOT=str(sessions_root), JPY_SESSION_NAME=str(nb_path))
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key not in env:
                mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        client = NotebookClient(
            nb,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(nb_path.parent)}},
        )
        client.execute()
    result: dict[str, Any] = json.loads(out.read_text())
    return result


@dataclass
class Roundtrip:
    """Exported files, their DagBag descriptions and the kernel's descriptions."""

    exported: dict[str, list[Path]]  # notebook name -> files written
    parsed: dict[str, Any]  # file path -> {"import_errors", "dags"}
    kernel: dict[str, dict[str, Any]]  # notebook name -> {dag_id: description}
    originals: dict[str, Path]  # example relative path -> installed file
    control: Path  # orders.py with its SQL indented the naive way (must NOT compare equal)

    def file_dags(self, notebook: str) -> dict[str, Any]:
        dags: dict[str, Any] = {}
        for path in self.exported[notebook]:
            entry = self.parsed[str(path)]
            assert entry["import_errors"] == {}, f"{path}: {entry['import_errors']}"
            for dag_id, description in entry["dags"].items():
                assert dag_id not in dags, f"DAG {dag_id} exported twice"
                dags[dag_id] = description
        return dags


@pytest.fixture(scope="module")
def roundtrip(tmp_path_factory: pytest.TempPathFactory, template_root: Path) -> Iterator[Roundtrip]:
    work = tmp_path_factory.mktemp("roundtrip")
    sessions_root = work / "sessions"
    shutil.copytree(template_root / ".templates", sessions_root / ".templates")
    exported: dict[str, list[Path]] = {}
    for name, make in NOTEBOOKS.items():
        path = work / name
        nbformat.write(make(), path)
        exported[name] = export_notebook(path)
    originals = {rel: notebooks.example_path(rel) for rel in notebooks.AIRFLOW_EXAMPLES}
    control = work / "control" / "orders.py"
    control.parent.mkdir()
    orders = (work / "dags" / "orders.py").read_text()
    control.write_text(orders.replace("\n    SELECT '{{ ds }}'", "\n        SELECT '{{ ds }}'"))
    files = [p for paths in exported.values() for p in paths] + list(originals.values())
    parsed = describe_files([*files, control], work / "clean-airflow-home")
    kernel = {name: describe_in_kernel(work / name, sessions_root) for name in NOTEBOOKS}
    yield Roundtrip(exported, parsed, kernel, originals, control)


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as readable paths (for assertion messages)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                out.append(f"{path}/{key}: only in {'expected' if key not in a else 'actual'}")
            else:
                out += _differences(a[key], b[key], f"{path}/{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _assert_same(actual: dict[str, Any], expected: dict[str, Any], what: str) -> None:
    assert sorted(actual) == sorted(expected), f"{what}: DAG ids differ"
    problems = _differences(actual, expected)
    assert not problems, f"{what}:\n" + "\n".join(problems[:40])


def test_pipeline_exports_one_file_per_dag_into_dags_folder(roundtrip: Roundtrip) -> None:
    names = [p.name for p in roundtrip.exported["pipeline.ipynb"]]
    assert names == ["orders.py", "maintenance.py", "weekly_report.py", "adhoc_backfill.py"]
    assert {p.parent.name for p in roundtrip.exported["pipeline.ipynb"]} == {"dags"}


def test_pipeline_files_equal_the_kernel_session_dags(roundtrip: Roundtrip) -> None:
    from_files = roundtrip.file_dags("pipeline.ipynb")
    in_kernel = roundtrip.kernel["pipeline.ipynb"]
    assert sorted(in_kernel) == ["adhoc_backfill", "maintenance", "orders", "weekly_report"]
    _assert_same(from_files, in_kernel, "pipeline.ipynb")


def test_comparison_sees_a_change_inside_a_templated_string(roundtrip: Roundtrip) -> None:
    # Guards the guarantee tests against comparing too little: indenting the lines of a
    # multi-line SQL string (as a naive re-indent would) must show up as a difference.
    mutated = roundtrip.parsed[str(roundtrip.control)]["dags"]["orders"]
    found = _differences(mutated, roundtrip.kernel["pipeline.ipynb"]["orders"])
    assert found and all("quality.totals" in d or "tasks[" in d for d in found), found
    assert any("/templates/sql" in d for d in found)


def test_pipeline_covers_groups_mapping_branching_and_templates(roundtrip: Roundtrip) -> None:
    orders = roundtrip.file_dags("pipeline.ipynb")["orders"]["summary"]
    tasks = orders["tasks"]
    assert "CronTriggerTimetable(expression='0 0 * * *'" in orders["schedule"]  # @daily
    assert orders["start_date"] == "2024-03-01T00:00:00+00:00"
    assert orders["tags"] == ["daily", "orders"]
    assert orders["default_args"] == {"owner": "data", "retries": 1}
    assert tasks["quality.totals"]["class"] == "SQLExecuteQueryOperator"
    assert "'{{ ds }}' AS day" in tasks["quality.totals"]["templates"]["sql"]
    assert tasks["quality.not_empty"]["templates"]["bash_command"].startswith(
        '\n            set -e\n            if [ "{{ params.min_rows }}"'
    )
    assert tasks["score"]["is_mapped"] and tasks["echo_batch"]["is_mapped"]
    assert tasks["publish.upload"]["task_group"] == "publish"
    assert tasks["choose"]["task_type"] == "_BranchPythonDecoratedOperator"
    assert tasks["done"]["trigger_rule"].endswith("NONE_FAILED_MIN_ONE_SUCCESS")
    assert tasks["extract"]["retries"] == 3 and tasks["split"]["retries"] == 1
    assert orders["description"] == "Daily orders, scored and checked"
    maintenance = roundtrip.file_dags("pipeline.ipynb")["maintenance"]["summary"]
    assert (
        maintenance["schedule"].startswith("<NullTimetable") and maintenance["start_date"] is None
    )


def test_airflow_examples_export_equal_to_the_original_files(roundtrip: Roundtrip) -> None:
    from_files = roundtrip.file_dags("examples.ipynb")
    originals: dict[str, Any] = {}
    for path in roundtrip.originals.values():
        entry = roundtrip.parsed[str(path)]
        assert entry["import_errors"] == {}, f"{path} does not parse in a clean home"
        originals.update(entry["dags"])
    assert len(roundtrip.originals) >= 4
    _assert_same(from_files, originals, "examples.ipynb vs original files")


def test_airflow_examples_exports_equal_the_kernel_session_dags(roundtrip: Roundtrip) -> None:
    _assert_same(
        roundtrip.file_dags("examples.ipynb"), roundtrip.kernel["examples.ipynb"], "examples"
    )


def test_pasted_example_is_the_original_file_under_the_header(roundtrip: Roundtrip) -> None:
    for path in roundtrip.exported["examples.ipynb"]:
        if path.name == "tutorial_taskflow_api.py":
            text = path.read_text()
            original = notebooks.example_path("example_dags/tutorial_taskflow_api.py")
            header, _, rest = text.partition("\n\n")
            assert header.startswith("# Generated by Kyte for Jupyter from the notebook")
            assert rest == original.read_text().strip("\n") + "\n"
            return
    raise AssertionError("tutorial_taskflow_api.py was not exported")
