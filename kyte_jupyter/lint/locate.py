"""Where in the cells a task or a DAG is defined, found in the code (no run needed).

A task is found by a call with ``task_id="…"`` (an operator), by a ``@task``-decorated
function of that name (or with that ``task_id``), or, failing both, by a string literal equal
to the task id. A task in a task group (``group.load``) is looked up by its last part too.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from functools import lru_cache

from .findings import CellSource


@lru_cache(maxsize=256)
def _tree(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def _const_kw(call: ast.Call, name: str) -> str | None:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            value = kw.value.value
            return value if isinstance(value, str) else None
    return None


def _decorator_task_id(func: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[bool, str | None]:
    """(whether a decorator looks like ``@task…``, its explicit ``task_id`` if any)."""
    for dec in func.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        names: list[str] = []
        while isinstance(target, ast.Attribute):
            names.append(target.attr)
            target = target.value
        if isinstance(target, ast.Name):
            names.append(target.id)
        if "task" in names or any(n.startswith("task") for n in names[-1:]):
            explicit = _const_kw(dec, "task_id") if isinstance(dec, ast.Call) else None
            return True, explicit
    return False, None


@lru_cache(maxsize=4096)
def _task_line(code: str, task_id: str) -> int | None:
    tree = _tree(code)
    if tree is None:
        return None
    short = task_id.rsplit(".", 1)[-1]
    literal: int | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _const_kw(node, "task_id") in (task_id, short):
            return node.lineno
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            is_task, explicit = _decorator_task_id(node)
            if is_task and (explicit or node.name) in (task_id, short):
                return node.lineno
        if literal is None and isinstance(node, ast.Constant) and node.value in (task_id, short):
            literal = node.lineno
    return literal


def locate_task(cells: Sequence[CellSource], task_id: str) -> tuple[CellSource | None, int | None]:
    """The cell defining ``task_id`` and its line; (the only cell, None) or (None, None)."""
    for cell in cells:
        line = _task_line(cell.code, task_id)
        if line is not None:
            return cell, cell.cell_line(line)
    return (cells[0], None) if len(cells) == 1 else (None, None)


@lru_cache(maxsize=1024)
def _dag_line(code: str, dag_id: str) -> int | None:
    tree = _tree(code)
    if tree is None:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else (node.func.id if isinstance(node.func, ast.Name) else None)
            )
            first = node.args[0] if node.args else None
            given = _const_kw(node, "dag_id") or (
                first.value
                if isinstance(first, ast.Constant) and isinstance(first.value, str)
                else None
            )
            if name in ("DAG", "dag") and given == dag_id:
                return node.lineno
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == dag_id:
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                tname = (
                    target.attr
                    if isinstance(target, ast.Attribute)
                    else (target.id if isinstance(target, ast.Name) else None)
                )
                if tname == "dag":
                    return node.lineno
    return None


def locate_dag(cells: Sequence[CellSource], dag_id: str) -> tuple[CellSource | None, int | None]:
    """The cell (and line) defining ``dag_id``: its ``DAG(…)``/``@dag``, or its first
    ``%%dag DAG_ID`` cell (line 1, where the magic line sets the DAG's arguments)."""
    owned = [c for c in cells if dag_id in c.dag_ids]
    for cell in owned or cells:
        line = _dag_line(cell.code, dag_id)
        if line is not None:
            return cell, cell.cell_line(line)
    if owned:
        first = owned[0]
        return first, 1 if first.first_line > 1 else None
    return (cells[0], None) if len(cells) == 1 else (None, None)
