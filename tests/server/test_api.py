"""The /kyte REST API against realistic session homes (real metastore schema, no Airflow)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from server_homes import RUN_ID, add_run, connect_rw, etl_graph, write_graph, write_log
from tornado.httpclient import HTTPClientError

from kyte_jupyter.contracts.rest import DagRun
from kyte_jupyter.session import Session, SessionStore


async def error_of(fetch: Any, *parts: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a request that must fail."""
    with pytest.raises(HTTPClientError) as info:
        await fetch(*parts, **kwargs)
    response = info.value.response
    assert response is not None
    assert response.headers["Content-Type"].startswith("application/json")
    body = json.loads(response.body)
    assert isinstance(body["message"], str) and body["message"]
    return info.value.code, body


def log_url(session: Session, task_id: str, run_id: str = RUN_ID, dag_id: str = "etl") -> list[str]:
    return ["kyte", "sessions", session.id, "dags", dag_id, "runs", run_id, "tasks", task_id,
            "logs"]  # fmt: skip


# ---- sessions ---------------------------------------------------------------------------------


async def test_list_and_filter_sessions(
    fetch_json: Any, make_session: Any, jp_root_dir: Path
) -> None:
    a = make_session("a.ipynb")
    b = make_session("work/b.ipynb")
    listed = await fetch_json("kyte", "sessions")
    assert {s["id"] for s in listed} == {a.id, b.id}
    by_id = {s["id"]: s for s in listed}
    assert by_id[b.id]["path"] == "work/b.ipynb"
    assert by_id[b.id]["notebook_path"] == str(jp_root_dir / "work" / "b.ipynb")
    assert by_id[b.id]["home"] == str(b.home)

    only_b = await fetch_json("kyte", "sessions", params={"path": "work/b.ipynb"})
    assert [s["id"] for s in only_b] == [b.id]
    assert await fetch_json("kyte", "sessions", params={"path": "nothing.ipynb"}) == []


@pytest.mark.parametrize(
    "path", ["../outside.ipynb", "work/../../outside.ipynb", "/etc/passwd", "..", "a\\..\\b"]
)
async def test_session_filter_refuses_paths_outside_root(jp_fetch: Any, path: str) -> None:
    code, body = await error_of(jp_fetch, "kyte", "sessions", params={"path": path})
    assert code == 400


async def test_get_and_delete_session(fetch_json: Any, jp_fetch: Any, make_session: Any) -> None:
    session = make_session("nb.ipynb")
    got = await fetch_json("kyte", "sessions", session.id)
    assert got["id"] == session.id and got["path"] == "nb.ipynb"

    response = await jp_fetch("kyte", "sessions", session.id, method="DELETE")
    assert response.code == 204
    assert not session.home.exists()
    code, body = await error_of(jp_fetch, "kyte", "sessions", session.id)
    assert code == 404 and session.id in body["message"]
    code, _ = await error_of(jp_fetch, "kyte", "sessions", session.id, method="DELETE")
    assert code == 404


@pytest.mark.parametrize("bad_id", ["unknown-0123456789", "..", ".templates", "A-B", "x y"])
async def test_unknown_or_invalid_session_ids_are_404(jp_fetch: Any, bad_id: str) -> None:
    for suffix in ([], ["dags"], ["audit"]):
        code, _ = await error_of(jp_fetch, "kyte", "sessions", bad_id, *suffix)
        assert code == 404
    code, _ = await error_of(jp_fetch, "kyte", "sessions", bad_id, method="DELETE")
    assert code == 404


# ---- DAGs, runs, task instances ---------------------------------------------------------------


