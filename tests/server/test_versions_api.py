"""``…/dags/{dag_id}/versions[/{number}]``, ``…/dags/{dag_id}/diff`` and the runs'
``dag_version`` and ``forced`` on a real server, over DAG versions a real kernel wrote by
running a ``%%dag`` cell edited three times, the last version run with a forced failure."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from kyte_jupyter.session import Session

V1 = """%%dag shop
from airflow.sdk import task

@task
def extract():
    return [1, 2, 3]

@task
def load(rows):
    return sum(rows)

load(extract())
"""

# Version 2 adds a task downstream of load.
V2 = V1.replace(
    "load(extract())",
    "total = load(extract())\n\n@task\ndef report(t):\n    return t\n\nreport(total)",
)

# Version 3: load gets retries, report goes, audit (downstream of extract) comes.
V3 = """%%dag shop
from airflow.sdk import task

@task
def extract():
    return [1, 2, 3]

@task(retries=2)
def load(rows):
    return sum(rows)

@task
def audit(rows):
    return len(rows)

rows = extract()
load(rows)
audit(rows)
"""


@pytest.fixture
def sessions_root(kyte_root: Path) -> Path:
    """Kernels (tests/conftest.py ``make_kernel``) write into the test server's root."""
    return kyte_root


async def status(jp_fetch: Any, *parts: str, **kwargs: Any) -> tuple[int, Any]:
    try:
        response = await jp_fetch(*parts, **kwargs)
    except HTTPClientError as e:
        assert e.response is not None
        return e.code, json.loads(e.response.body)
    return int(response.code), json.loads(response.body)


