"""``jupyter kyte publish``: folder and git targets, review, refusal, promotion and audit.

The git targets are real bare repositories made by the test with dulwich and read back with
dulwich; the published file is checked against ``jupyter kyte export`` of the same notebook
and parsed by a stock Airflow ``DagBag``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from dulwich.repo import Repo
from nbformat.v4 import new_code_cell, new_notebook

from kyte_jupyter.cli import main
from kyte_jupyter.export import export_notebook
from kyte_jupyter.session import SessionStore

pytestmark = pytest.mark.usefixtures("isolated")

TASKS = """%%dag shipped --schedule @daily --start-date 2026-01-01
from airflow.providers.standard.operators.bash import BashOperator

extract = BashOperator(task_id="extract", bash_command="echo extract")
load = BashOperator(task_id="load", bash_command="echo {load}")
extract >> load
"""


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, sessions_root: Path) -> None:
    monkeypatch.setenv("KYTE_SESSIONS_ROOT", str(sessions_root))
    monkeypatch.setenv("KYTE_PUBLISH_AUTHOR", "Ann Analyst <ann@example.org>")
    monkeypatch.delenv("KYTE_PUBLISH_TARGETS", raising=False)


def notebook(tmp_path: Path, load: str = "load v1") -> Path:
    nb = new_notebook()
    nb.cells.append(new_code_cell(TASKS.replace("{load}", load)))
    path = tmp_path / "project" / "shipping.ipynb"
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return path


def publish(
    *args: str, capsys: pytest.CaptureFixture[str], checks: bool = False
) -> tuple[int, str, str]:
    """``jupyter kyte publish ARGS`` in this process (checks skipped unless ``checks``)."""
    code = main(["publish", *args, *([] if checks else ["--no-lint"])])
    out, err = capsys.readouterr()
    return code, out, err


def exported(nb: Path, tmp_path: Path) -> bytes:
    out = tmp_path / "reference"
    (path,) = export_notebook(nb, output_dir=out)
    return path.read_bytes()


def branch_file(repo_path: Path, branch: str, name: str) -> tuple[bytes, Repo, bytes]:
    repo = Repo(str(repo_path))
    head = repo.refs[f"refs/heads/{branch}".encode()]
    tree = repo[repo[head].tree]
    _mode, dags_sha = tree[b"dags"]
    _mode, sha = repo[dags_sha][name.encode()]
    return repo[sha].data, repo, head


def test_folder_target_dry_run_shows_the_file_then_publish_writes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nb, target = notebook(tmp_path), tmp_path / "staging-dags"
    code, out, _ = publish(str(nb), "--target", str(target), "--dry-run", capsys=capsys)
    assert code == 0
    added = [line[1:].strip() for line in out.splitlines() if line.startswith("+")]
    assert 'load = BashOperator(task_id="load", bash_command="echo load v1")' in added
    assert "added  shipped.py" in out
    assert not target.exists(), "a dry run writes nothing"

    code, out, _ = publish(str(nb), "--target", str(target), "--yes", capsys=capsys)
    assert code == 0, out
    assert (target / "shipped.py").read_bytes() == exported(nb, tmp_path)
    assert "Published 1 file(s)" in out

    code, out, _ = publish(str(nb), "--target", str(target), "--yes", capsys=capsys)
    assert code == 0 and "nothing to publish" in out


def test_a_changed_task_shows_in_the_dry_run_and_lands_as_one_commit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo_path = tmp_path / "dags.git"
    Repo.init_bare(str(repo_path), mkdir=True)
    url = f"git+file://{repo_path}#main:dags"
    nb = notebook(tmp_path)
    assert publish(str(nb), "--target", url, "--yes", capsys=capsys)[0] == 0
    first, _, first_head = branch_file(repo_path, "main", "shipped.py")
    assert first == exported(nb, tmp_path)

    nb = notebook(tmp_path, load="load v2")
    code, out, _ = publish(str(nb), "--target", url, "--dry-run", capsys=capsys)
    assert code == 0
    diff = [
        line[0] + line[1:].strip()
        for line in out.splitlines()
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert diff == [
        '-load = BashOperator(task_id="load", bash_command="echo load v1")',
        '+load = BashOperator(task_id="load", bash_command="echo load v2")',
    ]
    assert branch_file(repo_path, "main", "shipped.py")[2] == first_head, "dry run commits nothing"

    code, out, _ = publish(str(nb), "--target", url, "--yes", "-m", "Load v2", capsys=capsys)
    assert code == 0, out
    data, repo, head = branch_file(repo_path, "main", "shipped.py")
    assert data == exported(nb, tmp_path)
    commit = repo[head]
    assert commit.parents == [first_head]
    assert commit.author == b"Ann Analyst <ann@example.org>"
    assert commit.message == b"Load v2"
    assert head.decode()[:12] in out


def test_published_file_parses_in_a_stock_dagbag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "airflow-dags"
    assert publish(str(notebook(tmp_path)), "-t", str(target), "--yes", capsys=capsys)[0] == 0
    script = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag({str(target)!r})\n"
        "print(bag.import_errors, sorted(bag.dags['shipped'].task_dict))\n"
    )
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.stdout.strip().endswith("{} ['extract', 'load']"), done.stderr[-2000:]


def test_a_file_kyte_did_not_write_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "dags"
    target.mkdir()
    (target / "shipped.py").write_text("# someone else's DAG\n")
    code, _, err = publish(str(notebook(tmp_path)), "-t", str(target), "--yes", capsys=capsys)
    assert code == 1
    assert "shipped.py, which Kyte did not write" in err and "Nothing was published" in err
    assert (target / "shipped.py").read_text() == "# someone else's DAG\n"


def test_without_yes_and_without_a_terminal_nothing_is_published(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115 - closed by pytest
    target = tmp_path / "dags"
    code, out, err = publish(str(notebook(tmp_path)), "-t", str(target), capsys=capsys)
    assert code == 1
    assert 'extract = BashOperator(task_id="extract"' in out, "the user sees what would change"
    assert "--yes" in err
    assert not (target / "shipped.py").exists()


def test_promotion_copies_exactly_the_reviewed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    staging, prod = tmp_path / "staging", tmp_path / "prod.git"
    Repo.init_bare(str(prod), mkdir=True)
    monkeypatch.setenv(
        "KYTE_PUBLISH_TARGETS",
        json.dumps({"staging": str(staging), "prod": f"git+file://{prod}#release:dags"}),
    )
    nb = notebook(tmp_path)
    assert publish(str(nb), "--target", "staging", "--yes", capsys=capsys)[0] == 0
    reviewed = (staging / "shipped.py").read_bytes()
    notebook(tmp_path, load="edited after review")  # the notebook moves on; prod must not

    code, out, _ = publish("--from", "staging", "--target", "prod", "--yes", capsys=capsys)
    assert code == 0, out
    assert branch_file(prod, "release", "shipped.py")[0] == reviewed

    code, out, _ = publish("--list-targets", capsys=capsys)
    assert "staging\t" in out and "prod\tgit+file://" in out


def test_expect_refuses_a_file_that_changed_since_review(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "dags"
    nb = notebook(tmp_path)
    code, out, _ = publish(
        str(nb), "-t", str(target), "--dry-run", "--format", "json", capsys=capsys
    )
    reviewed = json.loads(out)
    assert code == 0 and reviewed["published"] is False
    (change,) = reviewed["changes"]
    assert change["status"] == "added" and "echo load v1" in change["diff"]

    notebook(tmp_path, load="load v2")
    expect = f"shipped.py={change['sha256']}"
    code, out, _ = publish(
        str(nb), "-t", str(target), "--yes", "--expect", expect, "--format", "json", capsys=capsys
    )
    assert code == 1
    assert "changed since it was reviewed" in json.loads(out)["error"]
    assert not (target / "shipped.py").exists()

    # A reviewed file that the publish no longer contains is refused too, not ignored.
    code, out, _ = publish(
        str(nb), "-t", str(target), "--yes", "--expect", "renamed.py=" + "0" * 64,
        "--format", "json", capsys=capsys,
    )  # fmt: skip
    assert code == 1
    assert "renamed.py was reviewed but is no longer part" in json.loads(out)["error"]
    assert not (target / "shipped.py").exists()


def test_the_audit_trail_records_who_published_which_hash_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sessions_root: Path
) -> None:
    nb, target = notebook(tmp_path), tmp_path / "dags"
    assert publish(str(nb), "-t", str(target), "--yes", capsys=capsys)[0] == 0
    session = SessionStore(sessions_root).find(str(nb.resolve()))
    assert session is not None
    (entry,) = [e for e in session.read_audit() if e["action"] == "publish"]
    data = (target / "shipped.py").read_bytes()
    import hashlib

    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["file"] == "shipped.py" and entry["location"] == str(target)
    assert entry["user"] and entry["outcome"] == "ok"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nowhere"], "no publish target named 'nowhere'"),
        (["--target", "git+file:///tmp/x.git"], "names no branch"),
        (["--target", "git+file:///does/not/exist.git#main"], "Cannot read the git repository"),
        ([], "Name a target with --target"),
        (["--target", "./x", "--expect", "shipped.py=abc"], "--expect takes FILE=SHA256"),
        (["--target", "git+file:///tmp/x.git#main:../../x"], "must be a plain path"),
        (["--target", "./x", "--dag", "../evil"], "--dag: dag_id '../evil' is not an Airflow id"),
    ],
)
def test_bad_targets_get_one_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = publish(str(notebook(tmp_path)), *args, capsys=capsys)
    assert code == 1
    assert message in err
    assert "Traceback" not in err


def test_the_checks_run_first_and_an_error_refuses_the_publish(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nb, target = notebook(tmp_path, load="{{ not_defined_anywhere }}"), tmp_path / "dags"
    code, out, err = publish(str(nb), "-t", str(target), "--yes", capsys=capsys, checks=True)
    assert code == 1, out + err
    assert "Checks failed, so nothing was published" in err
    assert "not_defined_anywhere" in err and "'load'" in err
    assert not (target / "shipped.py").exists()

    code, out, err = publish(str(nb), "-t", str(target), "--yes", capsys=capsys)  # --no-lint
    assert code == 0, err
    assert (target / "shipped.py").exists()


def test_promotion_and_file_targets_never_leave_their_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--dag ../x`` cannot read or write beside a folder; a file is not a folder target."""
    source, dest = tmp_path / "a" / "inner", tmp_path / "b" / "inner"
    source.mkdir(parents=True)
    dest.mkdir(parents=True)
    (tmp_path / "a" / "evil.py").write_text("# Generated by Kyte for Jupyter\nEVIL = 1\n")
    code, out, err = publish(
        "--from", str(source), "--target", str(dest), "--dag", "../evil", "--yes", capsys=capsys
    )
    assert code == 1 and "is not an Airflow id" in err
    assert "EVIL" not in out and not (tmp_path / "b" / "evil.py").exists()

    a_file = tmp_path / "afile"
    a_file.write_text("x")
    for target in (a_file, a_file / "sub"):
        code, _, err = publish(str(notebook(tmp_path)), "-t", str(target), "--yes", capsys=capsys)
        assert code == 1 and "Traceback" not in err, err
        assert "is a file, not a folder" in err or "Cannot read" in err
    assert a_file.read_text() == "x"
