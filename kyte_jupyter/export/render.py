"""Stage 4, rendering: one exported file's text from the cells planned for it.

A whole-DAG-file cell with no shared code is the file itself, under the header. Otherwise the
file is the header, the ``from __future__`` line, the import block (every exported cell's
leading imports, see :mod:`.imports`), the shared cells' code and the DAG cells' code; the
bodies of ``%%dag DAG_ID`` cells go inside one ``with DAG(...):`` built from their options,
merged as the kernel merges them. The layout is what ``ruff format`` would write.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tokenize
from typing import TYPE_CHECKING, Any

from .common import HEADER_MARK, LINE_LENGTH
from .imports import ImportBlock
from .names import GROWN_DAG_NAMES

if TYPE_CHECKING:
    from .notebook import Cell
    from .plan import Unit
    from .templates import TemplateFolder


def render_file(
    notebook_name: str, unit: Unit, includes: list[Cell], templates: TemplateFolder | None = None
) -> str:
    """The source of the file for ``unit``, with the shared cells ``includes``.

    With ``templates``, the generated ``with DAG(...)`` of a grown DAG gets the notebook's
    folder as ``template_searchpath`` (whole-DAG-file cells come already rewritten).
    """
    if not unit.grown and not includes and templates is None:
        # A whole-DAG-file cell with no shared code: the file is that cell under the header.
        (cell,) = unit.cells
        return _header(notebook_name, unit.dag_ids) + "\n" + cell.code.strip("\n") + "\n"
    block = ImportBlock()
    bodies = [body for cell in includes if (body := block.hoist(cell))]
    cells = [*includes, *unit.cells]
    if not any(c.names.star_import for c in cells):
        used = {name for c in cells for name in c.names.loaded}
        block.prune(used | GROWN_DAG_NAMES if unit.grown else used)
    dag_bodies = [body for cell in unit.cells if (body := block.hoist(cell, sort_in=True))]
    if templates is not None and not block.imports_module("os"):
        block.add("import os")
    if unit.grown:
        options = _merged_options(unit.cells)
        dag_name = _wrapper_imports(block, options, includes)
        extra = [templates.wrapper_argument()] if templates is not None else []
        sections = [*bodies, _wrapper(dag_name, unit.dag_ids[0], options, dag_bodies, extra)]
    else:
        sections = [*bodies, *dag_bodies]
    parts = [_header(notebook_name, unit.dag_ids), *block.render()]
    out = "\n".join(parts)
    for i, section in enumerate(sections):
        # ruff/isort: one blank line after the imports, two before a def or class.
        gap = "\n" if i == 0 and len(parts) > 1 and not _starts_with_def(section) else "\n\n"
        out += gap + section + "\n"
    return out


def _header(notebook_name: str, dag_ids: list[str]) -> str:
    noun = "DAG" if len(dag_ids) == 1 else "DAGs"
    lines = [f"{HEADER_MARK} from the notebook {_comment_safe(notebook_name)}."]
    line = f"# Airflow {noun}:"
    for i, dag_id in enumerate(dag_ids):
        item = f' "{dag_id}"' + ("," if i < len(dag_ids) - 1 else ".")
        if len(line) + len(item) > LINE_LENGTH:
            lines.append(line)
            line = "#"
        line += item
    lines.append(line)
    lines.append("# Edit the notebook and export it again: the next export overwrites this file.")
    lines.append("# To keep manual edits, delete these lines; Kyte then never overwrites the file.")
    return "\n".join(lines) + "\n"


def _merged_options(cells: list[Cell]) -> dict[str, Any]:
    """The DAG's keyword arguments, merged across its cells exactly as the kernel does."""
    merged: dict[str, Any] = {"schedule": None}
    for cell in cells:
        if cell.options is not None:
            merged.update(cell.options.given())
    return merged


