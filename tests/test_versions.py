"""Run history, version diffs and run comparison on a DAG edited and run in a real kernel."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from kyte_jupyter import versions
from kyte_jupyter.session import SessionStore

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

# Version 2 changes an operator argument (retries) and adds a task with an edge.
V2 = V1.replace("@task\ndef load", "@task(retries=2)\ndef load").replace(
    "load(extract())",
    "total = load(extract())\n\n@task\ndef report(t):\n    return t\n\nreport(total)",
)

# Version 3 removes the report task again and makes extract return other data.
V3 = V1.replace("[1, 2, 3]", "[1, 2, 4]")


def test_history_diff_and_compare_on_a_dag_edited_three_times(
    make_kernel: Any, sessions_root: Path
) -> None:
    k = make_kernel("shop.ipynb")
    for source in (V1, V2, V3):
        k.ok(source, cell_id="the-cell")
        k.ok("%run_dag shop")
    session = SessionStore(sessions_root).find(str(k.notebook))
    assert session is not None
    con = session.connect_readonly()  # airflow.db, or PostgreSQL (KYTE_TEST_METASTORE)
    check_history(con)
    check_diff(con)
    check_compare(con)
    check_magics(k)


def check_magics(k: Any) -> None:
    """What a user types: %runs, %dag_diff, %compare, and their mistakes."""
    text = k.ok("%runs shop").text
    assert text.count("success") == 3 and "v3" in text and "v1" in text
    k.ok("h = %runs shop")
    newest, oldest = k.value("h[0].run_id"), k.value("h[-1].run_id")

    diff = k.ok("%dag_diff shop 1 2").text
    assert "+ task report" in diff and "+ edge load >> report" in diff
    assert "~ load.retries: (default) -> 2" in diff
    k.ok("d = %dag_diff shop")
    assert k.value("d.removed_tasks") == ["report"], "default: the last two"

    k.ok(f"c = %compare shop {oldest} {newest}")
    assert k.value("[r.key for r in c.differences]") == ["extract", "load"]
    assert "differs" in k.ok("c").text

    for bad, message in [
        ("%dag_diff shop 7", "no version 7; its versions are 1, 2, 3"),
        ("%dag_diff nope", "has no recorded version"),
        (f"%compare shop {oldest} nope", "has no run 'nope'"),
        ("%runs shop --limit 0", "--limit must be from 1 to 10000"),
        ("%runs shop --limit 99999999999999999999999", "--limit must be from 1 to 10000"),
        ("%dag_diff shop 99999999999999999999999999", "is not one"),
        ("%dag_diff shop 0", "Version numbers start at 1"),
        ("%dag_diff shop 1 2 3", "at most two version numbers"),
    ]:
        r = k.fails(bad)
        assert message in r.text, (bad, r.text)
        assert "Traceback" not in r.text


def check_history(con: sqlite3.Connection) -> None:
    runs = versions.run_history(con, "shop")
    assert [r.version for r in runs] == [3, 2, 1]
    assert [r.state for r in runs] == ["success"] * 3
    assert all(r.duration_s is not None and r.duration_s >= 0 for r in runs)
    assert len({r.run_id for r in runs}) == 3


def check_diff(con: sqlite3.Connection) -> None:
    assert [v.number for v in versions.list_versions(con, "shop")] == [1, 2, 3]
    one, two, three = (versions.get_version(con, "shop", n) for n in (1, 2, 3))

    d = versions.diff_versions(one, two)
    assert d.added_tasks == ["report"] and d.removed_tasks == []
    assert d.added_edges == [("load", "report")] and d.removed_edges == []
    assert d.changed_arguments["load"]["retries"] == (None, 2)
    assert "  ~ load.retries: (default) -> 2" in d.summary_lines()
    assert "+@task(retries=2)" in d.code_diff

    back = versions.diff_versions(two, three)
    assert back.removed_tasks == ["report"] and back.removed_edges == [("load", "report")]
    assert "-    return [1, 2, 3]" in versions.diff_versions(one, three).code_diff
    assert versions.diff_versions(one, one).unchanged

    with pytest.raises(versions.VersionError, match="no version 9; its versions are 1, 2, 3"):
        versions.get_version(con, "shop", 9)


def check_compare(con: sqlite3.Connection) -> None:
    newest, _middle, oldest = (r.run_id for r in versions.run_history(con, "shop"))
    rows = {c.key: c for c in versions.compare_runs(con, "shop", oldest, newest)}
    assert set(rows) == {"extract", "load"}, "report ran in neither of these two runs"
    assert rows["extract"].xcom_equal is False
    assert "[1, 2, 4]" in rows["extract"].xcom_diff and "[1, 2, 3]" in rows["extract"].xcom_diff
    assert rows["load"].xcom_equal is False  # 6 vs 7
    assert rows["extract"].state_a == rows["extract"].state_b == "success"
    assert rows["extract"].tries_a == rows["extract"].tries_b == 1

    with pytest.raises(versions.VersionError, match="has no run 'nope'"):
        versions.compare_runs(con, "shop", oldest, "nope")


def test_values_are_compared_as_data_not_reprs() -> None:
    import pandas as pd

    a = pd.DataFrame({"x": [1, 2]})
    assert versions.values_equal(a, pd.DataFrame({"x": [1, 2]}))
    assert not versions.values_equal(a, pd.DataFrame({"x": [1, 3]}))
    assert versions.values_equal({"k": [1, 2]}, {"k": [1, 2]})
    assert "x" in versions._value_diff(a, pd.DataFrame({"x": [1, 3]})), "a readable diff"
