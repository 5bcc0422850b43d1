"""What-if runs (SPEC §7): parsing forced outcomes, %run_dag/%run_task options, %%scenario."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from kyte_jupyter.whatif import WhatIfError, parse_options, parse_scenario
from kyte_jupyter.whatif.testgen import function_name, render


@pytest.fixture(scope="module")
def etl() -> Any:
    """A DAG with a branch, a task group and a mapped task, built in memory."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, TaskGroup, task

    with DAG("etl", schedule=None) as dag:
        @task
        def extract() -> list[int]:
            return [1, 2, 3]

        @task
        def square(x: int) -> int:
            return x * x

        @task.branch
        def choose() -> str:
            return "report"

        rows = extract()
        sq = square.expand(x=rows)
        @task
        def load() -> None:
            pass

        with TaskGroup("load_group"):
            a, b = load.override(task_id="load_a")(), load.override(task_id="load_b")()
            a >> b
        report, quiet = EmptyOperator(task_id="report"), EmptyOperator(task_id="quiet")
        sq >> a
        rows >> choose() >> [report, quiet]
    return dag


def test_options_expand_ids_groups_and_instances(etl: Any) -> None:
    w = parse_options(etl, fail=["extract,square[1]"], skip=["load_group"],
                      branch=["choose=quiet"], xcom=['"square[2]={\"n\": 1}"'],
                      succeed="quiet")
    got = [(f.kind, f.key, f.value) for f in w.outcomes]
    assert got == [
        ("fail", "extract", None), ("fail", "square[1]", None),
        ("skip", "load_group.load_a", None), ("skip", "load_group.load_b", None),
        ("succeed", "quiet", None), ("branch", "choose", ("quiet",)),
        ("xcom", "square[2]", {"n": 1}),
    ]
    assert w.for_instance("square", 1).kind == "fail"  # type: ignore[union-attr]
    assert w.for_instance("square", 0) is None
    assert "branch choose -> quiet" in w.describe()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fail": ["lod"]}, "--fail: DAG 'etl' has no task or task group 'lod'"),
    ({"fail": ["extract[2]"]}, "task 'extract' of DAG 'etl' is not mapped"),
    ({"branch": ["choose=load_group.load_b"]},
     "'load_group.load_b' is not directly downstream of branch task 'choose'"),
    ({"branch": ["extract=square"]}, "task 'extract' is not a branch task"),
    ({"branch": ["choose"]}, "write BRANCH_TASK=TARGET"),
    ({"fail": ["extract"], "succeed": ["extract"]}, "--fail and --succeed both force extract"),
    ({"fail": ["report"]}, "--fail: 'report' is an EmptyOperator, which Airflow marks success"),
    ({"skip": ["load_group"], "fail": ["load_group.load_a"]},
     "--fail and --skip both force load_group.load_a"),
    ({"xcom": ["extract=[1,"]}, "--xcom extract=…: malformed JSON"),
    ({"fail": [""]}, "--fail: name at least one task"),
    ({"skip": [","]}, "--skip: name at least one task"),
])
def test_bad_options_are_one_line_errors(etl: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WhatIfError) as e:
        parse_options(etl, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_scenario_body(etl: Any) -> None:
    sc = parse_scenario("quiet day", etl, textwrap.dedent("""\
        fail: [extract]
        branch: {choose: [quiet]}
        xcom: {load_group.load_a: [1, 2]}
        expect:
          square: upstream_failed
          load_group: upstream_failed
          quiet: skipped
        run: failed
    """))
    assert [f.key for f in sc.whatif.outcomes] == ["extract", "choose", "load_group.load_a"]
    assert sc.expect == {"square": "upstream_failed", "load_group.load_a": "upstream_failed",
                         "load_group.load_b": "upstream_failed", "quiet": "skipped"}
    assert sc.run == "failed"


@pytest.mark.parametrize(("body", "message"), [
    ("fail: [extract\nexpect: {}", "malformed YAML at line"),
    ("- fail", "the body must be YAML keys"),
    ("fial: [extract]\nexpect: {extract: failed}", "unknown key 'fial'"),
    ("fail: [nope]\nexpect: {extract: failed}", "fail: DAG 'etl' has no task or task group"),
    ("expect: {extract: faild}", "'faild' is not a task state (did you mean 'failed'?)"),
    ("fail: [extract]", "nothing to check"),
    ("branch: {choose: [extract]}\nrun: failed", "not directly downstream"),
])
def test_bad_scenarios(etl: Any, body: str, message: str) -> None:
    with pytest.raises(WhatIfError) as e:
        parse_scenario("s", etl, body)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_generated_test_is_plain_pytest_and_airflow(etl: Any) -> None:
    sc = parse_scenario("Load: fails!", etl, "fail: extract\nexpect: {report: upstream_failed}")
    text = render("etl", "etl.py", [sc, sc], source="etl.ipynb")
    import ast

    modules = {n.module or "" for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Import)
                for a in n.names}
    assert {m.split(".")[0] for m in modules} <= {
        "__future__", "os", "re", "subprocess", "sys", "tempfile", "pathlib", "airflow"}
    # ... and no pytest: a deployment parsing its DAG folder loads the file without it.
    assert "def test_load_fails():" in text and "def test_load_fails_2():" in text
    assert function_name("2 fast") == "s_2_fast"