async def test_dags_graph_with_latest_run_states(fetch_json: Any, etl_session: Session) -> None:
    dags = await fetch_json("kyte", "sessions", etl_session.id, "dags")
    assert [d["dag_id"] for d in dags] == ["etl"]
    dag = dags[0]
    assert dag["description"] == "Extract, transform, load"
    assert dag["schedule"] == "@daily"
    assert dag["source"] == "notebook"
    assert dag["edges"] == [["extract", "double"], ["double", "g.load"], ["g.load", "report"]]
    assert dag["task_groups"] == [{"group_id": "g", "parent": None, "label": "g"}]
    nodes = {n["task_id"]: n for n in dag["nodes"]}
    assert nodes["extract"]["state"] == "success"
    assert nodes["extract"]["operator"] == "@task"
    assert nodes["g.load"]["task_group"] == "g" and nodes["g.load"]["label"] == "load"
    assert nodes["g.load"]["state"] is None
    assert nodes["report"]["state"] is None  # not in the run yet
    assert "map_states" not in nodes["extract"]
    assert nodes["double"]["is_mapped"] is True
    assert nodes["double"]["map_states"] == {"0": "success", "1": "running", "2": None}
    assert nodes["double"]["state"] == "running"
    assert dag["latest_run"] == {
        "run_id": RUN_ID,
        "state": "running",
        "run_type": "manual",
        "logical_date": "2026-01-02T03:04:05.123456+00:00",
        "start_date": "2026-01-02T03:04:05.123456+00:00",
        "end_date": None,
        "forced": {},
    }


async def test_dag_states_follow_the_newest_run(fetch_json: Any, etl_session: Session) -> None:
    add_run(etl_session, "etl", "manual__second", "failed", [("extract", -1, "failed", 2)],
            start="2026-01-01 00:00:00")  # fmt: skip
    dag = (await fetch_json("kyte", "sessions", etl_session.id, "dags"))[0]
    assert dag["latest_run"]["run_id"] == "manual__second"
    nodes = {n["task_id"]: n for n in dag["nodes"]}
    assert nodes["extract"]["state"] == "failed" and nodes["extract"]["try_number"] == 2
    assert nodes["double"]["map_states"] == {} and nodes["double"]["state"] is None


async def test_state_changes_show_on_next_read(fetch_json: Any, etl_session: Session) -> None:
    con = connect_rw(etl_session)
    con.execute("UPDATE task_instance SET state='running' WHERE task_id='g.load'")
    con.commit()  # the kernel's write; the server keeps no cache
    con.close()
    dag = (await fetch_json("kyte", "sessions", etl_session.id, "dags"))[0]
    assert {n["task_id"]: n["state"] for n in dag["nodes"]}["g.load"] == "running"


async def test_dag_without_runs_and_empty_session(fetch_json: Any, make_session: Any) -> None:
    session = make_session("fresh.ipynb")
    assert await fetch_json("kyte", "sessions", session.id, "dags") == []
    write_graph(session, etl_graph())
    (session.graphs_dir / "broken.json").write_text("{not json")
    dags = await fetch_json("kyte", "sessions", session.id, "dags")
    assert [d["dag_id"] for d in dags] == ["etl"]
    assert dags[0]["latest_run"] is None
    assert all(n["state"] is None for n in dags[0]["nodes"])
    assert await fetch_json("kyte", "sessions", session.id, "dags", "etl", "runs") == []


async def test_runs_newest_first(fetch_json: Any, jp_fetch: Any, etl_session: Session) -> None:
    add_run(etl_session, "etl", "manual__second", "success", start="2026-01-03 00:00:00")
    runs = await fetch_json("kyte", "sessions", etl_session.id, "dags", "etl", "runs")
    assert [r["run_id"] for r in runs] == ["manual__second", RUN_ID]
    assert runs[1]["conf"] == {"x": 1}
    assert set(runs[0]) == set(DagRun.model_fields)
    assert runs[0]["dag_version"] is None  # the hand-made run records no DAG version
    limited = await fetch_json(
        "kyte", "sessions", etl_session.id, "dags", "etl", "runs", params={"limit": 1}
    )
    assert len(limited) == 1
    code, _ = await error_of(jp_fetch, "kyte", "sessions", etl_session.id, "dags", "nope", "runs")
    assert code == 404
    code, _ = await error_of(jp_fetch, "kyte", "sessions", etl_session.id, "dags", "etl", "runs",
                             params={"limit": "lots"})  # fmt: skip
    assert code == 400


async def test_task_instances_of_a_run(
    fetch_json: Any, jp_fetch: Any, etl_session: Session
) -> None:
    tis = await fetch_json(
        "kyte", "sessions", etl_session.id, "dags", "etl", "runs", RUN_ID, "tasks"
    )
    keyed = {(t["task_id"], t["map_index"]): t for t in tis}
    assert set(keyed) == {("extract", -1), ("double", 0), ("double", 1), ("double", 2),
                          ("g.load", -1)}  # fmt: skip
    extract = keyed[("extract", -1)]
    assert extract["state"] == "success" and extract["try_number"] == 1
    assert extract["duration"] == 0.5 and extract["operator"] == "@task"
    assert extract["start_date"] == "2026-01-02T03:04:05.123456+00:00"
    code, _ = await error_of(
        jp_fetch, "kyte", "sessions", etl_session.id, "dags", "etl", "runs", "nope", "tasks"
    )
    assert code == 404


