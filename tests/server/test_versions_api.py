"""``…/dags/{dag_id}/versions[/{number}]`` and the runs' ``dag_version`` on a real server,
over DAG versions a real kernel wrote by running a ``%%dag`` cell edited twice."""

from __future__ import annotations

import json
from pathlib import Path
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


@pytest.fixture
def sessions_root(kyte_root: Path) -> Path:
    """Kernels (tests/conftest.py ``make_kernel``) write into the test server's root."""
    return kyte_root


async def status(jp_fetch: Any, *parts: str) -> tuple[int, Any]:
    try:
        response = await jp_fetch(*parts)
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
