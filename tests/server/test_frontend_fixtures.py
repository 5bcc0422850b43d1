"""Replies of the real Kyte server, kept as the front end's Jest fixtures.

The front end's tests read these files (labextension/src/__tests__/fixtures/server_*.json) so
that both sides test against one shape: the server's own replies, not a shape each side made
up (issue 12.2: ``map_states`` was read as state -> count while the server sends index ->
state). A reply that changes fails here; refresh the files with
``KYTE_UPDATE_FIXTURES=1 pytest tests/server/test_frontend_fixtures.py`` and commit them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kyte_jupyter.session import Session

FIXTURES = Path(__file__).resolve().parents[2] / "labextension" / "src" / "__tests__" / "fixtures"


def _normalize(value: Any, session: Session) -> Any:
    """The reply with what depends on the test's temporary paths replaced by placeholders."""
    text = json.dumps(value, indent=2, sort_keys=True)
    text = text.replace(session.id, "SESSION_ID").replace(str(session.home), "/SESSION_HOME")
    data = json.loads(text)
    if isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and "updated" in item:
                item["updated"] = "2026-01-02T03:04:05+00:00"
    return data


def _check(name: str, reply: Any, session: Session) -> None:
    path = FIXTURES / name
    data = _normalize(reply, session)
    if os.environ.get("KYTE_UPDATE_FIXTURES") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert json.loads(path.read_text()) == data, (
        f"{name} is not what the server answers now: refresh it with KYTE_UPDATE_FIXTURES=1"
    )


async def test_dags_reply_with_a_mapped_task(fetch_json: Any, etl_session: Session) -> None:
    dags = await fetch_json("kyte", "sessions", etl_session.id, "dags")
    nodes = {n["task_id"]: n for n in dags[0]["nodes"]}
    assert nodes["double"]["is_mapped"] and nodes["double"]["map_states"]
    _check("server_dags.json", dags, etl_session)


async def test_task_instances_reply(fetch_json: Any, etl_session: Session) -> None:
    from server_homes import RUN_ID

    tis = await fetch_json("kyte", "sessions", etl_session.id, "dags", "etl", "runs", RUN_ID,
                           "tasks")  # fmt: skip
    assert any(ti["map_index"] >= 0 for ti in tis)
    _check("server_task_instances.json", tis, etl_session)


async def test_dags_reply_with_findings(fetch_json: Any, make_session: Any) -> None:
    """A DAG's findings as the kernel writes them (the contract model, dumped as JSON) and the
    server serves them: the front end's badge tests read this reply."""
    from server_homes import etl_graph, write_graph

    from kyte_jupyter.contracts.lint import Finding

    session = make_session("nb.ipynb")
    graph = etl_graph()
    findings = [
        Finding(severity="error", check="templates", rule="undefined", dag_id="etl",
                task_id="extract", field="bash_command", line=4, field_line=1,
                message="`batch_size` is undefined when rendering for 2026-01-02 00:00"),
        Finding(severity="error", check="templates", rule="undefined", dag_id="etl",
                task_id="extract", field="env", line=4,
                message="`region` is undefined when rendering for 2026-01-02 00:00"),
        Finding(severity="warning", check="policy", rule="task_policy", dag_id="etl",
                task_id="double", line=5,
                message="the deployment would skip this DAG (task_policy): no mapped tasks"),
        Finding(severity="warning", check="airflow", rule="AIR311", dag_id="etl", line=2,
                message="`airflow.models.baseoperator.chain` is moved into `airflow.sdk`"),
        Finding(severity="error", check="policy", rule="task_policy:owner-required",
                dag_id="etl", task_id="g.load", line=7,
                message="violates the cluster policy task_policy: [owner-required] task "
                "'g.load' has no owner"),
        Finding(severity="warning", check="dag", rule="unused-param", dag_id="etl",
                message="param 'region' is declared but no template reads it"),
    ]  # fmt: skip
    graph["findings"] = [f.model_dump(mode="json") for f in findings]
    write_graph(session, graph)
    dags = await fetch_json("kyte", "sessions", session.id, "dags")
    assert [Finding.model_validate(f) for f in dags[0]["findings"]] == findings
    _check("server_dags_findings.json", dags, session)
