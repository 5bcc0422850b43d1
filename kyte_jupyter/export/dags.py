"""Finding DAGs without running code: which DAG ids a whole-DAG-file cell creates, and where.

``with DAG("id")``/``DAG(dag_id="id")`` calls at module level and ``@dag`` functions called at
module level, with ids given as literals or through module-level string constants, under
whatever names the code imported ``DAG`` and ``dag`` as.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DagSite:
    """Where a DAG is created: its line, its id and the node that makes it.

    ``node`` is the ``DAG(...)`` call, or the ``@dag``/``@dag(...)`` decorator expression.
    """

    line: int
    dag_id: str
    node: ast.expr


@dataclass
class Aliases:
    """Names under which code imported Airflow's ``DAG`` class and ``dag`` decorator."""

    dag_class: set[str] = field(default_factory=lambda: {"DAG"})
    dag_decorator: set[str] = field(default_factory=lambda: {"dag"})

    def __or__(self, other: Aliases) -> Aliases:
        return Aliases(self.dag_class | other.dag_class, self.dag_decorator | other.dag_decorator)


def dag_aliases(trees: Iterable[ast.Module]) -> Aliases:
    """The names code imported Airflow's ``DAG`` and ``dag`` under (plus the plain names)."""
    aliases = Aliases()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airflow"):
                for a in node.names:
                    if a.name == "DAG":
                        aliases.dag_class.add(a.asname or a.name)
                    elif a.name == "dag":
                        aliases.dag_decorator.add(a.asname or a.name)
    return aliases


def string_constants(
    trees: Iterable[ast.Module], known: dict[str, str] | None = None
) -> dict[str, str]:
    """Module-level ``NAME = "text"`` assignments, so ``DAG(DAG_ID)`` can be resolved."""
    out: dict[str, str] = dict(known or {})
    for tree in trees:
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, value = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                target, value = stmt.target, stmt.value
            else:
                continue
            if isinstance(target, ast.Name):
                text = const_str(value, out)
                if text is not None:
                    out[target.id] = text
                else:
                    out.pop(target.id, None)
    return out


def const_str(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    """The value of a string expression made of literals and known constants, or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = const_str(node.left, constants), const_str(node.right, constants)
        return left + right if left is not None and right is not None else None
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                if value.conversion != -1 or value.format_spec is not None:
                    return None
                part = const_str(value.value, constants)
            else:
                part = const_str(value, constants)
            if part is None:
                return None
            parts.append(part)
        return "".join(parts)
    return None


def _refers_to(node: ast.expr, names: set[str], attr: str) -> bool:
    if isinstance(node, ast.Name):
        return node.id in names
    return isinstance(node, ast.Attribute) and node.attr == attr


def find_dags(
    tree: ast.Module, constants: dict[str, str], aliases: Aliases
) -> tuple[list[DagSite], list[tuple[int, str]]]:
    """The DAGs a piece of code creates, found statically, and why some cannot be found.

    Returns ``([DagSite], [(line, problem)])``, sites sorted by line. A DAG created inside a
    function other than a called ``@dag`` function, or whose id is not a literal (or a
    constant), is a problem.
    """
    found: list[DagSite] = []
    problems: list[tuple[int, str]] = []
    # name -> (decorator, id, id known)
    decorated: dict[str, tuple[ast.expr, str | None, bool]] = {}
    called: set[str] = set()

    def dag_id_of(call: ast.Call, fallback: str | None) -> tuple[str | None, bool]:
        expr: ast.expr | None = call.args[0] if call.args else None
        for kw in call.keywords:
            if kw.arg == "dag_id":
                expr = kw.value
        if expr is None:
            return fallback, fallback is not None
        value = const_str(expr, constants)
        return value, value is not None

    def visit(node: ast.AST, in_function: str | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if _refers_to(target, aliases.dag_decorator, "dag"):
                    if isinstance(deco, ast.Call):
                        dag_id, known = dag_id_of(deco, node.name)
                    else:
                        dag_id, known = node.name, True
                    decorated[node.name] = (deco, dag_id, known)
                visit(deco, in_function)
            for stmt in node.body:
                visit(stmt, node.name)
            return
        if isinstance(node, ast.Lambda):
            return
        if isinstance(node, ast.Call):
            if _refers_to(node.func, aliases.dag_class, "DAG"):
                dag_id, known = dag_id_of(node, None)
                if in_function is not None:
                    problems.append(
                        (
                            node.lineno,
                            f"a DAG is created inside the function `{in_function}`, "
                            "so Kyte cannot tell its id without running the cell. Create the DAG "
                            'at the top level of the cell, e.g. `with DAG("my_dag", ...):`.',
                        )
                    )
                elif not known or not dag_id:
                    problems.append(
                        (
                            node.lineno,
                            "Kyte cannot tell this DAG's id without running the cell; "
                            'write the id as a string, e.g. `with DAG("my_dag", ...):` or '
                            '`DAG(dag_id="my_dag", ...)`.',
                        )
                    )
                else:
                    found.append(DagSite(node.lineno, dag_id, node))
            elif in_function is None and isinstance(node.func, ast.Name):
                called.add(node.func.id)
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    for stmt in tree.body:
        visit(stmt, None)
    for name, (deco, dag_id, known) in decorated.items():
        if name not in called:
            continue
        if not known or not dag_id:
            problems.append(
                (
                    deco.lineno,
                    f"Kyte cannot tell the id of the DAG made by `{name}()` without running "
                    'the cell; pass it as a string, e.g. `@dag(dag_id="my_dag", ...)`, or drop '
                    "dag_id to use the function name.",
                )
            )
        else:
            found.append(DagSite(deco.lineno, dag_id, deco))
    found.sort(key=lambda s: (s.line, s.dag_id))
    return found, problems
