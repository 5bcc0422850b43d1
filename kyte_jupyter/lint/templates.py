"""Render every template field of every task, as a worker would, without running anything.

The context is the one a worker builds (``RuntimeTaskInstance.get_template_context``) for the
DAG's next logical date; the Jinja environment is the DAG's own (``get_template_env``: its
macros, filters, search path) with ``StrictUndefined``. Values only a deployment knows at run
time (Variables, Connections, XComs) render as the identifier ``kyte_sample``, so the SQL
around them still parses.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import types
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from ..bridge import lint as _airflow
from .findings import CheckId, Finding, LintConfig

if TYPE_CHECKING:
    from airflow.sdk import DAG

CHECK: CheckId = "templates"
SAMPLE = "kyte_sample"


class Sample:
    """A stand-in for a value only known at run time: any attribute, item or call is another
    sample; it renders as ``kyte_sample``."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Sample:
        if name.startswith("__"):
            raise AttributeError(name)
        return Sample(f"{self._what}.{name}")

    def __getitem__(self, key: Any) -> Sample:
        return Sample(f"{self._what}[{key!r}]")

    def __call__(self, *args: Any, **kwargs: Any) -> Sample:
        return Sample(f"{self._what}()")

    def __iter__(self) -> Any:
        return iter(())

    def __str__(self) -> str:
        return SAMPLE

    def __repr__(self) -> str:
        return f"<sample {self._what}>"


class _SampleTI:
    """The task instance, except that XCom pulls return samples instead of asking a server."""

    def __init__(self, ti: Any, task: Any) -> None:
        self._ti = ti
        self.task = task
        self.task_id = task.task_id

    def xcom_pull(self, *args: Any, **kwargs: Any) -> Sample:
        return Sample("xcom_pull()")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ti, name)


@dataclass
class RenderedField:
    """One template field: its value before and after rendering, or why rendering failed."""

    name: str
    raw: Any
    value: Any = None
    error: str | None = None
    rule: str | None = None
    error_line: int | None = None
    template_file: str | None = None


@dataclass
class RenderedTask:
    """The rendered template fields of one task for one sample run."""

    dag_id: str
    task_id: str
    logical_date: _dt.datetime
    fields: dict[str, RenderedField] = field(default_factory=dict)
    context_error: str | None = None


def template_env(dag: DAG, config: LintConfig) -> jinja2.Environment:
    """The DAG's Jinja environment with ``StrictUndefined`` and the configured search path.

    Its ``from_string`` reuses the compiled code of a template already seen with the same
    syntax settings (compiling is most of the cost of rendering a field); the template is still
    bound to this environment, so the DAG's current macros and filters are the ones used.
    """
    env = dag.get_template_env()
    env.undefined = jinja2.StrictUndefined
    if config.template_folder is not None:
        searchpath = [os.fspath(config.template_folder), *(dag.template_searchpath or [])]
        env.loader = jinja2.FileSystemLoader(searchpath)
    signature = _compile_signature(env)
    if signature is not None:
        compile_from_string = env.from_string

        def from_string(
            source: str | Any, globals: Any = None, template_class: Any = None
        ) -> jinja2.Template:
            if not isinstance(source, str) or template_class is not None:
                return compile_from_string(source, globals, template_class)
            key = (signature, source)
            code = _compiled.get(key)
            if code is None:
                code = env.compile(source)
                _compiled[key] = code
                if len(_compiled) > 4096:
                    _compiled.popitem(last=False)
            else:
                _compiled.move_to_end(key)
            return env.template_class.from_code(env, code, env.make_globals(globals))

        env.from_string = from_string  # type: ignore[method-assign]
    return env


_compiled: OrderedDict[tuple[tuple[Any, ...], str], Any] = OrderedDict()


def _compile_signature(env: jinja2.Environment) -> tuple[Any, ...] | None:
    """Everything Jinja's compiled code depends on, or None when it cannot be told (then
    nothing is reused)."""
    if env.finalize is not None or callable(env.autoescape):
        return None
    return (
        type(env),
        env.code_generator_class,
        env.block_start_string,
        env.block_end_string,
        env.variable_start_string,
        env.variable_end_string,
        env.comment_start_string,
        env.comment_end_string,
        env.line_statement_prefix,
        env.line_comment_prefix,
        env.trim_blocks,
        env.lstrip_blocks,
        env.newline_sequence,
        env.keep_trailing_newline,
        env.autoescape,
        tuple(sorted(env.extensions)),
        # Jinja's optimizer may apply filters and tests to constants while compiling: the same
        # functions (a re-run cell makes new ones) or no reuse.
        env.optimized,
        tuple(sorted((k, id(v)) for k, v in env.filters.items())),
        tuple(sorted((k, id(v)) for k, v in env.tests.items())),
    )