async def test_versions_graphs_and_run_versions_of_a_dag_edited_in_a_kernel(
    make_kernel: Any, fetch_json: Any, jp_fetch: Any
) -> None:
    k = make_kernel("shop.ipynb")
    for source in (V1, V2):
        k.ok(source, cell_id="the-cell")
        k.ok("%run_dag shop")
    (session,) = await fetch_json("kyte", "sessions")
    sid = session["id"]
    base = ("kyte", "sessions", sid, "dags", "shop")

    versions = await fetch_json(*base, "versions")
    assert [v["number"] for v in versions] == [1, 2]
    assert all(v["created_at"] for v in versions)

    v1 = await fetch_json(*base, "versions", "1")
    v2 = await fetch_json(*base, "versions", "2")
    assert v1["dag_id"] == "shop" and v1["number"] == 1
    assert sorted(n["task_id"] for n in v1["nodes"]) == ["extract", "load"]
    assert v1["edges"] == [["extract", "load"]]
    assert sorted(n["task_id"] for n in v2["nodes"]) == ["extract", "load", "report"]
    assert sorted(map(tuple, v2["edges"])) == [("extract", "load"), ("load", "report")]

    # Each run names the version it ran; the older run's tasks fit the older graph.
    runs = await fetch_json(*base, "runs")
    assert [r["dag_version"] for r in runs] == [2, 1]
    old = runs[1]["run_id"]
    tasks = await fetch_json(*base, "runs", old, "tasks")
    assert sorted(t["task_id"] for t in tasks) == ["extract", "load"]

    for number, code, text in (
        ("3", 404, "no version 3; its versions are 1, 2"),
        ("0", 400, "from 1"),
        ("-1", 400, "a number"),
        ("v1", 400, "a number"),
        ("99999999999", 400, "a number"),
    ):
        got, reply = await status(jp_fetch, *base, "versions", number)
        assert (got, text in reply["message"]) == (code, True), (number, reply)
    got, reply = await status(jp_fetch, "kyte", "sessions", sid, "dags", "nope", "versions")
    assert got == 404 and "no DAG 'nope'" in reply["message"]

    # What changed from 1 to 2 (the default: the last two versions).
    diff = await fetch_json(*base, "diff")
    assert (diff["old"], diff["new"]) == (1, 2)
    assert {n["task_id"]: n["change"] for n in diff["nodes"]} == {
        "extract": "unchanged", "load": "unchanged", "report": "added"
    }  # fmt: skip
    assert {(e["source"], e["target"]): e["change"] for e in diff["edges"]} == {
        ("extract", "load"): "unchanged", ("load", "report"): "added"
    }  # fmt: skip
    assert "+def report(t):" in diff["code_diff"]

    # Version 3, run with load forced to fail: every kind of change, and a forced badge.
    k.ok(V3, cell_id="the-cell")
    k.run("%run_dag shop --fail load")
    diff = await fetch_json(*base, "diff", params={"old": "2", "new": "3"})
    assert diff == await fetch_json(*base, "diff")
    nodes = {n["task_id"]: n for n in diff["nodes"]}
    assert {t: n["change"] for t, n in nodes.items()} == {
        "extract": "unchanged", "load": "changed", "audit": "added", "report": "removed"
    }  # fmt: skip
    assert nodes["load"]["arguments"] == [{"name": "retries", "old": None, "new": 2}]
    assert {(e["source"], e["target"]): e["change"] for e in diff["edges"]} == {
        ("extract", "load"): "unchanged", ("extract", "audit"): "added",
        ("load", "report"): "removed",
    }  # fmt: skip
    back = await fetch_json(*base, "diff", params={"old": "3", "new": "1"})
    assert {n["task_id"]: n["change"] for n in back["nodes"]}["load"] == "changed"
    for query, code, text in (
        ({"old": "2", "new": "2"}, 400, "two different versions"),
        ({"old": "9"}, 404, "no version 9; its versions are 1, 2, 3"),
        ({"new": "1"}, 404, "no version before 1"),
        ({"old": "x"}, 400, "integer"),
    ):
        got, reply = await status(jp_fetch, *base, "diff", params=query)
        assert (got, text in reply["message"]) == (code, True), (query, reply)

    runs = await fetch_json(*base, "runs")
    assert [(r["dag_version"], r["forced"]) for r in runs] == [
        (3, {"load": "fail"}), (2, {}), (1, {})
    ]  # fmt: skip
    (dag,) = await fetch_json("kyte", "sessions", sid, "dags")
    assert dag["latest_run"]["forced"] == {"load": "fail"}
    assert {n["task_id"]: (n["state"], n["forced"]) for n in dag["nodes"]} == {
        "extract": ("success", None), "load": ("failed", "fail"), "audit": ("success", None)
    }  # fmt: skip
    tasks = await fetch_json(*base, "runs", runs[0]["run_id"], "tasks")
    assert {t["task_id"]: t["forced"] for t in tasks} == {
        "extract": None, "load": "fail", "audit": None
    }  # fmt: skip

    # The front end's Jest fixtures are these replies (tests/server/test_frontend_fixtures.py).
    from test_frontend_fixtures import _check

    home: Any = SimpleNamespace(id=sid, home=session["home"])  # what _check reads of a Session
    _check("server_diff.json", diff, home)
    dag["fileloc"] = (dag["fileloc"] or "").replace(session["home"], "/SESSION_HOME")
    _check("server_dags_forced.json", _fixed_times(dag, runs[0]["run_id"]), home)
    _check("server_runs_forced.json", _fixed_times(runs, *[r["run_id"] for r in runs]), home)


def _fixed_times(reply: Any, *run_ids: str) -> Any:
    """A reply with its run ids and times replaced by fixed ones (the fixtures stay put)."""
    text = json.dumps(reply)
    for i, run_id in enumerate(run_ids):
        text = text.replace(run_id, f"manual__RUN_{len(run_ids) - i}")
    text = re.sub(r'"\d{4}-\d\d-\d\dT[^"]*"', '"2026-01-02T03:04:05+00:00"', text)
    return json.loads(text)


async def test_a_dag_without_versions_has_an_empty_list(
    fetch_json: Any, jp_fetch: Any, etl_session: Session
) -> None:
    assert await fetch_json("kyte", "sessions", etl_session.id, "dags", "etl", "versions") == []
    got, reply = await status(
        jp_fetch, "kyte", "sessions", etl_session.id, "dags", "etl", "versions", "1"
    )
    assert got == 404 and "it has no version" in reply["message"]
    got, _ = await status(jp_fetch, "kyte", "sessions", "nb-0123456789", "dags", "etl", "versions")
    assert got == 404
