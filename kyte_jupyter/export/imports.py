"""The import block at the top of an exported file, laid out as ruff (isort) lays it out.

Exported cells' leading imports move to the top of the file; the imports the generated
``with DAG(...)`` needs are added where isort would put them; shared imports a file does not
use are dropped (ruff would flag them: F401).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .common import LINE_LENGTH, unique
from .names import bound_name

if TYPE_CHECKING:
    from .notebook import Cell

ImportNode = ast.Import | ast.ImportFrom


@dataclass
class _Import:
    text: str
    node: ImportNode
    gap_before: bool  # a blank line before it in the cell it came from

    @property
    def key(self) -> str:
        return ast.dump(self.node)


@dataclass
class ImportBlock:
    """The ``from __future__`` names and the imports of one exported file, in file order."""

    futures: list[str] = field(default_factory=list)
    imports: list[_Import] = field(default_factory=list)

    def hoist(self, cell: Cell, sort_in: bool = False) -> str:
        """Move a cell's leading imports (after its docstring, if any) here.

        Returns the rest of the cell's code. ``sort_in`` places each import where isort would
        among those already here, instead of after them (include cells keep their own order).
        """
        assert cell.tree is not None
        lines = cell.code.split("\n")
        stmts = cell.tree.body
        prefix: list[str] = []
        start = 0
        if stmts and _is_docstring(stmts[0]):
            start = stmts[0].end_lineno or stmts[0].lineno
            if len(stmts) > 1 and stmts[1].lineno <= start:
                return cell.code.strip("\n")
            prefix, stmts = lines[:start], stmts[1:]
        for i, stmt in enumerate(stmts):
            if not isinstance(stmt, ImportNode):
                break
            end = stmt.end_lineno or stmt.lineno
            if i + 1 < len(stmts) and stmts[i + 1].lineno <= end:
                break  # shares its line with the next statement: leave the line alone
            chunk = lines[start:end]
            gap = False
            while chunk and not chunk[0].strip():
                chunk.pop(0)
                gap = True
            start = end
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
                self.futures.extend(a.name for a in stmt.names)
                continue
            new = _Import("\n".join(chunk), stmt, gap and bool(self.imports))
            if any(imp.key == new.key for imp in self.imports):
                continue
            if sort_in:
                self._insert(new)
            else:
                self.imports.append(new)
        rest = "\n".join(lines[start:]).strip("\n")
        if prefix:
            return "\n".join(prefix).strip("\n") + ("\n\n" + rest if rest else "")
        return rest

    def prune(self, used: set[str]) -> None:
        """Drop the imports of names not in ``used`` (an import line with ``# noqa`` stays)."""
        kept: list[_Import] = []
        for imp in self.imports:
            if "noqa" in imp.text:
                kept.append(imp)
                continue
            aliases = [a for a in imp.node.names if bound_name(a) in used]
            if len(aliases) == len(imp.node.names):
                kept.append(imp)
            elif aliases:
                node: ImportNode
                if isinstance(imp.node, ast.ImportFrom):
                    node = ast.ImportFrom(imp.node.module, aliases, imp.node.level)
                else:
                    node = ast.Import(aliases)
                kept.append(_Import(_import_text(node), node, imp.gap_before))
        if kept and self.imports and kept[0] is not self.imports[0]:
            kept[0].gap_before = False
        self.imports = kept

    def add(self, text: str) -> None:
        """Insert a generated import where isort would put it among the user's imports."""
        node = ast.parse(text).body[0]
        assert isinstance(node, ImportNode)
        self._insert(_Import(text, node, gap_before=False))

    def add_from(self, module: str, name: str) -> None:
        """Import ``name`` from ``module``, in an existing one-line import if there is one."""
        if not self.merge_from(module, [name]):
            self.add(f"from {module} import {name}")

    def imports_from(self, module: str, name: str) -> bool:
        """Whether ``from module import name`` (unaliased) is here."""
        return any(
            isinstance(i.node, ast.ImportFrom)
            and i.node.module == module
            and any(a.name == name and a.asname in (None, name) for a in i.node.names)
            for i in self.imports
        )

    def imports_module(self, module: str) -> bool:
        """Whether a plain ``import module`` is here."""
        return any(
            isinstance(i.node, ast.Import)
            and any(a.name == module and a.asname is None for a in i.node.names)
            for i in self.imports
        )

    def binds(self, name: str) -> bool:
        """Whether some import here binds ``name``."""
        return any(bound_name(a) == name for i in self.imports for a in i.node.names)

    def render(self) -> list[str]:
        """The file's ``from __future__`` line and import block, each as one part (or none)."""
        parts = []
        if self.futures:
            parts.append("from __future__ import " + ", ".join(unique(self.futures)) + "\n")
        if self.imports:
            out: list[str] = []
            for i, imp in enumerate(self.imports):
                previous = self.imports[i - 1] if i else None
                if previous is not None and (
                    imp.gap_before or _section(imp.node) != _section(previous.node)
                ):
                    out.append("")
                out.append(imp.text)
            parts.append("\n".join(out) + "\n")
        return parts

    def _insert(self, new: _Import) -> None:
        """Insert an import before the first one of its isort section that sorts after it."""
        new.gap_before = False
        node = _simple_from(new)
        if node is not None and node.module is not None:
            if self.merge_from(node.module, [a.name for a in node.names]):
                return
        imports = self.imports
        key = _sort_key(new.node)
        for i, imp in enumerate(imports):
            if _section(imp.node) == key[0] and _sort_key(imp.node) > key:
                new.gap_before, imp.gap_before = imp.gap_before, False
                imports.insert(i, new)
                return
        same = [i for i, imp in enumerate(imports) if _section(imp.node) == key[0]]
        if same:
            imports.insert(same[-1] + 1, new)
            return
        later = [i for i, imp in enumerate(imports) if _section(imp.node) > key[0]]
        imports.insert(later[0] if later else len(imports), new)

    def merge_from(self, module: str, added: list[str]) -> bool:
        """Add names to a one-line ``from module import …`` already here, ruff-sorted."""
        for imp in self.imports:
            node = _simple_from(imp)
            if node is None or node.module != module:
                continue
            names = [a.name for a in node.names]
            extra = [n for n in added if n not in names]
            if names == sorted(names, key=_member_key):
                names = sorted([*names, *extra], key=_member_key)
            else:
                names = [*names, *extra]
            text = f"from {module} import " + ", ".join(names)
            if len(text) > LINE_LENGTH:
                return False
            new_node = ast.parse(text).body[0]
            assert isinstance(new_node, ast.ImportFrom)
            imp.text, imp.node = text, new_node
            return True
        return False


def _import_text(node: ImportNode) -> str:
    """One import statement as ruff format writes it (wrapped in parentheses when long)."""
    text = ast.unparse(node)
    if len(text) <= LINE_LENGTH or not isinstance(node, ast.ImportFrom):
        return text
    head = "from " + "." * node.level + (node.module or "") + " import ("
    items = [f"    {a.name}" + (f" as {a.asname}" if a.asname else "") + "," for a in node.names]
    return "\n".join([head, *items, ")"])


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _section(node: ImportNode) -> int:
    """isort section: 0 standard library, 1 everything else."""
    if isinstance(node, ast.Import):
        module = node.names[0].name
    else:
        module = "." if node.level else (node.module or "")
    return 0 if module.split(".")[0] in sys.stdlib_module_names else 1


def _sort_key(node: ImportNode) -> tuple[int, int, str]:
    if isinstance(node, ast.Import):
        return (_section(node), 0, node.names[0].name.lower())
    return (_section(node), 1, (node.module or "").lower())


def _simple_from(imp: _Import) -> ast.ImportFrom | None:
    """The node of a one-line, comment-free ``from module import a, b`` without aliases."""
    node = imp.node
    if (
        isinstance(node, ast.ImportFrom)
        and node.level == 0
        and "\n" not in imp.text
        and "#" not in imp.text
        and all(a.asname is None and a.name != "*" for a in node.names)
    ):
        return node
    return None


def _member_key(name: str) -> tuple[int, str]:
    """ruff's ``order-by-type``: CONSTANTS, then Classes, then everything else."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name.lower())