class SampleContexts:
    """Template contexts for the tasks of one DAG and one sample run.

    A worker's context is built once (``get_template_context``, which validates the params
    with jsonschema: the costly part) and shared by every task with the same params; the
    task-specific keys are replaced per task.
    """

    def __init__(self, run: _airflow.SampleRun, conf: Mapping[str, Any] | None = None) -> None:
        self.run = run
        self.conf = dict(conf or {})
        self._base: dict[str, Any] | None = None
        self._params: dict[str, dict[str, Any]] = {}

    def for_task(self, task: Any) -> dict[str, Any]:
        """The context a run of ``task`` renders its templates with."""
        if self._base is None:
            base = _worker_context(task, self.run, self.conf)
            base["var"] = {"value": Sample("var.value"), "json": Sample("var.json")}
            base["conn"] = Sample("conn")
            self._base = base
            self._params[_params_key(task)] = base["params"]
            ti = base["ti"]
        else:
            base = self._base
            ti = base["ti"]._ti if isinstance(base["ti"], _SampleTI) else base["ti"]
        context = dict(base)
        key = _params_key(task)
        if key not in self._params:
            self._params[key] = _validated_params(task, self.conf)
        context["params"] = self._params[key]
        context["task"] = task
        context["inlets"] = task.inlets
        context["outlets"] = task.outlets
        context["map_index_template"] = getattr(task, "map_index_template", None)
        ds_nodash = self.run.logical_date.strftime("%Y%m%d")
        context["task_instance_key_str"] = f"{task.dag_id}__{task.task_id}__{ds_nodash}"
        context["ti"] = context["task_instance"] = _SampleTI(ti, task)
        return context


def _params_key(task: Any) -> str:
    try:
        params = task.params
        return repr(
            sorted(
                (k, repr(params.get_param(k).value), repr(params.get_param(k).schema))
                for k in params
            )
        )
    except Exception:
        return f"task:{id(task)}"


def _worker_context(task: Any, run: _airflow.SampleRun, conf: Mapping[str, Any]) -> dict[str, Any]:
    invalid = _airflow.param_validation_error()
    try:
        return _airflow.template_context(task, run, conf)
    except invalid:
        return _airflow.template_context(task, run, _filled_conf(task, conf))


def _validated_params(task: Any, conf: Mapping[str, Any]) -> dict[str, Any]:
    invalid = _airflow.param_validation_error()
    try:
        return _airflow.task_params(task, conf)
    except invalid:
        return _airflow.task_params(task, _filled_conf(task, conf))


def _filled_conf(task: Any, conf: Mapping[str, Any]) -> dict[str, Any]:
    """``conf`` plus a sample value for each param that has none (a trigger would ask)."""
    filled = dict(conf)
    for name in dict(task.params or {}):
        if name not in filled:
            filled[name] = _sample_param(task, name)
    return filled


def _sample_param(task: Any, name: str) -> Any:
    try:
        param = task.params.get_param(name)
        if param.has_value:
            return param.value
        kind = param.schema.get("type")
    except Exception:
        kind = None
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}.get(
        str(kind), SAMPLE
    )


def field_value(task: Any, name: str) -> Any:
    """The value of a template field before rendering (a mapped task's partial value)."""
    if getattr(task, "is_mapped", False):
        partial = getattr(task, "partial_kwargs", {}) or {}
        op_kwargs = partial.get("op_kwargs")
        if name in partial:
            return partial[name]
        if name == "op_kwargs" and isinstance(op_kwargs, dict):
            return op_kwargs
        return None
    return getattr(task, name, None)


def _without_run_values(value: Any, seen: set[int] | None = None) -> Any:
    """Replace XCom references (task outputs) with samples; they resolve only in a run."""
    from airflow.sdk import XComArg

    seen = set() if seen is None else seen
    if isinstance(value, XComArg):
        return Sample("xcom")
    if id(value) in seen:
        return value
    if isinstance(value, (list, tuple, set)):
        seen.add(id(value))
        items = [_without_run_values(v, seen) for v in value]
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*items)
        return type(value)(items)
    if isinstance(value, dict):
        seen.add(id(value))
        return {k: _without_run_values(v, seen) for k, v in value.items()}
    if (
        not isinstance(value, (str, bytes, os.PathLike, types.FunctionType))
        and getattr(value, "resolve", None) is not None
        and not isinstance(value, Path)
    ):
        return Sample("resolved value")
    return value


