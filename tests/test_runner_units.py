"""The runner's pure parts, without a kernel: summary JSON, outcome, clean log lines, folding.

The behaviour in kernels (against Airflow as the oracle) is in ``test_runner_cases.py``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from kyte_jupyter.contracts.run import RUN_SUMMARY_MIME
from kyte_jupyter.contracts.run import RunSummary as Contract
from kyte_jupyter.runner.logs import LineFilter, error_line, read_log_text
from kyte_jupyter.runner.progress import ProgressLine, progress_text
from kyte_jupyter.runner.summary import RunSummary, outcome
from kyte_jupyter.state.logs import render_log_text


def test_summary_json_has_the_agreed_shape_and_validates() -> None:
    r = RunSummary(
        "etl", "manual__1", "failed", "running",
        task_states={"extract": "success", "load[0]": "failed", "report": "none"},
        tries={"extract": 1, "load[0]": 2}, durations={"extract": 0.5, "load[0]": 0.25},
        duration=1.5, error_lines={"load[0]": "RuntimeError: login failed ***"},
    )
    data = r.to_dict()
    Contract.model_validate(data)
    assert RUN_SUMMARY_MIME == "application/vnd.kyte.run-summary+json"
    assert set(data) == {"version", "magic", "dag_id", "run_id", "state", "run_state",
                         "duration_s", "task_instances", "failed"}
    assert data["failed"] == ["load[0]"] and data["magic"] == "run_task"
    load = data["task_instances"][1]
    assert load == {"key": "load[0]", "task_id": "load", "map_index": 0, "state": "failed",
                    "try_number": 2, "duration_s": 0.25, "forced": None,
                    "error": "RuntimeError: login failed ***"}
    assert data["task_instances"][2]["state"] is None  # "none" is no state: null
    assert json.loads(r.to_json()) == data
    assert "no status" in r.text() and "none" not in r.text()


def test_outcome_is_what_was_asked() -> None:
    assert outcome(["success", "success"]) == "success"
    assert outcome(["success", "skipped"]) == "success"
    assert outcome(["skipped"]) == "skipped"
    assert outcome(["success", "upstream_failed"]) == "failed"
    assert outcome(["success", "deferred"]) == "deferred"
    assert outcome([]) == "none"


def test_cell_lines_are_clean_one_per_record() -> None:
    raw = (
        "2026-11-29T19:52:42.156076Z [info     ] ::group::Pre Execute  [task] loc=a.py:1\n"
        "2026-11-29T19:52:42.163770Z [info     ] Done. Returned value was: c-1  "
        "[airflow.task.operators.x.PythonOperator] loc=python.py:233\n"
        "2026-11-29T19:52:42.164476Z [info     ] Pushing xcom   [task] loc=t.py:1 "
        "ti=RuntimeTaskInstance(id=UUID('1'),\n    task=<Task(x)>,\n    max_tries=0)\n"
        "2026-11-29T19:52:42.371366Z [error    ] Task failed with exception [task] loc=t.py:9\n"
        "Traceback (most recent call last):\n  File \"x.py\", line 3, in f\n"
        "    raise RuntimeError('boom')\nRuntimeError: boom\n"
        "a line the task printed\n"
        "2026-11-29T19:52:42.615865Z [warning  ] Odd [task] exit_code=3 loc=x.py:1\n"
    )
    f = LineFilter()
    shown = "".join(f.feed(piece) for piece in (raw[:50], raw[50:333], raw[333:])) + f.flush()
    assert shown.splitlines() == [
        "[2026-11-29 19:52:42] INFO - Done. Returned value was: c-1",
        "[2026-11-29 19:52:42] INFO - Pushing xcom",
        "[2026-11-29 19:52:42] ERROR - Task failed with exception",
        "a line the task printed",
        "[2026-11-29 19:52:42] WARNING - Odd exit_code=3",
    ]


#: A real worker log: task ``validate`` of tests/dags/kyte_trigger_rules.py (it raises) as
#: Airflow's ``supervise()`` wrote it in a ``%run_dag kyte_trigger_rules --parallelism 4``.
WORKER_LOG = Path(__file__).parent / "fixtures" / "worker_try_failed.jsonl"


def test_worker_json_log_reads_as_an_in_kernel_try_log(tmp_path: Path) -> None:
    """Rendered, a worker's JSON log has no ``::group::`` / ``::endgroup::`` records (an
    in-kernel try's log file leaves them out too) and reads line for line as an in-kernel
    try's: the console renderer's layout, the traceback under its record. The file itself is
    left as Airflow wrote it."""
    path = tmp_path / "attempt=1.log"
    shutil.copy(WORKER_LOG, path)
    assert "::group::Pre Execute" in path.read_text()  # the fixture has the markers
    text = read_log_text(path)
    assert path.read_bytes() == WORKER_LOG.read_bytes()
    assert "group::" not in text, text
    records = [line for line in text.splitlines()
               if not line.startswith(("Traceback", "  File", "ValueError"))]
    console = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z \[(info|error) +\] .+ \[task\] loc=")
    assert len(records) == 2 and all(console.match(line) for line in records), records
    assert LineFilter().feed(text).splitlines() == [
        "[2026-11-29 23:35:47] INFO - Worker startup parse complete bundle_name=dags-folder "
        "bundle_version=None dag_file=kyte_parallel/kyte_trigger_rules.py "
        "bundle_prepare_ms=2 dag_file_parse_ms=161",
        "[2026-11-29 23:35:47] ERROR - Task failed with exception",
    ]
    assert 'File "' in text and "in validate" in text
    assert error_line(path) == "ValueError: 3 rows failed validation"
    # A line that is not a record (a partial one, text a task wrote) stays as it is.
    assert render_log_text('plain\n{"timestamp": "x"\n') == 'plain\n{"timestamp": "x"\n'


#: Records a task can make its worker write (``structlog.get_logger("airflow.task").info("x",
#: error_detail=5)`` and the like): no field's type can be trusted.
HOSTILE_RECORDS = [
    {"timestamp": "t1", "level": "info", "event": "int detail", "error_detail": 5},
    {"timestamp": "t2", "level": "info", "event": "str detail", "error_detail": "boom"},
    {"timestamp": "t3", "level": "info", "event": "list detail", "error_detail": [1, "two", None]},
    {"timestamp": "t4", "level": "error", "event": "frames not a list",
     "error_detail": [{"exc_type": "ValueError", "exc_value": "real one", "frames": "nope"}]},
    {"timestamp": "t5", "level": "error", "event": "odd frames",
     "error_detail": {"exc_type": {"a": 1}, "frames": [3, {"filename": ["f"], "lineno": {}}]}},
    {"timestamp": "t6", "level": "info", "event": "no lineno", "filename": "x.py"},
    {"timestamp": 7, "level": [1], "event": {"nested": [1, {"b": None}]}, "logger": {"x": 1},
     "lineno": "l", "extra": {"deep": [[{"k": "v"}]]}},
]


def test_hostile_worker_records_render_without_raising(tmp_path: Path) -> None:
    """A worker's log with records of any field types (and one nested past what Python
    parses) reads as text, and its error line is found without raising."""
    head = WORKER_LOG.read_text().splitlines(keepends=True)[1]  # a real record first
    lines = [json.dumps(rec) + "\n" for rec in HOSTILE_RECORDS]
    deep = '{"timestamp": "t8", "event": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    path = tmp_path / "attempt=1.log"
    path.write_text(head + "".join(lines) + deep)
    text = read_log_text(path)
    for rec in HOSTILE_RECORDS:
        assert str(rec["event"]) in text, rec
    assert "error_detail=5" in text and "error_detail=boom" in text
    assert re.search(r"^t6 \[info +\] no lineno +\[\] loc=x\.py$", text, re.MULTILINE), text
    assert deep in text  # the record Python cannot parse stays as it is
    assert error_line(path) == "ValueError: real one"
    # The case that crashed `%run_dag --parallelism`'s summary: no failure, none reported.
    path.write_text(head + lines[0])
    assert "int detail" in read_log_text(path) and error_line(path) is None


def test_a_text_log_with_record_looking_lines_reads_unchanged(tmp_path: Path) -> None:
    """An in-kernel try's log is text whatever its task printed: JSON lines that look like a
    worker's records come back byte for byte, and a printed fake failure record is not
    taken for the try's error."""
    content = (
        b"2026-11-29T23:35:46.974444Z [info     ] Task started [task] loc=task_runner.py:1\r\n"
        b"RuntimeError: the real failure\n"
        b'{"timestamp": "2020", "event": "x", "filename": "x.py"}\n'
        b'{"timestamp": "2020", "event": "y", "error_detail": 5}\n'
        b'{"timestamp": "2020", "event": "z", "error_detail": [{"exc_type": "ValueError", '
        b'"exc_value": "spoofed", "frames": []}]}\n'
    )
    path = tmp_path / "attempt=1.log"
    path.write_bytes(content)
    assert read_log_text(path).encode() == content
    assert error_line(path) == "RuntimeError: the real failure"