async def test_dag_files_in_the_dags_folder_are_read_from_the_serialized_dag(
    fetch_json: Any, make_session: Any
) -> None:
    session = make_session("folder.ipynb")
    data = {
        "__version": 3,
        "dag": {
            "dag_id": "filedag",
            "description": "from a file",
            "task_group": {
                "_group_id": None,
                "children": {
                    "a": ["operator", "a"],
                    "grp": ["taskgroup", {"_group_id": "grp", "prefix_group_id": True,
                                          "children": {"grp.b": ["operator", "grp.b"]}}],
                },
            },
            "tasks": [
                {"__type": "operator", "__var": {"task_id": "a", "task_type": "BashOperator",
                                                 "downstream_task_ids": ["grp.b"]}},
                {"__type": "operator", "__var": {"task_id": "grp.b", "_operator_name": "@task",
                                                 "task_type": "_PythonDecoratedOperator",
                                                 "_is_mapped": True}},
            ],
        },
    }  # fmt: skip
    con = sqlite3.connect(session.db_path)  # SQLite only (its INSERT OR IGNORE, 0/1 booleans)
    con.execute("INSERT OR IGNORE INTO dag_bundle (name, active) VALUES ('dags-folder', 1)")
    con.execute(
        "INSERT INTO dag (dag_id, is_paused, is_stale, fileloc, bundle_name, description, "
        "timetable_type, timetable_summary, partition_mapper_info, max_active_tasks, "
        "max_consecutive_failed_dag_runs, has_task_concurrency_limits) "
        "VALUES ('filedag', 0, 0, ?, 'dags-folder', 'from a file', 'x', '@hourly', '{}', 16, 0, 0)",
        (str(session.dags_folder / "filedag.py"),),
    )
    con.execute(
        "INSERT INTO dag_version (id, version_number, dag_id, created_at, last_updated) "
        "VALUES ('v1', 1, 'filedag', '2026-01-01', '2026-01-01')"
    )
    con.execute(
        "INSERT INTO serialized_dag (id, dag_id, data, created_at, last_updated, dag_hash, "
        "dag_version_id) VALUES ('s1', 'filedag', ?, '2026-01-01', '2026-01-01', 'h', 'v1')",
        (json.dumps(data),),
    )
    con.commit()
    con.close()
    dags = await fetch_json("kyte", "sessions", session.id, "dags")
    assert [d["dag_id"] for d in dags] == ["filedag"]
    dag = dags[0]
    assert dag["source"] == "dags_folder" and dag["schedule"] == "@hourly"
    assert dag["edges"] == [["a", "grp.b"]]
    nodes = {n["task_id"]: n for n in dag["nodes"]}
    assert nodes["grp.b"]["task_group"] == "grp" and nodes["grp.b"]["label"] == "b"
    assert nodes["grp.b"]["operator"] == "@task" and nodes["grp.b"]["is_mapped"]
    assert nodes["a"]["operator"] == "BashOperator"


# ---- logs ---------------------------------------------------------------------------------------


async def test_log_latest_try_by_default_and_older_tries(
    fetch_json: Any, etl_session: Session
) -> None:
    add_run(etl_session, "etl", "manual__retry", "running", [("extract", -1, "running", 2)],
            start="2026-01-03 00:00:00", history=[("extract", -1, 1, "failed")])  # fmt: skip
    write_log(etl_session, "etl", "manual__retry", "extract", 1, b"first try\nboom\n")
    write_log(etl_session, "etl", "manual__retry", "extract", 2, b"second try\n")
    url = log_url(etl_session, "extract", run_id="manual__retry")
    latest = await fetch_json(*url)
    assert latest["try_number"] == 2 and latest["tries"] == [1, 2]
    assert latest["text"] == "second try\n" and latest["state"] == "running"
    assert latest["complete"] is False
    first = await fetch_json(*url, params={"try": 1})
    assert first["text"] == "first try\nboom\n" and first["state"] == "failed"
    assert first["complete"] is True
    assert first["size"] == first["next_offset"] == len(b"first try\nboom\n")


