"""The static checks in a real kernel: findings under ``%%dag``, ``%lint``, ``%render``."""

from __future__ import annotations

import json
from typing import Any

from test_lint import INCLUDE, POLICY, PROBLEMS

LINT_MIME = "application/vnd.kyte.lint+json"


def keys(findings: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """(check, rule, task_id, field, line) of each finding (a kernel knows no cell number)."""
    return {(f["check"], f["rule"], f["task_id"], f["field"], f["line"]) for f in findings}


KERNEL_EXPECTED = {
    ("airflow", "AIR311", None, None, 8),
    ("templates", "undefined", "extract", "bash_command", 4),
    ("sql", "PRS", "load", "sql", 5),
    ("templates", "missing-template", "report", "sql", 6),
    ("policy", "task_policy:owner-required", "notify", None, 7),
}


def test_dag_cell_shows_findings_and_lint_and_render(make_kernel: Any) -> None:
    k = make_kernel(KYTE_POLICY_MODULE=str(POLICY))
    k.ok(INCLUDE)
    res = k.ok(PROBLEMS, cell_id="cell-orders")
    (payload,) = res.data(LINT_MIME)
    found = payload["findings"]
    # The first %%dag of a kernel may still be importing sqlfluff: SQL then comes later.
    without_sql = {key for key in KERNEL_EXPECTED if key[0] != "sql"}
    assert without_sql <= keys(found) <= KERNEL_EXPECTED, json.dumps(found, indent=1)
    assert all(f["cell_id"] == "cell-orders" for f in found)
    assert "undefined" in res.text  # the text shown under the graph

    res = k.ok("%lint orders")
    (payload,) = res.data(LINT_MIME)
    assert keys(payload["findings"]) == KERNEL_EXPECTED, json.dumps(payload, indent=1)

    res = k.ok("%render orders extract --logical-date 2026-03-04")
    assert "# property: bash_command" in res.stdout
    assert "batch_size" in res.stdout and "ERROR (undefined)" in res.stdout
    res = k.ok("%render orders load --logical-date 2026-03-04")
    assert "customer = 'O'Brien' AND day = '2026-03-04'" in res.stdout