def test_generated_check_compares_mapped_instances_per_map_index(etl: Any) -> None:
    """The generated test checks a whole mapped task instance by instance, by map index: the
    counts and the order survive into the failure (a set of states lost both)."""
    sc = parse_scenario("mapped", etl, "fail: ['square[1]']\nexpect: {square: success}")
    ns: dict[str, Any] = {"__file__": "test_etl.py", "__name__": "generated"}
    exec(compile(render("etl", "etl.py", [sc]), "test_etl.py", "exec"), ns)
    check = ns["_check"]
    check({"square": "success"}, None, ("success", {"square[1]": "success",
                                                    "square[0]": "success"}))
    states = {"square[10]": "success", "square[1]": "failed", "square[0]": "success",
              "square[2]": "success", "extract": "success"}
    with pytest.raises(AssertionError) as e:
        check({"square": "success", "extract": "success"}, "success", ("failed", states))
    assert ("square: expected success, got [(0, 'success'), (1, 'failed'), (2, 'success'), "
            "(10, 'success')]; (run): expected success, got failed") in str(e.value)
    with pytest.raises(AssertionError, match="square: expected success, got none"):
        check({"square": "success"}, None, ("success", {"extract": "success"}))


def test_export_tests_find_dags_the_file_does_not_name(tmp_path: Any) -> None:
    """``with DAG(...):`` without ``as`` and a called ``@dag`` function get their tests too."""
    import nbformat

    from kyte_jupyter.whatif.export import write_tests

    dag_file = tmp_path / "pair.py"
    dag_file.write_text(textwrap.dedent("""
        from airflow.providers.standard.operators.empty import EmptyOperator
        from airflow.sdk import DAG, dag

        with DAG("unnamed", schedule=None):
            EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")

        @dag(schedule=None)
        def decorated():
            EmptyOperator(task_id="c")

        decorated()
    """))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        f"%%scenario '{t} forced' {d}\nsucceed: {t}\nrun: success\n")
                for d, t in (("unnamed", "a"), ("decorated", "c"))]
    notebook = tmp_path / "pair.ipynb"
    nbformat.write(nb, notebook)
    written = write_tests(notebook, [dag_file])
    assert sorted(p.name for p in written) == ["test_decorated.py", "test_unnamed.py"]


# ---- in a real kernel -----------------------------------------------------------------------