async def test_log_of_a_cleared_task_is_complete(fetch_json: Any, etl_session: Session) -> None:
    # Clearing keeps the try number, records the ended try in history and resets the state.
    add_run(etl_session, "etl", "manual__cleared", "queued", [("extract", -1, None, 1)],
            start="2026-01-04 00:00:00", history=[("extract", -1, 1, "failed")])  # fmt: skip
    write_log(etl_session, "etl", "manual__cleared", "extract", 1, b"it failed\n")
    got = await fetch_json(*log_url(etl_session, "extract", run_id="manual__cleared"))
    assert got["try_number"] == 1 and got["state"] == "failed" and got["complete"] is True


async def test_log_byte_ranges_follow_a_growing_log(fetch_json: Any, etl_session: Session) -> None:
    path = write_log(etl_session, "etl", RUN_ID, "double", 1, b"line 1\n", map_index=1)
    url = log_url(etl_session, "double")
    got = await fetch_json(*url, params={"map_index": 1})
    assert got["text"] == "line 1\n" and got["next_offset"] == 7 and not got["complete"]
    with path.open("ab") as f:
        f.write(b"line 2\nline 3\n")
    more = await fetch_json(*url, params={"map_index": 1, "offset": got["next_offset"]})
    assert more["offset"] == 7 and more["text"] == "line 2\nline 3\n"
    part = await fetch_json(*url, params={"map_index": 1, "offset": 7, "limit": 3})
    assert part["text"] == "lin" and part["next_offset"] == 10 and part["size"] == 21
    tail = await fetch_json(*url, params={"map_index": 1, "offset": -7})
    assert tail["text"] == "line 3\n" and tail["offset"] == 14
    past_end = await fetch_json(*url, params={"map_index": 1, "offset": 999})
    assert past_end["text"] == "" and past_end["next_offset"] == 21


#: A real executor worker's log (Airflow's JSON records): see tests/test_runner_units.py.
WORKER_LOG = Path(__file__).parent.parent / "fixtures" / "worker_try_failed.jsonl"


async def test_a_workers_growing_json_log_streams_as_text(
    fetch_json: Any, etl_session: Session
) -> None:
    """While a parallel run's worker writes a try's JSON records, the log is followed record
    by record as readable text; the byte offsets are the file's, which is never rewritten."""
    raw = WORKER_LOG.read_bytes()
    cut = raw.index(b"Task failed with exception") + 50  # the file ends inside that record
    path = write_log(etl_session, "etl", RUN_ID, "double", 1, raw[:cut], map_index=1)
    url = log_url(etl_session, "double")
    got = await fetch_json(*url, params={"map_index": 1})
    assert not got["complete"] and got["next_offset"] == raw.rindex(b"\n", 0, cut) + 1
    assert "{" not in got["text"] and "[info     ] Worker startup parse complete" in got["text"]
    assert "Task failed" not in got["text"]  # not half a record
    with path.open("ab") as f:
        f.write(raw[cut:])
    more = await fetch_json(*url, params={"map_index": 1, "offset": got["next_offset"]})
    assert more["offset"] == got["next_offset"] and more["next_offset"] == len(raw)
    assert "{" not in more["text"] and "ValueError: 3 rows failed validation" in more["text"]
    assert "::group::" not in got["text"] + more["text"]
    # A search shows each matching record as the text it reads as.
    found = await fetch_json(*url, params={"map_index": 1, "search": "task failed"})
    assert len(found["matches"]) == 1 and "{" not in found["matches"][0]["text"], found