def _wrapper_imports(block: ImportBlock, options: dict[str, Any], includes: list[Cell]) -> str:
    """Add the imports the ``with DAG(...)`` wrapper needs; return the name to call."""
    dag_name = "DAG"
    if not block.imports_from("airflow.sdk", "DAG"):
        if any("DAG" in c.names.bound for c in includes) or block.binds("DAG"):
            # The notebook's own `DAG` is something else: use the qualified name instead.
            dag_name = "airflow.sdk.DAG"
            if not block.imports_module("airflow.sdk"):
                block.add("import airflow.sdk")
        else:
            block.add_from("airflow.sdk", "DAG")
    if options.get("start_date") is not None and not block.imports_module("pendulum"):
        block.add("import pendulum")
    return dag_name


def _wrapper(
    dag_name: str, dag_id: str, options: dict[str, Any], bodies: list[str], extra: list[str]
) -> str:
    args = [f"dag_id={_literal(dag_id)}", f"schedule={_literal(options.get('schedule'))}"]
    start = options.get("start_date")
    if start is not None:
        args.append(
            f'start_date=pendulum.datetime({start.year}, {start.month}, {start.day}, tz="UTC")'
        )
    for key in ("default_args", "tags", "description"):
        if key in options:
            args.append(_keyword(key, options[key], indent=4))
    args.extend(extra)
    lines = [f"with {dag_name}(", *(f"    {a}," for a in args), "):"]
    text = "\n".join(lines) + "\n"
    if not bodies:
        return text + "    pass"
    if _starts_with_def(bodies[0]):
        text += "\n"  # ruff format puts an empty line before a nested def, even here
    return text + "\n\n".join(_indent(b) for b in bodies)


def _starts_with_def(code: str) -> bool:
    for line in code.split("\n"):
        if line.strip() and not line.lstrip().startswith("#"):
            return line.startswith(("def ", "async def ", "class ", "@"))
    return False


def _indent(code: str) -> str:
    """Indent code by four spaces, leaving the inside of multi-line strings untouched."""
    inside = _string_continuation_lines(code)
    out: list[str] = []
    blank = False
    for number, line in enumerate(code.split("\n"), start=1):
        if number in inside:
            out.append(line)
            blank = False
        elif not line.strip():
            if not blank:  # one blank line at most inside a block, as ruff format wants
                out.append("")
            blank = True
        else:
            out.append("    " + line)
            blank = False
    return "\n".join(out).rstrip("\n")


def _string_continuation_lines(code: str) -> set[int]:
    """Line numbers (1-based) that start inside a string literal spanning several lines."""
    rows: set[int] = set()
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    open_fstrings: list[int] = []
    with contextlib.suppress(tokenize.TokenError, IndentationError, SyntaxError):
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                rows.update(range(tok.start[0] + 1, tok.end[0] + 1))
            elif fstring_start is not None and tok.type == fstring_start:
                open_fstrings.append(tok.start[0])
            elif fstring_end is not None and tok.type == fstring_end and open_fstrings:
                start = open_fstrings.pop()
                rows.update(range(start + 1, tok.end[0] + 1))
    return rows


def _keyword(key: str, value: Any, indent: int) -> str:
    one_line = f"{key}={_literal(value)}"
    if len(one_line) + indent + 1 <= LINE_LENGTH or not isinstance(value, dict | list) or not value:
        return one_line
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        items = [f"{pad}{_literal(k)}: {_literal(v)}," for k, v in value.items()]
        return f"{key}={{\n" + "\n".join(items) + "\n" + " " * indent + "}"
    items = [f"{pad}{_literal(v)}," for v in value]
    return f"{key}=[\n" + "\n".join(items) + "\n" + " " * indent + "]"


def _literal(value: Any) -> str:
    """Python source for a JSON-like value, formatted as ruff format would."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(value)
    if isinstance(value, str):
        if '"' in value and "'" not in value:
            return repr(value)
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a literal")


def _comment_safe(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")