DAG_CELL = '''%%dag
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, task

with DAG("shop", schedule=None) as dag:
    @task
    def extract():
        return [1, 2, 3]

    @task(retries=1, retry_delay=0)
    def load(rows):
        print("REAL LOAD", len(rows))
        return len(rows)

    @task.branch
    def choose(n):
        return "report"

    @task(trigger_rule="all_done")
    def cleanup():
        return "clean"

    @task
    def report():
        return "reported"

    quiet = EmptyOperator(task_id="quiet")
    n = load(extract())
    n >> cleanup()
    choose(n) >> [report(), quiet]
'''


def _states(r: Any) -> dict[str, Any]:
    out = r.stdout.split("STATES", 1)[1].strip().splitlines()[0]
    return json.loads(out)  # type: ignore[no-any-return]


SHOW = ("import json\nr = _kyte_last_run\nprint('STATES' + json.dumps("
        "{'run': r.state, 'states': r.task_states, 'forced': r.forced, 'tries': r.tries}))")


def test_run_dag_forced_outcomes_in_a_kernel(make_kernel: Any, sessions_root: Any) -> None:
    k = make_kernel("shop.ipynb")
    k.ok(DAG_CELL)
    r = k.run("%run_dag shop --fail load")
    assert "What-if run of shop: fail load" in r.stdout
    s = _states(k.ok(SHOW))
    assert s["run"] == "failed"
    assert s["states"] == {"extract": "success", "load": "failed", "choose": "upstream_failed",
                           "cleanup": "success", "report": "upstream_failed",
                           "quiet": "upstream_failed"}
    assert s["forced"] == {"load": "fail"} and s["tries"]["load"] == 1  # no retry

    k.ok("%run_dag shop --fail-once load --branch choose=quiet")
    s = _states(k.ok(SHOW))
    assert s["run"] == "success" and s["tries"]["load"] == 2
    assert s["states"]["report"] == "skipped" and s["states"]["quiet"] == "success"
    assert s["forced"] == {"load": "fail-once", "choose": "branch -> quiet"}
    log = k.ok("%task_log shop load --try 2").stdout
    assert "REAL LOAD 3" in log  # the retry runs the real code
    log1 = k.ok("%task_log shop load --try 1").stdout
    assert "Kyte what-if: this try's outcome is forced: fail-once" in log1
    assert "REAL LOAD" not in log1

    k.ok("%run_dag shop --xcom 'extract=[7, 8]' --succeed cleanup --skip report")
    s = _states(k.ok(SHOW))
    assert s["states"]["report"] == "skipped" and s["states"]["cleanup"] == "success"
    assert "cleanup" not in s["tries"] or s["forced"]["cleanup"] == "succeed"
    k.ok("_rows = %xcom shop extract")
    assert k.value("_rows") == [7, 8]
    assert "REAL LOAD 2" in k.ok("%task_log shop load").stdout

    audit = [json.loads(x) for x in
             next(sessions_root.glob("*/kyte/audit.jsonl"), sessions_root / "none").read_text()
             .splitlines()] if list(sessions_root.glob("*/kyte/audit.jsonl")) else []
    assert any(e.get("forced") == "fail" and e.get("task_id") == "load" for e in audit), audit

    bad = k.fails("%run_dag shop --fail lod")
    assert "no task or task group 'lod' (did you mean 'load'?)" in bad.text
    bad = k.fails("%run_dag shop --branch choose=extract")
    assert "not directly downstream of branch task 'choose'" in bad.text


SCENARIO_OK = '''%%scenario "load fails" shop
fail: [load]
expect:
  cleanup: success
  report: upstream_failed
run: failed
'''

SCENARIO_BAD = '''%%scenario quiet shop
branch: {choose: quiet}
expect: {report: success}
'''


def test_scenario_cell(make_kernel: Any) -> None:
    k = make_kernel("shop.ipynb")
    k.ok(DAG_CELL)
    r = k.ok(SCENARIO_OK)
    assert "passed" in r.text
    assert k.value("(_kyte_last_scenario.passed, _kyte_last_scenario.mismatches)") == (True, [])
    r = k.fails(SCENARIO_BAD)
    assert "Scenario 'quiet' failed: report: expected success, got skipped" in r.text
    assert k.value("_kyte_last_scenario.mismatches") == [("report", "success", "skipped")]
    r = k.fails("%%scenario s shop\nfail: [load\n")
    assert "malformed YAML" in r.text
    assert "Examples" in k.ok("print(get_ipython().find_cell_magic('scenario').__doc__)").stdout