_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")


def render_task(
    task: Any,
    run: _airflow.SampleRun,
    config: LintConfig,
    contexts: SampleContexts | None = None,
    env: jinja2.Environment | None = None,
) -> RenderedTask:
    """Render each template field of ``task`` separately, collecting each field's error."""
    dag = task.dag
    out = RenderedTask(dag.dag_id, task.task_id, run.logical_date)
    try:
        context = (contexts or SampleContexts(run)).for_task(task)
    except Exception as e:
        out.context_error = f"{type(e).__name__}: {e}"
        return out
    env = env or template_env(dag, config)
    template_ext = tuple(getattr(task, "template_ext", ()) or ())
    for name in getattr(task, "template_fields", ()) or ():
        raw = field_value(task, name)
        rendered = RenderedField(name=name, raw=raw)
        if isinstance(raw, str) and template_ext and raw.endswith(template_ext):
            rendered.template_file = raw
        try:
            rendered.value = task.render_template(_without_run_values(raw), context, env)
        except jinja2.TemplateNotFound as e:
            rendered.error = f"template file {e.name!r} not found (looked in: {_searchpath(env)})"
            rendered.rule = "missing-template"
        except jinja2.TemplateSyntaxError as e:
            rendered.error = f"template syntax error: {e.message}"
            rendered.rule = "template-syntax"
            rendered.error_line = e.lineno
        except jinja2.UndefinedError as e:
            m = _UNDEFINED_NAME.search(str(e))
            what = (m.group(1) or m.group(2)) if m else None
            rendered.error = (
                f"`{what}` is undefined when rendering for {run.logical_date:%Y-%m-%d %H:%M} ({e})"
                if what
                else f"undefined value: {e}"
            )
            rendered.rule = "undefined"
            rendered.error_line = _template_line(e)
        except Exception as e:
            rendered.error = f"rendering failed: {type(e).__name__}: {e}"
            rendered.rule = "render-error"
            rendered.error_line = _template_line(e)
        out.fields[name] = rendered
    return out


def _searchpath(env: jinja2.Environment) -> str:
    loader = env.loader
    paths = [str(p) for p in getattr(loader, "searchpath", None) or [] if str(p)]
    return ", ".join(paths) if paths else "no folder"


def _template_line(error: BaseException) -> int | None:
    """The template line Jinja's rewritten traceback points at, if any."""
    line = None
    tb = error.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name == "<template>" or name.endswith((".sql", ".j2", ".jinja", ".json", ".sh")):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def findings_of(rendered: RenderedTask, config: LintConfig) -> list[Finding]:
    """The template findings of one rendered task (cell and line are added by the runner)."""
    out: list[Finding] = []
    if rendered.context_error is not None and config.enabled(CHECK, "context"):
        out.append(
            Finding(
                severity="error",
                check=CHECK,
                rule="context",
                dag_id=rendered.dag_id,
                task_id=rendered.task_id,
                message=f"cannot build the task's template context: {rendered.context_error}",
            )
        )
    for f in rendered.fields.values():
        if f.error is None or f.rule is None or not config.enabled(CHECK, f.rule):
            continue
        out.append(
            Finding(
                severity="error",
                check=CHECK,
                rule=f.rule,
                dag_id=rendered.dag_id,
                task_id=rendered.task_id,
                field=f.name,
                message=f.error,
                field_line=f.error_line,
            )
        )
    return out


def render_fields(
    dag: DAG,
    task_id: str,
    logical_date: _dt.datetime | None = None,
    conf: Mapping[str, Any] | None = None,
    config: LintConfig | None = None,
) -> RenderedTask:
    """The rendered template fields of one task, as ``airflow tasks render`` shows them.

    ``logical_date`` defaults to the DAG's next logical date; ``conf`` is the run's conf
    (overriding params as a triggered run's conf does). Errors are kept per field.
    """
    config = config or LintConfig()
    task = dag.get_task(task_id)
    run = _airflow.next_run(dag, logical_date)
    return render_task(task, run, config, SampleContexts(run, conf))
