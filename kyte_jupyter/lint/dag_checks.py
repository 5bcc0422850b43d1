"""The checks Airflow applies to a DAG when it parses the file, made before export.

* an invalid schedule (cron expression or timetable): ``dag.validate()`` / the timetable's
  ``validate()``, which the DAG processor calls;
* a scheduled DAG without ``start_date`` (Airflow 3 accepts it, but the first run then depends
  on when the scheduler first sees the file), and a schedule that never fires;
* ``params``: referenced in a template but declared neither on the DAG nor on the task (a
  run fails rendering it), or declared but used by no template and no task code;
* top-level code slower than ``[core] dagbag_import_timeout``: the DAG processor gives up.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2 import nodes

from ..bridge import lint as _airflow
from .findings import CheckId, Finding, LintConfig
from .templates import field_value

if TYPE_CHECKING:
    from airflow.sdk import DAG

CHECK: CheckId = "dag"


def check_schedule(dag: DAG, config: LintConfig) -> list[Finding]:
    """Invalid schedule, scheduled DAG without start_date, schedule that never fires."""
    out: list[Finding] = []

    def add(severity: str, rule: str, message: str) -> None:
        if config.enabled(CHECK, rule):
            out.append(
                Finding(
                    severity="error" if severity == "error" else "warning",
                    check=CHECK,
                    rule=rule,
                    dag_id=dag.dag_id,
                    message=message,
                )
            )

    try:
        dag.timetable.validate()
    except Exception as e:
        add("error", "invalid-schedule", f"the schedule is invalid: {e}")
        return out
    scheduled = _airflow.is_scheduled(dag)
    if scheduled and dag.start_date is None:
        add(
            "warning",
            "missing-start-date",
            f"the DAG is scheduled ({_summary(dag)}) but has no start_date; its first "
            "run then depends on when the scheduler first parses it. Set start_date.",
        )
    elif scheduled and _airflow.never_fires(dag):
        add(
            "warning",
            "schedule-never-fires",
            f"the schedule {_summary(dag)!r} yields no run from the start date on.",
        )
    return out


def _summary(dag: DAG) -> str:
    return str(getattr(dag, "timetable_summary", None) or dag.timetable)


def check_parse_time(dag_id: str, seconds: float | None, config: LintConfig) -> list[Finding]:
    """Top-level code slower than the DAG processor allows (an error), or than half of it."""
    if seconds is None:
        return []
    limit = _airflow.dagbag_import_timeout()
    if limit <= 0:
        return []
    if seconds > limit:
        severity, rule = "error", "import-timeout"
        what = "the DAG processor gives up after"
    elif seconds > limit / 2:
        severity, rule = "warning", "slow-import"
        what = "more than half of the"
    else:
        return []
    if not config.enabled(CHECK, rule):
        return []
    return [
        Finding(
            severity="error" if severity == "error" else "warning",
            check=CHECK,
            rule=rule,
            dag_id=dag_id,
            message=(
                f"the DAG's top-level code took {seconds:.1f}s to run; {what} "
                f"{limit:g}s ([core] dagbag_import_timeout). Move slow work into tasks."
            ),
        )
    ]


def _param_refs(ast: nodes.Node) -> Iterator[str]:
    """Names read from ``params`` in a parsed template: params.x, params['x'], params.get('x')."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, (nodes.Getattr, nodes.Getitem))
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name == "params"):
            continue
        if isinstance(node, nodes.Getattr):
            if node.attr in ("items", "keys", "values"):
                yield "*"  # every param is read
            elif node.attr != "get":
                yield node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            yield node.arg.value
    for call in ast.find_all(nodes.Call):
        fn = call.node
        if (
            isinstance(fn, nodes.Getattr)
            and fn.attr == "get"
            and isinstance(fn.node, nodes.Name)
            and fn.node.name == "params"
            and call.args
            and isinstance(call.args[0], nodes.Const)
            and isinstance(call.args[0].value, str)
        ):
            yield call.args[0].value


_parsed: OrderedDict[tuple[str, ...], tuple[frozenset[str], bool] | None] = OrderedDict()


def _param_use(env: jinja2.Environment, source: str) -> tuple[frozenset[str], bool] | None:
    """(params read by name, whether all params are read) of a template, cached by source and
    delimiters; None on a syntax error (the template check reports it)."""
    key = (
        source,
        env.block_start_string,
        env.variable_start_string,
        env.comment_start_string,
        str(env.line_statement_prefix),
    )
    if key in _parsed:
        _parsed.move_to_end(key)
        return _parsed[key]
    try:
        parsed = env.parse(source)
    except jinja2.TemplateSyntaxError:
        result = None
    else:
        refs = set(_param_refs(parsed))
        plain = [n for n in parsed.find_all(nodes.Name) if n.name == "params"]
        uses_all = "*" in refs or len(plain) > len(list(_param_ref_nodes(parsed)))
        refs.discard("*")
        result = (frozenset(refs), uses_all)
    _parsed[key] = result
    if len(_parsed) > 2048:
        _parsed.popitem(last=False)
    return result


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def check_params(dag: DAG, env: jinja2.Environment, config: LintConfig) -> list[Finding]:
    """Params referenced but not declared (errors) and declared but unused (warnings)."""
    if not config.enabled(CHECK):
        return []
    out: list[Finding] = []
    dag_params = set(dag.params.keys()) if dag.params else set()
    used: set[str] = set()
    uses_all = False
    corpus: list[str] = []
    for task in dag.tasks:
        declared = dag_params | (set(task.params.keys()) if task.params else set())
        ext = tuple(getattr(task, "template_ext", ()) or ())
        for name in getattr(task, "template_fields", ()) or ():
            for text in _strings(field_value(task, name)):
                source = text
                if ext and text.endswith(ext):
                    try:
                        source = env.loader.get_source(env, text)[0] if env.loader else ""
                    except Exception:
                        continue  # a missing file is the template check's finding
                if "params" not in source:
                    continue
                use = _param_use(env, source)
                if use is None:
                    continue
                refs, reads_all = use
                uses_all = uses_all or reads_all
                used |= refs
                for ref in sorted(refs - declared):
                    if config.enabled(CHECK, "undeclared-param"):
                        out.append(
                            Finding(
                                severity="error",
                                check=CHECK,
                                rule="undeclared-param",
                                dag_id=dag.dag_id,
                                task_id=task.task_id,
                                field=name,
                                message=(
                                    f"the template reads params.{ref}, but no param {ref!r} is "
                                    f"declared (declared: {', '.join(sorted(declared)) or 'none'})"
                                    ". Add it to the DAG's params or fix the name."
                                ),
                            )
                        )
        callable_ = getattr(task, "python_callable", None)
        if callable_ is not None:
            try:
                corpus.append(inspect.getsource(callable_))
            except (OSError, TypeError):
                uses_all = True  # cannot see the code: it may read any param
    if uses_all or not config.enabled(CHECK, "unused-param"):
        return out
    text = "\n".join(corpus)
    for name in sorted(dag_params - used):
        if name in text:
            continue
        out.append(
            Finding(
                severity="warning",
                check=CHECK,
                rule="unused-param",
                dag_id=dag.dag_id,
                field="params",
                message=(
                    f"param {name!r} is declared but no template or task code reads it; "
                    "remove it or check the spelling where it is used."
                ),
            )
        )
    return out


def _param_ref_nodes(ast: nodes.Node) -> Iterator[nodes.Node]:
    """Each ``params`` Name that is the target of a specific lookup (counted against all)."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, (nodes.Getattr, nodes.Getitem))
        target = node.node
        if isinstance(target, nodes.Name) and target.name == "params":
            yield target