MAPPED_CELL = '''%%dag
from airflow.sdk import DAG, task

with DAG("mapped", schedule=None) as dag:
    @task
    def extract():
        return [1, 2, 3]

    @task
    def square(x):
        return x * x

    @task
    def total(xs):
        return sum(xs)

    @task
    def leak():
        return 1

    @task
    def lit(x):
        return x

    total(square.expand(x=extract()))
    leak()
    lit.expand(x=[1, 2])
'''

RUN_STATES = ("from kyte_jupyter import bridge\nfrom airflow.models.dagrun import DagRun\n"
              "with bridge.db_session() as _db:\n"
              "    _runs = sorted((d.id, str(d.state)) for d in _db.query(DagRun).all())")


def test_forcing_on_a_dag_with_mapped_tasks(make_kernel: Any) -> None:
    """--succeed/--fail/--skip next to a mapped task settle (``dag.test()`` agrees: the
    oracle's kyte_mapped_forcing DAG); bad forcing is refused and no run stays running."""
    k = make_kernel("mapped.ipynb")
    k.ok(MAPPED_CELL)
    # Once crashed in Airflow's _get_ready_tis ("'NoneType' object has no attribute 'deps'").
    k.ok("%run_dag mapped --succeed leak")
    s = _states(k.ok(SHOW))
    assert s["run"] == "success" and s["forced"] == {"leak": "succeed"}
    assert s["states"]["square[2]"] == "success" and s["states"]["total"] == "success"
    k.run("%run_dag mapped --fail 'square[1]' --skip leak --succeed 'lit[0]'")
    s = _states(k.ok(SHOW))
    assert s["run"] == "failed" and s["states"]["total"] == "upstream_failed"
    assert s["forced"] == {"square[1]": "fail", "leak": "skip", "lit[0]": "succeed"}
    assert s["states"]["lit[0]"] == "success" and s["states"]["leak"] == "skipped"
    # --succeed pushes no XCom, so square has nothing to map over: upstream_failed, as under
    # dag.test() (the oracle's "--succeed extract" case). The cell, the summary and its JSON
    # say why, and what to force instead; total's upstream_failed is the ordinary cascade.
    r = k.ok("%run_dag mapped --succeed extract")
    s = _states(k.ok(SHOW))
    assert s["states"]["square"] == "upstream_failed", s
    assert s["states"]["total"] == "upstream_failed", s
    hint = "'extract' was forced --succeed (marked success without running), so it pushed no XCom"
    assert f"square upstream_failed: {hint}" in r.stderr, r.text
    assert "force them instead: --xcom 'extract=[1, 2]'" in r.stderr, r.text
    assert "total upstream_failed" not in r.stderr, r.text
    errors = k.value("{i['key']: i['error'] for i in _kyte_last_run.to_dict()['task_instances']}")
    assert hint in errors["square"] and errors["total"] is None, errors
    r = k.fails("%run_task mapped extract --downstream --succeed extract -q")
    assert r.error["ename"] == "UsageError", r.text
    assert f"square: {hint}" in r.error["evalue"], r.text

    k.ok(RUN_STATES)
    before = k.value("_runs")
    bad = {  # refused before anything runs: no new run
        "%run_dag mapped --fail 'lit[2]'":
            "--fail lit[2]: 'lit' has 2 mapped instances (lit[0]..lit[1]), so there is no "
            "lit[2]; nothing was run.",
        "%run_task mapped extract --downstream --skip leak":
            "--skip leak: 'leak' is not part of what `%run_task mapped extract --downstream` "
            "runs (extract, square, total)",
        "%run_task mapped square --map-index 1 --fail 'square[0]'":
            "runs only square[1] (--map-index)",
    }
    for line, message in bad.items():
        r = k.fails(line)
        assert message in r.text, r.text
    k.ok(RUN_STATES)
    assert k.value("_runs") == before
    # Known only once extract ran: the run stops before square's instances start.
    r = k.fails("%run_task mapped extract --downstream --fail 'square[99]'")
    assert ("--fail square[99]: 'square' has 3 mapped instances (square[0]..square[2]), so "
            "there is no square[99]") in r.text
    k.ok(RUN_STATES)
    runs = k.value("_runs")
    assert all(state != "running" for _, state in runs), runs
    # A good forcing with --downstream still works after the refusals.
    r = k.fails("%run_task mapped extract --downstream --fail 'square[1]' -q")
    # The cell fails with one line naming the forced outcome, not a traceback of Kyte's code.
    assert r.error["ename"] == "UsageError", r.text
    assert "square[1] (forced: fail), total did not succeed" in r.error["evalue"], r.text
    assert "kyte_jupyter" not in r.traceback
    s = _states(k.ok(SHOW))
    assert s["states"] == {"extract": "success", "square[0]": "success",
                           "square[1]": "failed", "square[2]": "success",
                           "total": "upstream_failed"}
    assert s["forced"] == {"square[1]": "fail"}

    # A what-if run refused part-way (square[99] is known missing only once extract ran) is
    # kept, failed, but set aside: the next %run_task and %xcom stay in the current run.
    current = k.value("_kyte_last_run.run_id")
    r = k.fails("%run_dag mapped --fail 'square[99]'")
    assert "there is no square[99]" in r.text, r.text
    assert "is kept (failed) but set aside: `%run_task` and `%xcom` do not continue in it" in (
        r.text), r.text
    k.ok(RUN_STATES)
    runs = k.value("_runs")
    assert len(runs) == len(before) + 1 and runs[-1][1] == "failed", runs  # kept
    k.ok("_r = %run_task mapped leak -q")
    assert k.value("_r.run_id") == current
    assert k.value("%xcom mapped square --map-index 2") == 9  # from the current run
    assert f"--- mapped.extract run {current} try" in k.ok("%task_log mapped extract").stdout


