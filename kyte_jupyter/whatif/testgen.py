"""Write ``test_<dag_id>.py``: a DAG's scenarios as plain pytest + stock Airflow tests.

The generated file imports nothing from Kyte and not even pytest at module level (a
deployment that parses its DAG folder loads it as a file without DAGs, without an import
error). Each scenario becomes one ``test_…`` function that loads the exported DAG file with
``DagBag``, forces the scenario's outcomes by the same technique Kyte uses (the forced task's
``execute`` raises the matching exception, inlined below as ``_forced``), runs
``dag.test()`` and asserts the expected task instance states and run state.

Without ``AIRFLOW_HOME`` set, the tests make a temporary Airflow home whose DAG folder is the
test file's folder and migrate its metastore once per pytest process.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Sequence
from pathlib import Path

from kyte_jupyter.whatif.spec import Scenario

_HEADER = '''\
"""Scenario tests for the Airflow DAG {dag_id!r}{source}.

Written by Kyte (`jupyter kyte export --tests`); needs only apache-airflow and pytest:

    pytest {test_file}

Each test forces task outcomes the way a `%%scenario` cell did (a forced task's `execute`
raises AirflowFailException, AirflowSkipException or AirflowTaskTimeout, a branch task follows
the forced targets, an XCom is returned without running), runs `dag.test()` on {dag_file}
and checks the final task instance states and the run state.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DAG_FILE = Path(__file__).with_name({dag_file!r})
DAG_ID = {dag_id!r}
_LOADED = {{}}


def _dag():
    """The exported DAG, parsed by a stock DagBag (with a throw-away Airflow home if unset)."""
    if "dag" in _LOADED:
        return _LOADED["dag"]
    if "AIRFLOW_HOME" not in os.environ and "airflow" not in sys.modules:
        home = tempfile.mkdtemp(prefix="airflow-home-")
        os.environ.update({{
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        }})
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                       capture_output=True)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    _LOADED["dag"] = bag.get_dag(DAG_ID)
    assert _LOADED["dag"] is not None, f"{{DAG_FILE}} defines no DAG {{DAG_ID!r}}"
    return _LOADED["dag"]


def _forced(outcomes):
    """Patch the `execute` of every forced task's operator class; returns an undo function.

    `outcomes` maps (task_id, map_index or None) to (kind, value). The patched `execute`
    looks at the running task instance: a forced one ends its try as the outcome says,
    every other one runs its real code. Retries, callbacks and trigger rules stay Airflow's.
    """
    from airflow.sdk.exceptions import (
        AirflowFailException,
        AirflowSkipException,
        AirflowTaskTimeout,
    )

    dag = _dag()
    failed_once = set()

    def outcome(ti):
        f = outcomes.get((ti.task_id, ti.map_index)) or outcomes.get((ti.task_id, None))
        if f and f[0] == "fail_once" and (ti.task_id, ti.map_index) in failed_once:
            return None
        return f

    def dispatcher(real):
        def execute(self, context, *args, **kwargs):
            ti = context["ti"]
            f = outcome(ti) if ti.dag_id == DAG_ID else None
            if f is None:
                return real(self, context, *args, **kwargs)
            kind, value = f
            print(f"forced {{kind}} of {{ti.task_id}} (try {{ti.try_number}})")
            if kind == "fail":
                raise AirflowFailException("forced fail")
            if kind == "skip":
                raise AirflowSkipException("forced skip")
            if kind == "timeout":
                raise AirflowTaskTimeout("forced timeout")
            if kind == "fail_once":
                failed_once.add((ti.task_id, ti.map_index))
                raise RuntimeError("forced failure of the first try")
            if kind == "branch":
                return self.do_branch(context, list(value))
            if kind == "xcom":
                return value
            return None  # succeed, one mapped instance
        return execute

    saved = []
    for (task_id, map_index), (kind, _) in outcomes.items():
        if kind == "succeed" and map_index is None:
            continue  # dag.test(mark_success_pattern=...) marks it
        task = dag.task_dict[task_id]
        cls = getattr(task, "operator_class", None)
        cls = cls if isinstance(cls, type) else type(task)
        if any(c is cls for c, _ in saved):
            continue
        saved.append((cls, cls.__dict__.get("execute")))
        type.__setattr__(cls, "execute", dispatcher(cls.execute))

    def undo():
        for cls, original in reversed(saved):
            if original is None:
                type.__delattr__(cls, "execute")
            else:
                type.__setattr__(cls, "execute", original)

    return undo