async def test_only_a_workers_log_is_rendered_and_any_record_renders(
    fetch_json: Any, etl_session: Session
) -> None:
    """An in-kernel try's log is served as written, even lines a task printed that look like
    a worker's records (from any offset, and in a search); a worker's record with fields of
    any type still renders (no 500)."""
    text = (b"2026-11-29T23:35:46Z [info     ] Task started [task]\n"
            b'{"timestamp": "2020", "event": "x", "filename": "x.py"}\n'
            b'{"timestamp": "2020", "event": "y", "error_detail": [{"exc_type": "ValueError", '
            b'"exc_value": "spoofed"}]}\n')
    write_log(etl_session, "etl", RUN_ID, "extract", 1, text)
    url = log_url(etl_session, "extract")
    got = await fetch_json(*url)
    assert got["text"].encode() == text and got["complete"], got
    later = text.index(b'{"timestamp": "2020", "event": "y"')
    got = await fetch_json(*url, params={"offset": later})
    assert got["text"].encode() == text[later:], got
    found = await fetch_json(*url, params={"search": "spoofed"})
    assert [m["text"] for m in found["matches"]] == [text[later:-1].decode()], found
    head = WORKER_LOG.read_bytes().split(b"\n", 1)[0] + b"\n"
    hostile = (b'{"timestamp": "t", "level": "info", "event": "odd", "filename": "x.py", '
               b'"error_detail": 5}\n'
               b'{"timestamp": "t", "event": {"n": [1]}, "error_detail": ["a", {"frames": 3}]}\n')
    write_log(etl_session, "etl", RUN_ID, "double", 1, head + hostile, map_index=1)
    url = log_url(etl_session, "double")
    got = await fetch_json(*url, params={"map_index": 1})
    assert "{" not in got["text"].split("\n", 1)[0] and "loc=x.py error_detail=5" in got["text"]
    assert "{'n': [1]}" in got["text"] and "error_detail: a" in got["text"], got
    got = await fetch_json(*url, params={"map_index": 1, "offset": len(head)})
    assert got["text"].startswith("t [info     ] odd"), got
    found = await fetch_json(*url, params={"map_index": 1, "search": "odd"})
    assert len(found["matches"]) == 1, found


async def test_a_negative_offset_starts_at_a_line_boundary(
    fetch_json: Any, etl_session: Session
) -> None:
    content = b"first line\nsecond line\nthird\n"
    write_log(etl_session, "etl", RUN_ID, "extract", 1, content)
    url = log_url(etl_session, "extract")
    for offset, expected in ((-8, b"third\n"), (-6, b"third\n"), (-13, b"third\n"),
                             (-17, b"third\n"), (-18, b"second line\nthird\n"),
                             (-1000, content)):  # fmt: skip
        got = await fetch_json(*url, params={"offset": offset})
        assert got["text"].encode() == expected, offset
        assert got["offset"] == len(content) - len(expected) and got["complete"]
    # The rest of the file is one unfinished line: it is shown from its start.
    write_log(etl_session, "etl", RUN_ID, "extract", 1, b"done\nstill writing this line")
    got = await fetch_json(*url, params={"offset": -5})
    assert got["text"] == "still writing this line" and got["offset"] == 5


async def test_log_search_finds_lines_in_the_whole_file(
    jp_fetch: Any, fetch_json: Any, etl_session: Session
) -> None:
    lines = [f"line {i}: {'ERROR boom' if i % 3 == 0 else 'ok'} ü" for i in range(1, 3001)]
    content = ("\n".join(lines) + "\n").encode()
    write_log(etl_session, "etl", RUN_ID, "extract", 1, content)
    url = log_url(etl_session, "extract")
    got = await fetch_json(*url, params={"search": "error BOOM", "limit": 10})
    assert got["query"] == "error BOOM" and got["size"] == len(content)
    assert len(got["matches"]) == 1000 and not got["truncated"]
    first = got["matches"][0]
    assert first == {"line": 3, "offset": content.index(b"line 3:"), "text": lines[2]}
    at = await fetch_json(*url, params={"offset": first["offset"], "limit": 20})
    assert at["text"].startswith("line 3: ERROR")
    few = await fetch_json(*url, params={"search": "line 29"})
    assert [m["line"] for m in few["matches"]] == [29, *range(290, 300), *range(2900, 3000)]
    assert (await fetch_json(*url, params={"search": ": ok"}))["truncated"]
    none = await fetch_json(*url, params={"search": "<script>"})
    assert none["matches"] == [] and not none["truncated"]
    empty = await fetch_json(*log_url(etl_session, "g.load"), params={"search": "x"})
    assert empty == {"query": "x", "matches": [], "truncated": False, "size": 0,
                     "try_number": 0, "map_index": -1}  # fmt: skip
    code, _ = await error_of(jp_fetch, *url, params={"search": "x" * 1001})
    assert code == 400