DEADLINE_CELL = '''%%dag
from datetime import timedelta
from airflow.sdk import DAG, AsyncCallback, SyncCallback, task
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

def notify(msg, context=None):
    print("SYNC CALLBACK", msg, context["dag_run"]["dag_id"])

async def page(msg, context=None):
    print("ASYNC CALLBACK", msg)
    return "paged"

with DAG("late", schedule=None, deadline=[
    DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=timedelta(hours=1),
                  callback=SyncCallback(notify, kwargs={"msg": "too slow"})),
    DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(hours=2),
                  callback=AsyncCallback(page, kwargs={"msg": "much too slow"})),
]) as dag:
    @task
    def work():
        return 1

    work()
'''


def test_miss_deadline_runs_the_callbacks(make_kernel: Any) -> None:
    """--miss-deadline: each deadline alert's callback runs (sync as an executor runs it,
    async as the triggerer does); a DAG with deadlines also runs without it."""
    k = make_kernel("late.ipynb")
    k.ok(DEADLINE_CELL)
    r = k.ok("%run_dag late")  # deadline alert ids resolved: the successful run prunes them
    assert "CALLBACK" not in r.stdout
    r = k.ok("%run_dag late --miss-deadline")
    assert "SYNC CALLBACK too slow late" in r.stdout
    assert "ASYNC CALLBACK much too slow" in r.stdout
    assert "callback kyte_dag_cell.page ran: success: paged" in r.stdout
    assert k.value("_kyte_last_run.run_state") == "success"
    r = k.fails("%run_task late work --miss-deadline")
    assert "a deadline alert belongs to a whole run" in r.text
    k.ok(MAPPED_CELL)
    r = k.fails("%run_dag mapped --miss-deadline")
    assert "DAG 'mapped' has no deadline alert, so there is nothing to miss" in r.text