def _run(outcomes):
    """Run the DAG once with `outcomes` forced: (run state, {{task or task[i]: state}})."""
    dag = _dag()
    succeed = sorted({{t for (t, i), (k, _) in outcomes.items() if k == "succeed" and i is None}})
    undo = _forced(outcomes)
    try:
        dr = dag.test(mark_success_pattern="|".join(map(re.escape, succeed)) or None)
    finally:
        undo()
    states = {{}}
    for ti in dr.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{{ti.task_id}}[{{ti.map_index}}]"
        states[key] = str(getattr(ti.state, "value", ti.state) or "none")
    return str(getattr(dr.state, "value", dr.state)), states


def _check(expect, run, result):
    """Compare a run with a scenario's expectations, a mapped task per map index.

    An expectation on a whole mapped task holds when each of its instances ended in that
    state; a mismatch lists them as (map index, state) in index order, so how many there were
    and which one differed stay visible.
    """
    run_state, states = result
    instances = {{}}
    for key, state in states.items():
        task_id, bracket, rest = key.partition("[")
        if bracket:
            instances.setdefault(task_id, []).append((int(rest[:-1]), state))
    wrong = []
    for key, want in expect.items():
        if key in states:
            got = states[key]
        else:
            got = sorted(instances.get(key, [])) or "none"
            if got != "none" and all(state == want for _, state in got):
                continue
        if got != want:
            wrong.append(f"{{key}}: expected {{want}}, got {{got}}")
    if run is not None and run_state != run:
        wrong.append(f"(run): expected {{run}}, got {{run_state}}")
    assert not wrong, (f"states differ from the scenario: {{'; '.join(wrong)}} "
                       f"(all: {{dict(sorted(states.items()))}}, run {{run_state}})")
'''

_TEST = '''

def test_{fname}():
    """Scenario {name!r}{doc}."""
    outcomes = {outcomes}
    expect = {expect}
    _check(expect, {run!r}, _run(outcomes))
'''


def _py(value: object) -> str:
    """A Python literal for a JSON value (true/false/null as Python)."""
    return repr(json.loads(json.dumps(value)))


def function_name(name: str) -> str:
    """A scenario name as a Python identifier (``load fails`` -> ``load_fails``)."""
    s = re.sub(r"\W+", "_", name.strip().lower()).strip("_") or "scenario"
    if s[0].isdigit() or keyword.iskeyword(s):
        s = "s_" + s
    return s


def render(dag_id: str, dag_file: str, scenarios: Sequence[Scenario],
           source: str | None = None) -> str:
    """The text of ``test_<dag_id>.py`` for ``scenarios`` against the DAG file ``dag_file``.

    ``dag_file`` is the exported file's name (the test sits next to it); ``source`` names the
    notebook for the docstring.
    """
    out = [_HEADER.format(
        dag_id=dag_id, dag_file=Path(dag_file).name, test_file=f"test_{dag_id}.py",
        source=f" (exported from {source})" if source else "",
    )]
    used: set[str] = set()
    for sc in scenarios:
        fname = function_name(sc.name)
        base, n = fname, 2
        while fname in used:
            fname, n = f"{base}_{n}", n + 1
        used.add(fname)
        outcomes = {
            (f.task_id, f.map_index): (f.kind, list(f.value) if f.kind == "branch" else f.value)
            for f in sc.whatif.outcomes
        }
        forced = sc.whatif.describe()
        out.append(_TEST.format(
            fname=fname, name=sc.name, doc=f": {forced}" if forced else "",
            outcomes="{" + ", ".join(f"{k!r}: ({kind!r}, {_py(v)})"
                                     for k, (kind, v) in outcomes.items()) + "}",
            expect=repr(dict(sc.expect)), run=sc.run,
        ))
    return "".join(out)


def write(dag_file: Path, dag_id: str, scenarios: Sequence[Scenario],
          source: str | None = None) -> Path:
    """Write ``test_<dag_id>.py`` next to ``dag_file``; returns its path."""
    path = dag_file.with_name(f"test_{dag_id}.py")
    path.write_text(render(dag_id, dag_file.name, scenarios, source), encoding="utf-8")
    return path