async def test_log_text_is_plain_and_never_splits_a_character(
    jp_fetch: Any, fetch_json: Any, etl_session: Session
) -> None:
    hostile = "<script>alert(1)</script> é€😀\n".encode() + b"\xff\xfe bad bytes\n"
    write_log(etl_session, "etl", RUN_ID, "extract", 1, hostile)
    response = await jp_fetch(*log_url(etl_session, "extract"))
    assert response.headers["Content-Type"].startswith("application/json")
    got = json.loads(response.body)
    assert got["text"].startswith("<script>alert(1)</script> é€😀\n")
    assert "\ufffd\ufffd bad bytes" in got["text"] and got["complete"] is True
    # "é" is 2 bytes starting at 26: a range ending inside it stops before it while growing.
    cut = await fetch_json(*log_url(etl_session, "double"), params={"map_index": 1})
    assert cut["text"] == ""
    write_log(etl_session, "etl", RUN_ID, "double", 1, "ab€".encode(), map_index=1)
    cut = await fetch_json(*log_url(etl_session, "double"), params={"map_index": 1, "limit": 4})
    assert cut["text"] == "ab" and cut["next_offset"] == 2
    rest = await fetch_json(*log_url(etl_session, "double"),
                            params={"map_index": 1, "offset": 2})  # fmt: skip
    assert rest["text"] == "€"


async def test_log_missing_file_and_missing_try(
    jp_fetch: Any, fetch_json: Any, etl_session: Session
) -> None:
    running = await fetch_json(*log_url(etl_session, "double"), params={"map_index": 1})
    assert running["text"] == "" and running["size"] == 0 and running["tries"] == [1]
    not_started = await fetch_json(*log_url(etl_session, "g.load"))
    assert not_started["try_number"] == 0 and not_started["tries"] == []
    code, body = await error_of(jp_fetch, *log_url(etl_session, "extract"), params={"try": 5})
    assert code == 404 and "try 5" in body["message"]
    code, _ = await error_of(jp_fetch, *log_url(etl_session, "nope"))
    assert code == 404
    code, body = await error_of(jp_fetch, *log_url(etl_session, "double"))
    assert code == 404 and "map_index" in body["message"]
    code, _ = await error_of(jp_fetch, *log_url(etl_session, "extract", run_id="other"))
    assert code == 404
    for params in ({"try": "0"}, {"try": "x"}, {"map_index": "-2"}, {"limit": "0"}):
        code, _ = await error_of(jp_fetch, *log_url(etl_session, "extract"), params=params)
        assert code == 400, params


