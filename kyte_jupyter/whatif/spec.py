"""Forced outcomes ("what-if"): parse and check them against a DAG.

A forced outcome replaces what one task (or one mapped task instance) does in a run:
``fail`` (raises ``AirflowFailException``, no retries), ``fail_once`` (the first try raises a
retriable error, retries then run the real code), ``skip`` (raises ``AirflowSkipException``),
``succeed`` (marked success without running, as ``dag.test(mark_success_pattern=…)``),
``timeout`` (raises ``AirflowTaskTimeout`` on every try, retries honoured), ``branch`` (a
branch task follows the given targets without running its callable) and ``xcom`` (the task
succeeds without running and returns the given value).

This module parses the magics' options (``--fail load,validate``) and a ``%%scenario`` YAML
body, expands task-group ids, and rejects bad input with :class:`WhatIfError`, whose message
is one line naming the problem. It needs only the DAG object (``dag.task_dict``,
``dag.task_group_dict``), no metastore.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

KINDS = ("fail", "fail_once", "skip", "succeed", "timeout", "branch", "xcom")
"""Every kind of forced outcome, in the order the options are listed."""

OPTION = {k: "--" + k.replace("_", "-") for k in KINDS}
"""The magic option that forces each kind (``fail_once`` -> ``--fail-once``)."""

TI_STATES = frozenset({
    "success", "failed", "skipped", "upstream_failed", "up_for_retry", "up_for_reschedule",
    "removed", "scheduled", "queued", "running", "deferred", "restarting", "awaiting_input",
    "none",
})
"""Task instance states an expectation may name (Airflow's, plus "none" for no state)."""

RUN_STATES = frozenset({"success", "failed", "running", "queued"})
"""DagRun states a scenario's ``run:`` may name."""

_KEY = re.compile(r"^(?P<task>[\w.\-]+?)(?:\[(?P<index>\d+)\])?$")


class WhatIfError(ValueError):
    """Bad forced outcomes or scenario: the message is one line naming the problem."""


@dataclass(frozen=True)
class Forced:
    """One forced outcome for one task (``map_index`` None: every instance) or instance."""

    kind: str
    task_id: str
    map_index: int | None = None
    value: Any = None
    """Branch targets (a tuple of task ids) for ``branch``; the XCom value for ``xcom``."""

    @property
    def key(self) -> str:
        """``task`` or ``task[i]``, as the run summary names task instances."""
        return self.task_id if self.map_index is None else f"{self.task_id}[{self.map_index}]"

    def describe(self) -> str:
        """How the summary, the log and the audit trail name this outcome."""
        if self.kind == "branch":
            return "branch -> " + ",".join(self.value)
        if self.kind == "xcom":
            return "xcom = " + json.dumps(self.value, default=str)[:80]
        return self.kind.replace("_", "-")

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON form (for the audit trail and generated tests)."""
        value = list(self.value) if self.kind == "branch" else self.value
        return {"kind": self.kind, "task_id": self.task_id, "map_index": self.map_index,
                "value": value}


@dataclass
class WhatIf:
    """The forced outcomes of one run; empty means an ordinary run."""

    outcomes: list[Forced] = field(default_factory=list)
    miss_deadline: bool = False

    def __bool__(self) -> bool:
        return bool(self.outcomes) or self.miss_deadline

    def for_instance(self, task_id: str, map_index: int) -> Forced | None:
        """The outcome forced on one task instance, if any (instance beats whole task)."""
        whole = None
        for f in self.outcomes:
            if f.task_id != task_id:
                continue
            if f.map_index is None:
                whole = f
            elif f.map_index == map_index:
                return f
        return whole

    def task_ids(self) -> set[str]:
        """Tasks with at least one forced instance."""
        return {f.task_id for f in self.outcomes}

    def describe(self) -> str:
        """One line for the cell and the audit trail: ``fail load; branch pick -> left``."""
        parts = [f"{f.describe()} {f.key}" if f.kind not in ("branch", "xcom")
                 else f"{f.kind} {f.key}{f.describe()[len(f.kind):]}" for f in self.outcomes]
        if self.miss_deadline:
            parts.append("miss-deadline")
        return "; ".join(parts)

    def to_json(self) -> list[dict[str, Any]]:
        """Plain-JSON outcomes."""
        return [f.to_json() for f in self.outcomes]


@dataclass
class Scenario:
    """A ``%%scenario`` cell: forced outcomes and what the run must end with."""

    name: str
    dag_id: str
    whatif: WhatIf
    expect: dict[str, str]
    """Task instance key (``task`` or ``task[i]``) -> expected state."""
    run: str | None = None
    """Expected DagRun state, if the scenario names one."""


# ---- parsing --------------------------------------------------------------------------------


def _unquote(text: str) -> str:
    """Drop one pair of matching outer quotes (IPython's argument splitting keeps them)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _split(values: Iterable[str] | str | None) -> list[str]:
    """Comma-separated (and repeated) option values as one flat list of non-empty items."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        out.extend(_unquote(p) for p in _unquote(str(v)).split(",") if _unquote(p))
    return out


def _task_ids(dag: Any) -> set[str]:
    return set(dag.task_dict)


def _groups(dag: Any) -> dict[str, Any]:
    try:
        return dict(dag.task_group_dict)
    except AttributeError:  # pragma: no cover - every Airflow 3 DAG has task groups
        return {}


def _near(name: str, names: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_mapped(task: Any) -> bool:
    return bool(getattr(task, "is_mapped", False)) or hasattr(task, "expand_input")


def resolve(dag: Any, item: str, option: str) -> list[tuple[str, int | None]]:
    """One item of an option (``task``, ``task[i]`` or a task-group id) as instance refs."""
    m = _KEY.match(item)
    if not m:
        raise WhatIfError(f"{option}: {item!r} is not a task id, task[i] or task-group id.")
    tid, index = m.group("task"), m.group("index")
    tasks = _task_ids(dag)
    if tid in tasks:
        if index is not None and not _is_mapped(dag.task_dict[tid]):
            raise WhatIfError(f"{option}: task {tid!r} of DAG {dag.dag_id!r} is not mapped, so "
                              f"{item!r} names no instance; use {tid!r}.")
        return [(tid, int(index) if index is not None else None)]
    groups = _groups(dag)
    if index is None and tid in groups:
        members = [t.task_id for t in groups[tid].iter_tasks()] if hasattr(
            groups[tid], "iter_tasks") else [
            t for t in tasks if t.startswith(tid + ".")]
        ordered = [t.task_id for t in dag.topological_sort() if t.task_id in set(members)]
        return [(t, None) for t in ordered]
    raise WhatIfError(f"{option}: DAG {dag.dag_id!r} has no task or task group {tid!r}"
                      f"{_near(tid, tasks | set(groups))}.")


def _never_runs(task: Any) -> bool:
    """True for an EmptyOperator Airflow marks success without a try (no callbacks, assets)."""
    return bool(getattr(task, "inherits_from_empty_operator", False)) and not (
        getattr(task, "has_on_execute_callback", False)
        or getattr(task, "has_on_success_callback", False)
        or getattr(task, "outlets", None) or getattr(task, "inlets", None))


def _runnable(dag: Any, refs: list[tuple[str, int | None]], item: str, option: str
              ) -> list[tuple[str, int | None]]:
    """Drop a group's EmptyOperators (nothing runs to force); reject one named alone."""
    kept = [r for r in refs if not _never_runs(dag.task_dict[r[0]])]
    if not kept:
        raise WhatIfError(f"{option}: {item!r} is an EmptyOperator, which Airflow marks "
                          "success without running it; only --succeed applies to it.")
    return kept


def _parse_json(text: str, option: str, task: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise WhatIfError(f"{option} {task}=…: malformed JSON ({e.msg} at column {e.colno}): "
                          f"{text!r}.") from None


def _branch_targets(dag: Any, branch: str, targets: Sequence[str], option: str) -> tuple[str, ...]:
    task = dag.task_dict[branch]
    if not hasattr(task, "do_branch") and not hasattr(
            getattr(task, "operator_class", None), "do_branch"):
        raise WhatIfError(f"{option}: task {branch!r} is not a branch task (a @task.branch, "
                          "BranchPythonOperator or other BaseBranchOperator).")
    if not targets:
        raise WhatIfError(f"{option} {branch}=: name at least one task to follow.")
    downstream = set(task.downstream_task_ids)
    groups = _groups(dag)
    for t in targets:
        if t in downstream:
            continue
        if t in groups and {r.task_id for r in groups[t].roots} & downstream:
            continue
        raise WhatIfError(
            f"{option}: {t!r} is not directly downstream of branch task {branch!r} (it can "
            f"follow {', '.join(sorted(downstream)) or 'nothing'}).")
    return tuple(targets)


def parse_options(
    dag: Any,
    *,
    fail: Iterable[str] | str | None = None,
    fail_once: Iterable[str] | str | None = None,
    skip: Iterable[str] | str | None = None,
    succeed: Iterable[str] | str | None = None,
    timeout: Iterable[str] | str | None = None,
    branch: Iterable[str] | str | None = None,
    xcom: Iterable[str] | str | None = None,
    miss_deadline: bool = False,
) -> WhatIf:
    """Forced outcomes from the magics' options, checked against ``dag``.

    Each value is a list of option occurrences (or one string); each occurrence is a
    comma-separated list of task ids, ``task[i]`` instances or task-group ids. ``branch``
    items are ``B=T1[,T2]`` (one per occurrence), ``xcom`` items ``T=JSON``.
    """
    outcomes: list[Forced] = []
    simple = {"fail": fail, "fail_once": fail_once, "skip": skip, "succeed": succeed,
              "timeout": timeout}
    for kind, values in simple.items():
        occurrences = [values] if isinstance(values, str) else list(values or [])
        if occurrences and not _split(occurrences):
            raise WhatIfError(f"{OPTION[kind]}: name at least one task (TASK, TASK[i] or a group).")
        for item in _split(values):
            refs = resolve(dag, item, OPTION[kind])
            if kind != "succeed":
                refs = _runnable(dag, refs, item, OPTION[kind])
            for tid, index in refs:
                outcomes.append(Forced(kind, tid, index))
    for occ in [branch] if isinstance(branch, str) else list(branch or []):
        b, sep, rest = _unquote(str(occ)).partition("=")
        if not sep:
            raise WhatIfError(f"--branch {occ!r}: write BRANCH_TASK=TARGET[,TARGET].")
        refs = resolve(dag, b.strip(), "--branch")
        tid, _ = refs[0]
        if len(refs) != 1 or refs[0][1] is not None:
            raise WhatIfError(f"--branch {b.strip()!r}: name one branch task, not a group or "
                              "a mapped instance.")
        outcomes.append(Forced("branch", tid, None,
                               _branch_targets(dag, tid, _split(rest), "--branch")))
    for occ in [xcom] if isinstance(xcom, str) else list(xcom or []):
        t, sep, rest = _unquote(str(occ)).partition("=")
        rest = _unquote(rest)
        if not sep:
            raise WhatIfError(f"--xcom {occ!r}: write TASK=JSON, e.g. --xcom 'extract=[1, 2]'.")
        value = _parse_json(rest, "--xcom", t.strip())
        for tid, index in _runnable(dag, resolve(dag, t.strip(), "--xcom"), t, "--xcom"):
            outcomes.append(Forced("xcom", tid, index, value))
    if miss_deadline:
        _has_deadline(dag, "--miss-deadline")
    return _checked(WhatIf(outcomes, miss_deadline=miss_deadline))


def _has_deadline(dag: Any, where: str) -> None:
    """Refuse a deadline miss on a DAG without a deadline alert."""
    if not getattr(dag, "deadline", None):
        raise WhatIfError(
            f"{where}: DAG {dag.dag_id!r} has no deadline alert, so there is nothing to miss; "
            "give the DAG deadline=DeadlineAlert(reference=..., interval=..., callback=...)."
        )


def _checked(whatif: WhatIf) -> WhatIf:
    """Reject two different outcomes forced on one task instance; drop exact repeats."""
    kept: list[Forced] = []
    for f in whatif.outcomes:
        for other in kept:
            overlap = other.task_id == f.task_id and (
                other.map_index is None or f.map_index is None or other.map_index == f.map_index)
            if not overlap:
                continue
            if (other.kind, other.value, other.map_index) == (f.kind, f.value, f.map_index):
                break
            raise WhatIfError(f"{OPTION[other.kind]} and {OPTION[f.kind]} both force {f.key}: "
                              "choose one outcome per task.")
        else:
            kept.append(f)
    whatif.outcomes = kept
    return whatif


_SCENARIO_KEYS = {
    "fail", "fail_once", "skip", "succeed", "timeout", "branch", "xcom", "expect", "run",
    "miss_deadline",
}


def parse_scenario(name: str, dag: Any, body: str) -> Scenario:
    """A ``%%scenario NAME DAG_ID`` cell body (YAML), checked against ``dag``.

    Keys: ``fail``, ``fail_once``, ``skip``, ``succeed``, ``timeout`` (a list of ids, or one
    comma-separated string), ``branch`` (``{branch_task: [targets]}``), ``xcom``
    (``{task: value}``), ``expect`` (``{task or task[i]: state}``), ``run`` (the DagRun's
    expected state) and ``miss_deadline`` (true/false). Dashes work as underscores.
    """
    import yaml

    try:
        data = yaml.safe_load(body) if body.strip() else {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise WhatIfError(f"scenario {name!r}: malformed YAML{where}: {problem}.") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise WhatIfError(f"scenario {name!r}: the body must be YAML keys (fail:, expect: …), "
                          f"not a {type(data).__name__}.")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - _SCENARIO_KEYS)
    if unknown:
        raise WhatIfError(f"scenario {name!r}: unknown key {unknown[0]!r}; use "
                          f"{', '.join(sorted(_SCENARIO_KEYS))}.")

    def ids(key: str) -> list[str]:
        v = data.get(key)
        if v is None:
            return []
        if isinstance(v, str):
            return [v]
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return [",".join(v)] if v else []
        raise WhatIfError(f"scenario {name!r}: {key}: must be a list of task ids.")

    branch = data.get("branch") or {}
    if not isinstance(branch, Mapping):
        raise WhatIfError(f"scenario {name!r}: branch: must map a branch task to its "
                          "targets, e.g. branch: {choose: [notify]}.")
    branch_items = []
    for b, targets in branch.items():
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise WhatIfError(f"scenario {name!r}: branch: {b}: must be a task id or a list.")
        branch_items.append(f"{b}={','.join(targets)}")
    xcom = data.get("xcom") or {}
    if not isinstance(xcom, Mapping):
        raise WhatIfError(f"scenario {name!r}: xcom: must map a task to its value, e.g. "
                          "xcom: {extract: [1, 2]}.")
    miss = data.get("miss_deadline", False)
    if not isinstance(miss, bool):
        raise WhatIfError(f"scenario {name!r}: miss_deadline: must be true or false.")
    try:
        whatif = parse_options(
            dag, fail=ids("fail"), fail_once=ids("fail_once"), skip=ids("skip"),
            succeed=ids("succeed"), timeout=ids("timeout"), branch=branch_items,
            miss_deadline=miss,
        )
        extra = [Forced("xcom", tid, index, value)
                 for t, value in xcom.items() for tid, index in resolve(dag, str(t), "xcom")]
        whatif = _checked(WhatIf(whatif.outcomes + extra, whatif.miss_deadline))
    except WhatIfError as e:
        raise WhatIfError(f"scenario {name!r}: {str(e).removeprefix('--')}") from None

    expect_raw = data.get("expect") or {}
    if not isinstance(expect_raw, Mapping):
        raise WhatIfError(f"scenario {name!r}: expect: must map tasks to states, e.g. "
                          "expect: {load: failed, notify: success}.")
    expect: dict[str, str] = {}
    for key, state in expect_raw.items():
        key, state = str(key), str(state).lower()
        refs = resolve(dag, key, f"scenario {name!r}: expect")
        if state not in TI_STATES:
            raise WhatIfError(f"scenario {name!r}: expect: {key}: {state!r} is not a task "
                              f"state{_near(state, TI_STATES)}.")
        for tid, index in refs:
            expect[tid if index is None else f"{tid}[{index}]"] = state
    run = data.get("run")
    if run is not None:
        run = str(run).lower()
        if run not in RUN_STATES:
            raise WhatIfError(f"scenario {name!r}: run: {run!r} is not a DagRun state; use "
                              "success or failed.")
    if not expect and run is None:
        raise WhatIfError(f"scenario {name!r}: nothing to check; add expect: {{task: state}} "
                          "or run: success|failed.")
    return Scenario(name=name, dag_id=dag.dag_id, whatif=whatif, expect=expect, run=run)


def compare(scenario: Scenario, task_states: Mapping[str, str], run_state: str | None
            ) -> list[tuple[str, str, str]]:
    """Mismatches ``(key, expected, actual)`` between a scenario and a finished run.

    An expectation on a mapped task as a whole (``task``) holds when every instance of it
    ended in that state.
    """
    out: list[tuple[str, str, str]] = []
    for key, want in scenario.expect.items():
        if key in task_states:
            got = task_states[key]
        else:
            inst = [s for k, s in task_states.items() if k.startswith(key + "[")]
            got = (inst[0] if len(set(inst)) == 1 else ",".join(inst)) if inst else "none"
        if got != want:
            out.append((key, want, got))
    if scenario.run is not None and run_state != scenario.run:
        out.append(("(run)", scenario.run, str(run_state)))
    return out