def test_progress_names_running_tasks_no_status_and_singular() -> None:
    assert progress_text("d", {"a": "none"}) == "d running (1 task): 1 no status"
    assert progress_text("d", {"a": "running", "b": "none"}) == (
        "d running (2 tasks) — running: a: 1 no status, 1 running")
    assert progress_text("d", {"a": "deferred"}) == (
        "d running (1 task) — waits for its trigger: a: 1 deferred")
    assert progress_text("d", {"a": "success"}, done=True) == "d finished (1 task): 1 success"
    bundle = ProgressLine("d", {"a": "running", "b": "none"})._repr_mimebundle_()
    assert "now: <code>a</code>" in bundle["text/html"] and "none" not in bundle["text/html"]


@pytest.mark.parametrize(("seen", "now", "asks"), [
    (None, {"a": "none"}, True),  # the first round
    ({"a": "none"}, {"a": "none"}, False),  # nothing changed
    ({"a": "none"}, {"a": "scheduled"}, False),  # scheduling, queueing, starting ready
    ({"a": "scheduled"}, {"a": "queued"}, False),  # nothing: no trigger rule reads them
    ({"a": "queued"}, {"a": "running"}, False),
    ({"a": "running"}, {"a": "success"}, True),  # a finished upstream may
    ({"a": "running"}, {"a": "failed"}, True),
    ({"a": "running"}, {"a": "up_for_retry"}, True),  # its retry waits to be ready
    ({"a": "none"}, {"a": "upstream_failed"}, True),  # propagates downstream
    ({"a": "success"}, {"a": "success", "b[0]": "none"}, True),  # mapping expanded
    ({"a": "success", "b": "none"}, {"a": "success"}, True),  # removed
])
def test_dependency_rules_are_asked_again_only_after_a_change_that_can_ready_a_task(
        seen: dict[str, str] | None, now: dict[str, str], asks: bool) -> None:
    from kyte_jupyter.runner.parallel import _may_ready_more

    assert _may_ready_more(seen, now) is asks
