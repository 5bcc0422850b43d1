"""The contract models and docs/openapi.yaml are one definition: drift fails here (issue 14.1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError
from server_homes import etl_graph

from kyte_jupyter.contracts import RUN_SUMMARY_MIME, GraphSnapshot, RunSummary, graph, rest
from kyte_jupyter.contracts.openapi import (
    MARKER,
    RESPONSES,
    component_schemas,
    response_schema,
    updated_document,
)

REPO = Path(__file__).resolve().parents[2]
OPENAPI = REPO / "docs" / "openapi.yaml"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    return doc


def test_the_documents_schemas_are_the_models() -> None:
    text = OPENAPI.read_text(encoding="utf-8")
    assert MARKER in text
    assert updated_document(text) == text, (
        "docs/openapi.yaml differs from kyte_jupyter/contracts: "
        "run python -m kyte_jupyter.contracts.openapi"
    )


def test_a_changed_model_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    text = OPENAPI.read_text(encoding="utf-8")
    before = component_schemas()
    monkeypatch.setitem(rest.LogRange.model_fields, "complete", rest.LogRange.model_fields["size"])
    rest.LogRange.model_rebuild(force=True)
    try:
        assert component_schemas() != before
        assert updated_document(text) != text
    finally:
        monkeypatch.undo()
        rest.LogRange.model_rebuild(force=True)
    assert component_schemas() == before


def test_a_hand_edited_schema_is_caught() -> None:
    text = OPENAPI.read_text(encoding="utf-8")
    head, _, tail = text.partition(MARKER)
    edited = head + MARKER + tail.replace("next_offset:", "next_ofset:", 1)
    assert updated_document(edited) != edited


def test_the_check_command_agrees() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kyte_jupyter.contracts.openapi", "--check", str(OPENAPI)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr


def test_every_operation_replies_with_its_model(spec: dict[str, Any]) -> None:
    seen = {}
    for path, item in spec["paths"].items():
        for verb, op in item.items():
            if verb == "parameters":
                continue
            seen[op["operationId"]] = (path, verb)
            ok = op["responses"].get("200")
            if ok is None:
                continue
            schema = ok["content"]["application/json"]["schema"]
            if op["operationId"] == "getTaskLog":
                assert schema == {"oneOf": [response_schema(rest.LogRange),
                                            response_schema(rest.LogSearch)]}  # fmt: skip
            else:
                assert schema == response_schema(RESPONSES[op["operationId"]]), path
    assert set(seen) == set(RESPONSES) | {"deleteSession"}


def test_every_ref_resolves_and_schemas_are_valid(spec: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert refs
    for ref in refs:
        target: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
    for name, schema in spec["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema.get("title") == name
    for name in ("GraphSnapshot", "RunSummary", "DagView", "LogSearch", "ExportRequest"):
        assert name in spec["components"]["schemas"]


def _validator(spec: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A validator of one component, resolving the document's own $refs."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_map_states_is_map_index_to_state(spec: dict[str, Any]) -> None:
    node = spec["components"]["schemas"]["Node"]["properties"]["map_states"]
    assert node["type"] == "object"
    assert "map index" in node["description"]
    assert node["additionalProperties"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    mapped = {**etl_graph()["nodes"][1], "state": "running", "try_number": 1,
              "map_states": {"0": "success", "1": "running", "2": None}}  # fmt: skip
    _validator(spec, "Node").validate(rest.Node.model_validate(mapped).model_dump(mode="json"))
    plain = rest.Node.model_validate({**etl_graph()["nodes"][0], "state": None, "try_number": 0})
    assert "map_states" not in plain.model_dump(mode="json")
    with pytest.raises(jsonschema.ValidationError):  # the front end's old reading
        _validator(spec, "Node").validate({**mapped, "map_states": {"success": 2}})


def test_graph_snapshot_reads_what_the_kernel_writes(spec: dict[str, Any]) -> None:
    raw = etl_graph()
    snap = GraphSnapshot.model_validate(raw)
    assert snap.warnings == [] and snap.findings == [] and snap.edges[0] == ("extract", "double")
    out = snap.model_dump(mode="json")
    _validator(spec, "GraphSnapshot").validate(out)
    assert {k: v for k, v in out.items() if k not in ("warnings", "findings")} == raw
    # Findings as the kernel writes them (Finding.model_dump) read back equal.
    finding = {
        "severity": "error",
        "check": "sql",
        "rule": "PRS",
        "dag_id": "etl",
        "task_id": "g.load",
        "field": "sql",
        "message": "syntax error",
        "line": 3,
    }
    with_findings = GraphSnapshot.model_validate({**raw, "findings": [finding]})
    dumped = with_findings.model_dump(mode="json")
    _validator(spec, "GraphSnapshot").validate(dumped)
    assert dumped["findings"][0] == {**finding, "cell": None, "cell_id": None, "field_line": None}
    # A newer kernel's extra field does not hide the DAG; a missing task_id does.
    assert GraphSnapshot.model_validate({**raw, "future": 1}).dag_id == "etl"
    with pytest.raises(ValidationError):
        GraphSnapshot.model_validate({**raw, "nodes": [{"label": "x"}]})
    assert graph.GraphNode.model_validate({"task_id": "t", "label": "t"}).trigger_rule == (
        "all_success"
    )


def test_run_summary_is_the_agreed_shape(spec: dict[str, Any]) -> None:
    assert RUN_SUMMARY_MIME == "application/vnd.kyte.run-summary+json"
    example = {
        "version": 1,
        "magic": "run_task",
        "dag_id": "etl",
        "run_id": "manual__2026-01-02T03:04:05+00:00",
        "state": "failed",
        "run_state": "running",
        "duration_s": 1.23,
        "task_instances": [
            {"key": "load", "task_id": "load", "map_index": -1, "state": "failed",
             "try_number": 1, "duration_s": 0.2, "forced": None,
             "error": "RuntimeError: login failed ***"}
        ],
        "failed": ["load"],
    }  # fmt: skip
    summary = RunSummary.model_validate(example)
    assert json.loads(summary.model_dump_json()) == example
    _validator(spec, "RunSummary").validate(example)
    with pytest.raises(ValidationError):
        RunSummary.model_validate({**example, "magic": "run_everything"})
    with pytest.raises(ValidationError):
        RunSummary.model_validate({**example, "task_states": {}})  # a typo'd field
