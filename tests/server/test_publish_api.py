"""``GET /kyte/publish/targets`` and ``POST /kyte/publish`` on a real server.

The publish runs the real ``jupyter kyte publish`` in a subprocess against a folder target the
test configures through ``KYTE_PUBLISH_TARGETS``; what lands in the folder is read back and
checked against the SHA-256 the dry run showed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from tornado.httpclient import HTTPClientError

from kyte_jupyter.server.handlers import MAX_BODY_SIZE
from kyte_jupyter.server.publish import redact_url

DAG = """%%dag shipped --schedule @daily --start-date 2026-01-01
from airflow.providers.standard.operators.bash import BashOperator

extract = BashOperator(task_id="extract", bash_command="echo extract")
load = BashOperator(task_id="load", bash_command="echo {load}")
extract >> load
"""

SECRET = "s3cr3t-token"
REVIEW = {"path": "ship.ipynb", "target": "staging", "dry_run": True}


@pytest.fixture
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder target ``staging`` and a git target whose URL holds a password."""
    folder = tmp_path / "staging-dags"
    monkeypatch.setenv(
        "KYTE_PUBLISH_TARGETS",
        json.dumps(
            {
                "staging": str(folder),
                "prod": f"git+https://ann:{SECRET}@git.invalid/dags.git#main",
            }
        ),
    )
    monkeypatch.setenv("KYTE_PUBLISH_AUTHOR", "Ann Analyst <ann@example.org>")
    return folder


@pytest.fixture
def kyte_extension_config(tmp_path: Path) -> dict[str, Any]:
    """The operator's setting: ``KyteExtensionApp.publish_targets`` (the environment wins)."""
    return {"publish_targets": {"team": str(tmp_path / "team-dags")}}


def write_notebook(root: Path, load: str = "v1", name: str = "ship.ipynb") -> Path:
    nb = new_notebook()
    nb.cells.append(new_code_cell(DAG.replace("{load}", load)))
    path = root / name
    nbformat.write(nb, path)
    return path


def diff_lines(diff: str, sign: str) -> list[str]:
    """The added (``+``) or removed (``-``) lines of a unified diff, stripped."""
    return [
        line[1:].strip()
        for line in diff.splitlines()
        if line.startswith(sign) and not line.startswith(sign * 3)
    ]


async def post(jp_fetch: Any, body: Any) -> tuple[int, Any]:
    """POST kyte/publish; the status and the decoded reply (errors too)."""
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    try:
        response = await jp_fetch("kyte", "publish", method="POST", body=raw, request_timeout=240)
    except HTTPClientError as e:
        assert e.response is not None
        return e.code, json.loads(e.response.body)
    return int(response.code), json.loads(response.body)


async def test_targets_are_listed_without_credentials(fetch_json: Any, staging: Path) -> None:
    targets = await fetch_json("kyte", "publish", "targets")
    assert [(t["name"], t["kind"]) for t in targets] == [("prod", "git"), ("staging", "folder")]
    assert str(staging) in targets[1]["description"]
    assert "git.invalid/dags.git" in targets[0]["description"]
    assert SECRET not in json.dumps(targets) and "ann:" not in json.dumps(targets)