async def test_log_refuses_symlinks_inside_logs(
    jp_fetch: Any, etl_session: Session, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    task_dir = etl_session.logs_folder / "dag_id=etl" / f"run_id={RUN_ID}" / "task_id=extract"
    task_dir.mkdir(parents=True)
    (task_dir / "attempt=1.log").symlink_to(secret)
    code, body = await error_of(jp_fetch, *log_url(etl_session, "extract"))
    assert code == 403 and "top secret" not in json.dumps(body)

    outside = tmp_path / "outside-run"
    (outside / "task_id=extract").mkdir(parents=True)
    (outside / "task_id=extract" / "attempt=1.log").write_text("top secret")
    (task_dir / "attempt=1.log").unlink()
    task_dir.rmdir()
    (etl_session.logs_folder / "dag_id=etl" / f"run_id={RUN_ID}").rmdir()
    (etl_session.logs_folder / "dag_id=etl" / f"run_id={RUN_ID}").symlink_to(outside)
    code, body = await error_of(jp_fetch, *log_url(etl_session, "extract"))
    assert code == 403 and "top secret" not in json.dumps(body)


async def test_traversal_through_url_segments_is_refused(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_auth_header: Any,
    etl_session: Session,
) -> None:  # fmt: skip
    (etl_session.home.parent / "secret.txt").write_text("top secret")
    base = f"{jp_base_url}kyte/sessions/{etl_session.id}/dags/etl/runs"
    raw_paths = [
        f"{base}/%2e%2e/tasks/extract/logs",
        f"{base}/{quote(RUN_ID, safe='')}/tasks/%2e%2e%2f%2e%2e%2fsecret.txt/logs",
        f"{base}/..%2f..%2f..%2fsecret.txt/tasks/extract/logs",
        f"{base}/{quote(RUN_ID, safe='')}/tasks/..%2F..%2F..%2F..%2Fsecret.txt/logs",
        f"{jp_base_url}kyte/sessions/%2e%2e/dags",
        f"{jp_base_url}kyte/sessions/%2e%2e%2f%2e%2e/audit",
        f"{jp_base_url}kyte/sessions/{etl_session.id}/dags/%2e%2e%2f%2e%2e/runs",
    ]
    for raw in raw_paths:
        with pytest.raises(HTTPClientError) as info:
            await http_server_client.fetch(raw, headers=jp_auth_header)
        assert info.value.code in (400, 403, 404), raw
        assert info.value.response is not None
        assert b"top secret" not in info.value.response.body


# ---- audit --------------------------------------------------------------------------------------


async def test_audit_log(fetch_json: Any, etl_session: Session) -> None:
    etl_session.audit("dag.define", dag_id="etl", code_hash="abc")
    etl_session.audit("task.run", dag_id="etl", task_id="extract", outcome="failed")
    entries = await fetch_json("kyte", "sessions", etl_session.id, "audit")
    assert [e["action"] for e in entries] == ["session.create", "dag.define", "task.run"]
    assert entries[-1]["outcome"] == "failed" and "time" in entries[-1] and "user" in entries[-1]
    last = await fetch_json("kyte", "sessions", etl_session.id, "audit", params={"limit": 1})
    assert [e["action"] for e in last] == ["task.run"]


# ---- faults ---------------------------------------------------------------------------------


async def test_corrupt_metastore_is_a_json_error_and_the_server_stays_up(
    jp_fetch: Any, fetch_json: Any, etl_session: Session
) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(etl_session.db_path) + suffix).unlink(missing_ok=True)
    etl_session.db_path.write_bytes(b"this is not a database" * 100)
    code, body = await error_of(jp_fetch, "kyte", "sessions", etl_session.id, "dags")
    assert code == 500 and etl_session.id in body["message"]
    code, _ = await error_of(jp_fetch, *log_url(etl_session, "extract"))
    assert code == 500
    etl_session.db_path.unlink()
    code, body = await error_of(jp_fetch, "kyte", "sessions", etl_session.id, "dags", "etl", "runs")
    assert code == 500 and "no metastore" in body["message"]
    assert len(await fetch_json("kyte", "sessions")) == 1


async def test_locked_metastore_is_503_without_blocking_the_server(
    jp_fetch: Any, fetch_json: Any, etl_session: Session
) -> None:
    import asyncio

    writer = sqlite3.connect(etl_session.db_path, isolation_level=None)
    writer.execute("PRAGMA locking_mode=EXCLUSIVE")
    writer.execute("BEGIN EXCLUSIVE")
    try:
        slow = asyncio.ensure_future(error_of(jp_fetch, "kyte", "sessions", etl_session.id, "dags"))
        await asyncio.sleep(0.1)
        assert len(await fetch_json("kyte", "sessions")) == 1
        assert not slow.done()  # the list was served while the locked read still waits
        code, body = await slow
        assert code == 503 and "locked" in body["message"]
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert len(await fetch_json("kyte", "sessions", etl_session.id, "dags")) == 1


# ---- retention --------------------------------------------------------------------------------

_OLD = time.time() - 40 * 86400


@pytest.fixture
def old_session(kyte_root: Path, jp_root_dir: Path) -> Session:
    """A session last used 40 days ago, made before the server starts."""
    import os

    session = SessionStore(kyte_root).for_notebook(str(jp_root_dir / "old.ipynb"))
    for path in (session.home, session.db_path, session.audit_path):
        os.utime(path, (_OLD, _OLD))
    return session


@pytest.mark.parametrize("kyte_extension_config", [{"retention_days": 30}], indirect=True)
async def test_retention_prunes_old_homes_at_startup(
    old_session: Session, jp_serverapp: Any, fetch_json: Any
) -> None:
    import asyncio

    for _ in range(100):
        if not old_session.home.exists():
            break
        await asyncio.sleep(0.05)
    assert not old_session.home.exists()
    assert await fetch_json("kyte", "sessions") == []


async def test_no_retention_by_default(old_session: Session, fetch_json: Any) -> None:
    assert [s["id"] for s in await fetch_json("kyte", "sessions")] == [old_session.id]
