"""`jupyter kyte export --tests`: the generated tests pass in a Python without Kyte (Airflow +
pytest), and a scenario whose expectation is wrong makes its test fail.

See ``clean_python`` for the two kinds of clean Python: a pip-installed venv with only
apache-airflow and pytest (``$KYTE_CLEAN_AIRFLOW_VENV``), or, by default and in seconds, a venv
that sees this environment's packages but not Kyte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import nbformat
import pytest

DAG = '''%%dag
from airflow.sdk import DAG, task

with DAG("shop", schedule=None) as dag:
    @task
    def extract():
        return [1, 2, 3]

    @task
    def load(rows):
        return len(rows)

    @task.branch
    def choose(n):
        return "report"

    @task
    def report():
        return "r"

    @task
    def quiet():
        return "q"

    @task(trigger_rule="all_done")
    def cleanup():
        return "c"

    @task
    def price(x):
        return x * 10

    rows = extract()
    n = load(rows)
    n >> cleanup()
    choose(n) >> [report(), quiet()]
    price.expand(x=rows)
'''

SCENARIOS = [
    '%%scenario "load fails" shop\nfail: [load]\nexpect:\n  choose: upstream_failed\n'
    '  report: upstream_failed\n  cleanup: success\nrun: failed\n',
    '%%scenario quiet shop\nbranch: {choose: [quiet]}\nxcom: {extract: []}\n'
    'expect: {report: skipped, quiet: success}\nrun: success\n',
    '%%scenario wrong shop\nskip: [extract]\nexpect: {load: success}\n',
    # A whole mapped task is checked per map index; the failure lists the instances.
    '%%scenario "one price" shop\nfail: ["price[1]"]\nexpect: {price: success}\n',
]


def _airflow_version() -> str:
    out = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; "
                          "print(m.version('apache-airflow'))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture(scope="session")
def clean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python that has apache-airflow (Kyte's version) and pytest, and cannot import Kyte.

    With ``$KYTE_CLEAN_AIRFLOW_VENV`` (CI may cache one): a venv there with exactly
    ``apache-airflow`` and ``pytest`` pip-installed (made if missing; minutes). Otherwise,
    in seconds: a venv without pip whose only path entry is this environment's
    site-packages, added by a plain ``.pth`` line. Python does not run the ``.pth`` files of
    a directory added that way, so Kyte's editable install (a ``.pth`` there) is not on the
    path: ``import kyte_jupyter`` fails, which the fixture checks. The other packages of
    this environment are importable there; that the generated file imports only the
    standard library, Airflow and pytest is checked on its text (test_whatif.py).
    """
    reuse = os.environ.get("KYTE_CLEAN_AIRFLOW_VENV")
    if reuse:
        where = Path(reuse)
        python = where / "bin" / "python"
        if not python.exists():
            venv.create(where, with_pip=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q",
                            f"apache-airflow=={_airflow_version()}", "pytest"],
                           check=True, timeout=1800)
    else:
        where = tmp_path_factory.getbasetemp() / "airflow-only-venv"
        python = where / "bin" / "python"
        if not python.exists():
            venv.create(where, with_pip=False)
            out = subprocess.run([str(python), "-c", "import sysconfig; "
                                  "print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True)
            shared = subprocess.run([sys.executable, "-c", "import sysconfig; "
                                     "print(sysconfig.get_paths()['purelib'])"],
                                    capture_output=True, text=True, check=True)
            (Path(out.stdout.strip()) / "kyte_test_shared_site.pth").write_text(
                shared.stdout.strip() + "\n")
    bare = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    check = subprocess.run([str(python), "-c", "import kyte_jupyter"], capture_output=True,
                           env=bare, cwd=where)
    assert check.returncode != 0, "the clean venv must not see Kyte"
    check = subprocess.run([str(python), "-c", "import airflow.sdk, pytest"],
                           capture_output=True, text=True, env=bare, cwd=where)
    assert check.returncode == 0, check.stderr[-2000:]
    return python


@pytest.mark.timeout(3600)
def test_exported_tests_pass_in_a_clean_venv(tmp_path: Path, clean_python: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(DAG)] + [
        nbformat.v4.new_code_cell(s) for s in SCENARIOS]
    path = tmp_path / "shop.ipynb"
    nbformat.write(nb, str(path))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "KYTE"))}
    env["AIRFLOW_HOME"] = str(tmp_path / "export-home")  # the export runs the DAG file
    out = subprocess.run(
        [sys.executable, "-m", "kyte_jupyter.cli", "export", str(path), "--tests",
         "--no-lint"],  # the lint gate has its own tests (test_lint.py)
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    test_file = tmp_path / "dags" / "test_shop.py"
    assert "Wrote dags/test_shop.py" in out.stdout or test_file.exists(), out.stdout
    assert "kyte_jupyter" not in test_file.read_text()

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "KYTE", "PYTHONPATH", "VIRTUAL_ENV"))}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # pytest alone, as in a clean venv
    run = subprocess.run(
        [str(clean_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_shop.py",
         "-o", "log_level=WARNING"],
        cwd=tmp_path / "dags", capture_output=True, text=True, env=env, timeout=1800,
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr
    assert "2 failed, 2 passed" in summary, run.stdout[-5000:] + run.stderr[-2000:]
    assert "FAILED test_shop.py::test_wrong" in run.stdout
    assert "FAILED test_shop.py::test_one_price" in run.stdout
    failure = [line for line in run.stdout.splitlines()
               if line.startswith("E") and "states differ" in line]
    assert len(failure) == 2, json.dumps(failure)
    assert "load: expected success, got skipped" in failure[0], json.dumps(failure)
    assert ("price: expected success, got [(0, 'success'), (1, 'failed'), (2, 'success')]"
            in failure[1]), json.dumps(failure)