async def test_targets_come_from_the_publish_targets_setting(
    jp_fetch: Any, fetch_json: Any, jp_root_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.delenv("KYTE_PUBLISH_TARGETS", raising=False)
    targets = await fetch_json("kyte", "publish", "targets")
    assert [(t["name"], t["kind"]) for t in targets] == [("team", "folder")]
    write_notebook(jp_root_dir)
    code, review = await post(jp_fetch, {**REVIEW, "target": "team"})
    assert code == 200, review
    assert [c["filename"] for c in review["changes"]] == ["shipped.py"]
    assert not (tmp_path / "team-dags").exists()


def test_redact_url_keeps_no_user_info_or_query() -> None:
    assert redact_url("https://u:p@h.example/x.git?token=1") == "https://h.example/x.git"
    assert redact_url("https://TOKEN@h.example/x.git") == "https://h.example/x.git"
    assert redact_url("file:///srv/dags.git") == "file:///srv/dags.git"
    assert redact_url("/srv/dags") == "/srv/dags"


async def test_dry_run_then_publish_exactly_what_was_reviewed(
    jp_fetch: Any, fetch_json: Any, jp_root_dir: Path, staging: Path
) -> None:
    write_notebook(jp_root_dir)
    code, review = await post(jp_fetch, REVIEW)
    assert code == 200, review
    assert review["published"] is False and review["commit"] is None
    assert review["target"] == "staging" and str(staging) in review["target_description"]
    (change,) = review["changes"]
    assert change["filename"] == "shipped.py" and change["status"] == "added"
    assert 'load = BashOperator(task_id="load", bash_command="echo v1")' in diff_lines(
        change["diff"], "+"
    )
    assert not diff_lines(change["diff"], "-"), "a new file removes nothing"
    assert not (staging / "shipped.py").exists(), "a dry run writes nothing"

    code, done = await post(
        jp_fetch,
        {
            "path": "ship.ipynb",
            "target": "staging",
            "dry_run": False,
            "expect": {"shipped.py": change["sha256"]},
        },
    )
    assert code == 200, done
    assert done["published"] is True
    data = (staging / "shipped.py").read_bytes()
    assert hashlib.sha256(data).hexdigest() == change["sha256"]

    # The session's audit trail says who published which hash where.
    (session,) = await fetch_json("kyte", "sessions", params={"path": "ship.ipynb"})
    audit = await fetch_json("kyte", "sessions", session["id"], "audit")
    (entry,) = [e for e in audit if e["action"] == "publish"]
    assert entry["sha256"] == change["sha256"] and entry["target"] == "staging"

    # A second review shows the change of one task, and nothing else.
    write_notebook(jp_root_dir, load="v2")
    code, again = await post(jp_fetch, {"path": "ship.ipynb", "target": "staging", "dry_run": True})
    assert code == 200
    (change2,) = again["changes"]
    assert change2["status"] == "changed"
    assert ['load = BashOperator(task_id="load", bash_command="echo v1")'] == diff_lines(
        change2["diff"], "-"
    )
    assert ['load = BashOperator(task_id="load", bash_command="echo v2")'] == diff_lines(
        change2["diff"], "+"
    )


async def test_a_notebook_changed_after_the_review_is_not_published(
    jp_fetch: Any, jp_root_dir: Path, staging: Path
) -> None:
    write_notebook(jp_root_dir)
    _, review = await post(jp_fetch, {"path": "ship.ipynb", "target": "staging", "dry_run": True})
    write_notebook(jp_root_dir, load="edited after the review")
    code, reply = await post(
        jp_fetch,
        {
            "path": "ship.ipynb",
            "target": "staging",
            "dry_run": False,
            "expect": {"shipped.py": review["changes"][0]["sha256"]},
        },
    )
    assert code == 400
    assert "changed since it was reviewed" in reply["message"]
    assert not (staging / "shipped.py").exists()


async def test_failures_are_400_with_the_reason_and_no_credentials(
    jp_fetch: Any, jp_root_dir: Path, staging: Path
) -> None:
    write_notebook(jp_root_dir)
    code, reply = await post(jp_fetch, {"path": "ship.ipynb", "target": "prod", "dry_run": True})
    assert code == 400
    assert "Cannot read the git repository https://git.invalid/dags.git" in reply["message"]
    assert SECRET not in reply["message"]

    (jp_root_dir / "broken.ipynb").write_text("not a notebook")
    code, reply = await post(jp_fetch, {**REVIEW, "path": "broken.ipynb"})
    assert code == 400 and reply["message"]

    # A file of the same name that Kyte did not write is never overwritten.
    staging.mkdir()
    (staging / "shipped.py").write_text("# hand-written\n")
    code, reply = await post(jp_fetch, {"path": "ship.ipynb", "target": "staging", "dry_run": True})
    assert code == 400 and "Kyte did not write" in reply["message"]
    assert (staging / "shipped.py").read_text() == "# hand-written\n"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"path": "../ship.ipynb", "target": "staging", "dry_run": True}, 400, "'..'"),
        ({"path": "/etc/passwd", "target": "staging", "dry_run": True}, 400, "absolute"),
        ({"path": "missing.ipynb", "target": "staging", "dry_run": True}, 404, "no notebook"),
        ({"path": "ship.ipynb", "target": "nope", "dry_run": True}, 400, "no publish target"),
        ({"path": "ship.ipynb", "target": "/tmp/elsewhere", "dry_run": True}, 400, "target"),
        ({"path": "ship.ipynb", "target": "staging", "dry_run": False}, 400, "expect"),
        (
            {"path": "ship.ipynb", "target": "staging", "dry_run": False,
             "expect": {"../x.py": "0" * 64}},
            400,
            "expect",
        ),
        (
            {"path": "ship.ipynb", "target": "staging", "dry_run": False,
             "expect": {"shipped.py": "abc"}},
            400,
            "expect",
        ),
        ({**REVIEW, "dag_id": "--yes"}, 400, "no DAG '--yes'"),  # not taken for an option
        ({**REVIEW, "dag_id": "a/../b"}, 400, "dag_id"),
        ({"path": "ship.ipynb", "target": "staging", "dry_run": "yes"}, 400, "dry_run"),
        ({"path": "ship.ipynb", "target": "staging"}, 400, "dry_run"),
        ({"path": "ship.ipynb", "target": "staging", "dry_run": True, "extra": 1}, 400, "extra"),
        ([1, 2], 400, "JSON object"),
        ("{not json", 400, "not valid JSON"),
    ],
)  # fmt: skip
async def test_hostile_publish_requests_are_refused(
    jp_fetch: Any, jp_root_dir: Path, staging: Path, body: Any, status: int, message: str
) -> None:
    write_notebook(jp_root_dir)
    code, reply = await post(jp_fetch, body)
    assert code == status, reply
    assert message in reply["message"]
    assert not staging.exists() and not Path("/tmp/elsewhere").exists()


async def test_huge_bodies_are_refused(jp_fetch: Any, staging: Path) -> None:
    huge = json.dumps({"path": "ship.ipynb", "pad": "x" * (MAX_BODY_SIZE + 10)})
    try:
        code, _ = await post(jp_fetch, huge)
    except OSError:  # the server may close the connection while the client still writes
        code = 413
    assert code == 413


async def test_publish_routes_need_authentication(
    http_server_client: Any, jp_base_url: str, jp_root_dir: Path, staging: Path
) -> None:
    write_notebook(jp_root_dir)
    body = json.dumps({"path": "ship.ipynb", "target": "staging", "dry_run": False,
                       "expect": {"shipped.py": "0" * 64}})  # fmt: skip
    for path, method in (("kyte/publish/targets", "GET"), ("kyte/publish", "POST")):
        for headers in ({}, {"Authorization": "token wrong-token"}):
            with pytest.raises(HTTPClientError) as info:
                await http_server_client.fetch(
                    jp_base_url + path,
                    method=method,
                    headers=headers,
                    body=body if method == "POST" else None,
                )
            assert info.value.code in (401, 403), (path, headers)
    assert not staging.exists()
