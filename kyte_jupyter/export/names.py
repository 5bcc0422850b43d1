"""Stage 3, free names: which module-level names each piece of code binds and uses.

A DAG file only has what it defines itself; a notebook cell may lean on a name that a scratch
cell (not exported) or a later cell defines. :func:`module_names` follows Python's scoping
rules (functions, classes, comprehensions, ``global``/``nonlocal``, walrus, match) to find the
loads that resolve to module globals, and whether they run at import time; :func:`check_names`
turns those into problems naming the cell and line, and saying what to do.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .common import INCLUDE_TAG

if TYPE_CHECKING:
    from .notebook import Cell

_MODULE_NAMES = frozenset(
    {"__name__", "__file__", "__doc__", "__builtins__", "__spec__", "__loader__", "__package__"}
)
_BUILTIN_NAMES = frozenset(dir(builtins)) | _MODULE_NAMES
# Names IPython puts in a kernel's namespace or builtins that a DAG file does not have.
_IPYTHON_NAMES = frozenset({"get_ipython", "display", "In", "Out", "_ih", "_oh", "_dh"})
# What the ``with DAG(...)`` wrapper of a grown DAG binds (render adds the imports).
GROWN_DAG_NAMES = frozenset({"DAG", "pendulum"})


@dataclass
class Names:
    """Module-level name use of a piece of code."""

    bound: set[str] = field(default_factory=set)
    # (name, line, eager): loads that resolve to module globals; eager ones run at import time.
    loads: list[tuple[str, int, bool]] = field(default_factory=list)
    star_import: bool = False

    @property
    def loaded(self) -> set[str]:
        """Every global name loaded, at import time or later."""
        return {name for name, _, _ in self.loads}


def bound_name(alias: ast.alias) -> str:
    """The name an import binds: ``import a.b`` binds ``a``, ``import a.b as c`` binds ``c``."""
    return alias.asname or alias.name.split(".")[0]


def module_names(tree: ast.Module) -> Names:
    """The module-level names a piece of code binds, and the global names it loads."""
    builder = _ScopeBuilder()
    builder.visit(tree)
    names = Names(bound=set(builder.module.bound))
    for scope in builder.scopes:
        names.star_import |= scope.star_import and scope.kind == "module"
        for name, line in scope.loads:
            if _resolves_to_module(scope, name):
                names.loads.append((name, line, scope.eager))
    names.loads.sort(key=lambda item: item[1])
    return names


def check_names(
    chunks: list[Cell], cells: list[Cell], dag_ids: list[str], grown: bool
) -> list[str]:
    """Problems with the global names of one exported file's cells, ``chunks`` in file order.

    ``cells`` is every code cell of the notebook (to say where a missing name is defined);
    ``grown`` says the file's DAG is built by a generated ``with DAG(...)``.
    """
    problems: list[str] = []
    available = set(_BUILTIN_NAMES)
    if grown:
        available |= GROWN_DAG_NAMES
    exported = {id(c) for c in chunks}
    star = any(c.names.star_import for c in chunks)
    later_bound: list[set[str]] = []
    acc: set[str] = set()
    for c in reversed(chunks):
        later_bound.append(set(acc))
        acc |= c.names.bound
    later_bound.reverse()
    for k, cell in enumerate(chunks):
        seen: set[str] = set()
        for name, line, eager in cell.names.loads:
            if name in seen or name in cell.names.bound or name in available:
                continue
            seen.add(name)
            if name in later_bound[k]:
                if eager:
                    definer = next(c for c in chunks[k + 1 :] if name in c.names.bound)
                    problems.append(_defined_later(cell, definer, name, line))
                continue
            if star:
                continue
            definers = [c for c in cells if id(c) not in exported and name in c.names.bound]
            if definers:
                where = ", ".join(c.describe() for c in definers)
                dags = " and ".join(repr(d) for d in dag_ids)
                problems.append(
                    f"{cell.where(line)}: `{name}` is defined only in {where}, which is not "
                    f"exported with DAG {dags}. Tag the cell that defines it `{INCLUDE_TAG}` "
                    f"to share it, or define `{name}` in an exported cell."
                )
            elif name in _IPYTHON_NAMES:
                problems.append(
                    f"{cell.where(line)}: `{name}` exists only inside IPython, not when "
                    "Airflow parses the DAG file; remove it from this cell."
                )
        available |= cell.names.bound
    return problems


def _defined_later(cell: Cell, definer: Cell, name: str, line: int) -> str:
    if cell.kind == "include" and definer.kind != "include":
        fix = (
            f"shared code comes first in the exported file, so define "
            f"`{name}` in a `{INCLUDE_TAG}` cell instead"
        )
    else:
        fix = f"move cell {definer.number} above cell {cell.number}"
    return (
        f"{cell.where(line)}: `{name}` is used here but defined only later, "
        f"in cell {definer.number}; {fix}."
    )


class _Scope:
    def __init__(self, kind: str, parent: _Scope | None) -> None:
        self.kind = kind  # "module", "function", "class" or "comprehension"
        self.parent = parent
        self.bound: set[str] = set()
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.loads: list[tuple[str, int]] = []
        self.star_import = False

    @property
    def eager(self) -> bool:
        """Whether code in this scope runs when the module is imported."""
        scope: _Scope | None = self
        while scope is not None:
            if scope.kind == "function":
                return False
            scope = scope.parent
        return True


class _ScopeBuilder(ast.NodeVisitor):
    """Collects, per scope, the names bound and loaded, following Python's scoping rules."""

    def __init__(self) -> None:
        self.module = _Scope("module", None)
        self.scope = self.module
        self.scopes = [self.module]

    def _bind(self, name: str, scope: _Scope | None = None) -> None:
        scope = scope or self.scope
        if name in scope.globals:
            self.module.bound.add(name)
        else:
            scope.bound.add(name)

    @contextlib.contextmanager
    def _enter(self, kind: str) -> Iterator[_Scope]:
        scope = _Scope(kind, self.scope)
        self.scopes.append(scope)
        outer, self.scope = self.scope, scope
        try:
            yield scope
        finally:
            self.scope = outer

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.scope.loads.append((node.id, node.lineno))
        else:
            self._bind(node.id)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self.scope.loads.append((node.target.id, node.lineno))
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        scope = self.scope
        while scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent
        self._bind(node.target.id, scope)

    def visit_Global(self, node: ast.Global) -> None:
        self.scope.globals.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.scope.nonlocals.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._bind(bound_name(alias))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.scope.star_import = True
            else:
                self._bind(alias.asname or alias.name)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        args = node.args
        for d in [*args.defaults, *args.kw_defaults]:
            if d is not None:
                self.visit(d)
        all_args = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        all_args += [a for a in (args.vararg, args.kwarg) if a is not None]
        if not isinstance(node, ast.Lambda):
            for deco in node.decorator_list:
                self.visit(deco)
            for a in all_args:
                if a.annotation is not None:
                    self.visit(a.annotation)
            if node.returns is not None:
                self.visit(node.returns)
            self._bind(node.name)
        with self._enter("function") as scope:
            for a in all_args:
                scope.bound.add(a.arg)
            if isinstance(node, ast.Lambda):
                self.visit(node.body)
            else:
                for stmt in node.body:
                    self.visit(stmt)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        with self._enter("class"):
            for stmt in node.body:
                self.visit(stmt)
        self._bind(node.name)

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        self.visit(node.generators[0].iter)
        with self._enter("comprehension"):
            for i, gen in enumerate(node.generators):
                if i:
                    self.visit(gen.iter)
                self.visit(gen.target)
                for cond in gen.ifs:
                    self.visit(cond)
            if isinstance(node, ast.DictComp):
                self.visit(node.key)
                self.visit(node.value)
            else:
                self.visit(node.elt)

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comprehension(node)

    def visit_SetComp(self, node: ast.SetComp) -> None:
        self._comprehension(node)

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self._comprehension(node)

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self._bind(node.rest)
        self.generic_visit(node)


def _resolves_to_module(scope: _Scope, name: str) -> bool:
    if scope.kind == "module" or name in scope.globals:
        return True
    if name in scope.bound or name in scope.nonlocals:
        return False
    outer = scope.parent
    while outer is not None and outer.kind != "module":
        # Class bodies are not visible from the functions and comprehensions nested in them.
        if outer.kind != "class" and name not in outer.globals:
            if name in outer.bound or name in outer.nonlocals:
                return False
        outer = outer.parent
    return True
