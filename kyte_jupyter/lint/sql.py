"""Parse the rendered SQL of SQL tasks with sqlfluff, in the dialect of the task's connection.

Which fields are SQL: every field of a common.sql operator (``SQLExecuteQueryOperator`` and
subclasses) that the operator renders as SQL, any template field named ``sql``, any field
whose renderer is ``sql``, and any field whose value is a ``.sql`` template file. Only
parsing is done (sqlfluff's parser, not its style rules): a parse error is what breaks a run.
Results are cached by dialect and SQL text; sqlfluff (slow to import) is imported on first use.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from ..bridge import lint as _airflow
from .findings import CheckId, Finding, LintConfig
from .templates import RenderedTask

CHECK: CheckId = "sql"

_CACHE_SIZE = 2048
_cache: OrderedDict[str, list[tuple[int, int, str, str]]] = OrderedDict()
_linters: dict[str, Any] = {}
_lock = threading.Lock()


def sql_fields(task: Any) -> list[str]:
    """The template fields of ``task`` that hold SQL."""
    renderers = getattr(task, "template_fields_renderers", {}) or {}
    names: list[str] = []
    for name in getattr(task, "template_fields", ()) or ():
        if name == "sql" or renderers.get(name) == "sql":
            names.append(name)
            continue
        raw = getattr(task, name, None) if not getattr(task, "is_mapped", False) else None
        if isinstance(raw, str) and raw.endswith(".sql"):
            names.append(name)
    if _airflow.is_sql_operator(task) and "sql" not in names and hasattr(task, "sql"):
        names.append("sql")
    return names


def dialect_of(task: Any, config: LintConfig) -> str:
    """The sqlfluff dialect for a task: from its connection id / type, else the default."""
    conn_id = None
    for attr in (getattr(task, "conn_id_field", None), "conn_id"):
        if attr and isinstance(getattr(task, attr, None), str):
            conn_id = getattr(task, attr)
            break
    if conn_id is not None and conn_id in config.sql_dialects:
        return config.sql_dialects[conn_id]
    conn_type = _airflow.connection_type(conn_id) if conn_id else None
    return config.dialect_for(conn_id, conn_type)


def _linter(dialect: str) -> Any:
    linter = _linters.get(dialect)
    if linter is None:
        import logging

        from sqlfluff.core import FluffConfig, Linter

        # sqlfluff logs every parse at INFO; under Airflow's logging that floods the output.
        logging.getLogger("sqlfluff").setLevel(logging.WARNING)

        cfg = FluffConfig(overrides={"dialect": dialect, "templater": "raw"})
        linter = _linters[dialect] = Linter(config=cfg)
    return linter


def parse_errors(sql: str, dialect: str) -> list[tuple[int, int, str, str]]:
    """sqlfluff's lex and parse errors for ``sql``: (line, position, code, description)."""
    key = hashlib.sha256(f"{dialect}\0{sql}".encode()).hexdigest()
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
        parsed = _linter(dialect).parse_string(sql)
        errors = [
            (int(v.line_no), int(v.line_pos), str(v.rule_code()), _description(v.desc()))
            for v in parsed.violations
        ]
        _cache[key] = errors
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return errors


def _description(desc: str) -> str:
    # sqlfluff starts with "Line L, Position P: "; we say the line ourselves.
    head, sep, rest = desc.partition(": ")
    text = rest if sep and head.startswith("Line ") else desc
    # "... Expected: <Sequence: [<AnyNumberOf: ...": sqlfluff's grammar, not for readers.
    text = text.split(" Expected: <", 1)[0]
    return text if len(text) <= 300 else text[:297] + "..."


def _statements(value: Any) -> Iterator[tuple[int | None, str]]:
    """The SQL strings of a rendered field (a list field yields one per item)."""
    if isinstance(value, str):
        yield None, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield i, item


def check_task(task: Any, rendered: RenderedTask, config: LintConfig) -> list[Finding]:
    """SQL parse errors of one task's rendered SQL fields."""
    if not config.enabled(CHECK):
        return []
    names = [n for n in sql_fields(task) if n in rendered.fields]
    names = [n for n in names if rendered.fields[n].error is None]
    if not names:
        return []
    dialect = dialect_of(task, config)
    out: list[Finding] = []
    for name in names:
        f = rendered.fields[name]
        source = f"the template file {f.template_file!r}" if f.template_file else "the SQL"
        for index, sql in _statements(f.value):
            if not sql.strip():
                continue
            errors = sorted(parse_errors(sql, dialect))
            errors = [e for e in errors if config.enabled(CHECK, e[2])]
            if not errors:
                continue
            # The first error is the one to fix: the parser's later ones usually follow from it.
            line, pos, code, desc = errors[0]
            more = f" ({len(errors) - 1} more after it)" if len(errors) > 1 else ""
            item = f" (item {index})" if index is not None else ""
            out.append(
                Finding(
                    severity="error",
                    check=CHECK,
                    rule=code,
                    dag_id=rendered.dag_id,
                    task_id=rendered.task_id,
                    field=name,
                    message=(
                        f"SQL syntax error ({dialect}) in {source}{item} after templating, "
                        f"SQL line {line}, position {pos}: {desc}{more}"
                    ),
                    field_line=line,
                )
            )
    return out
