"""Template files next to the notebook, found from the exported file as from the notebook.

In a notebook, the notebook's folder is the DAG file's folder: ``bash_command="hello.sh"`` or
``templates_dict={"query": "report.sql"}`` finds ``hello.sh`` and ``report.sql`` next to the
notebook, and a relative ``template_searchpath`` entry is taken from there. Airflow looks up
templates in the DAG file's own folder first, then in ``template_searchpath`` (whose relative
entries Jinja would take from the worker's working directory). So when the exported file lands
in another folder (the default ``dags/`` next to the notebook), each of its DAGs gets
``template_searchpath`` holding the notebook's folder, written relative to the file
(``os.path.dirname(__file__)``), so the export keeps working wherever the project is checked
out; relative literal entries of the user's own ``template_searchpath`` are anchored the same
way. Files are not copied: the notebook's folder stays the one place they are edited.

Only DAGs that use template files get this: a string in their code naming a file in the
notebook's folder, or a ``template_searchpath`` argument. Others are exported unchanged.
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .dags import Aliases, DagSite, const_str, dag_aliases, find_dags, string_constants

if TYPE_CHECKING:
    from .notebook import Cell

_KEYWORD = "template_searchpath"


@dataclass(frozen=True)
class TemplateFolder:
    """The notebook's folder, and how the exported file reaches it.

    ``relative`` is the notebook's folder relative to the output folder, ``/``-separated
    (``"."`` when the files are written next to the notebook).
    """

    notebook_dir: Path
    relative: str

    @classmethod
    def between(cls, notebook_dir: Path, output_dir: Path) -> TemplateFolder:
        """The template folder of a notebook in ``notebook_dir`` exported to ``output_dir``."""
        real_nb, real_out = os.path.realpath(notebook_dir), os.path.realpath(output_dir)
        try:
            rel = os.path.relpath(real_nb, real_out)
        except ValueError:  # another drive (Windows): only an absolute path reaches it
            rel = real_nb
        return cls(Path(notebook_dir), rel.replace(os.sep, "/"))

    def entry(self, path: str = ".") -> str:
        """Python source of a search path entry: ``path`` in the notebook's folder."""
        if posixpath.isabs(path) or os.path.isabs(path):
            return json.dumps(path)
        where = posixpath.normpath(posixpath.join(self.relative, path))
        return f"os.path.join(os.path.dirname(__file__), {json.dumps(where)})"

    def needed(self, cells: list[Cell]) -> bool:
        """Whether these cells use template files (see the module docstring)."""
        if self.relative == ".":
            return any(_keyword_in(c) for c in cells)
        return any(_keyword_in(c) or self._names_a_file(c) for c in cells)

    def _names_a_file(self, cell: Cell) -> bool:
        assert cell.tree is not None
        for node in ast.walk(cell.tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value.strip()
                if 0 < len(name) < 256 and "\n" not in name and "\0" not in name:
                    parts = name.replace("\\", "/").split("/")
                    if ".." not in parts and not posixpath.isabs(name):
                        if (self.notebook_dir / name).is_file():
                            return True
        return False

    def wrapper_argument(self) -> str:
        """The argument the generated ``with DAG(...)`` of a grown DAG gets."""
        return f"{_KEYWORD}=[{self.entry()}]"

    def rewrite(self, cell: Cell, aliases: Aliases, constants: dict[str, str]) -> Cell:
        """The whole-DAG-file cell with every DAG it creates given the search path."""
        assert cell.tree is not None
        sites, _ = find_dags(
            cell.tree,
            string_constants([cell.tree], constants),
            aliases | dag_aliases([cell.tree]),
        )
        edits = [e for site in sites if (e := self._edit(cell.code, site)) is not None]
        code = cell.code
        for start, end, text in sorted(edits, reverse=True):
            code = code[:start] + text + code[end:]
        return replace(cell, code=code, tree=ast.parse(code))

    def _edit(self, code: str, site: DagSite) -> tuple[int, int, str] | None:
        node = site.node
        beside = self.relative == "."  # the DAG file's folder is the notebook's already
        if not isinstance(node, ast.Call):  # a bare @dag: give it arguments
            if beside:
                return None
            end = _offset(code, node.end_lineno, node.end_col_offset)
            return (end, end, f"({self.wrapper_argument()})")
        for kw in node.keywords:
            if kw.arg == _KEYWORD:
                entries = _literal_entries(kw.value)
                if entries is None:
                    return None  # computed when the DAG is parsed: kept as written
                first = [] if beside else [self.entry()]
                text = ", ".join([*first, *(self.entry(e) for e in entries)])
                start = _offset(code, kw.value.lineno, kw.value.col_offset)
                end = _offset(code, kw.value.end_lineno, kw.value.end_col_offset)
                return (start, end, f"[{text}]")
        return None if beside else _add_keyword(code, node, self.wrapper_argument())


def _keyword_in(cell: Cell) -> bool:
    assert cell.tree is not None
    return any(isinstance(n, ast.keyword) and n.arg == _KEYWORD for n in ast.walk(cell.tree))


def _literal_entries(node: ast.expr) -> list[str] | None:
    single = const_str(node, {})
    if single is not None:
        return [single]
    if isinstance(node, ast.List | ast.Tuple):
        entries = [const_str(e, {}) for e in node.elts]
        if all(e is not None for e in entries):
            return [e for e in entries if e is not None]
    return None


def _offset(code: str, line: int | None, col: int | None) -> int:
    """The string index of an ast position (``col`` counts UTF-8 bytes)."""
    lines = code.split("\n")
    assert line is not None and col is not None
    before = sum(len(text) + 1 for text in lines[: line - 1])
    return before + len(lines[line - 1].encode("utf-8")[:col].decode("utf-8"))


def _add_keyword(code: str, call: ast.Call, argument: str) -> tuple[int, int, str]:
    """An edit adding ``argument`` as the last argument of ``call``."""
    close = _offset(code, call.end_lineno, call.end_col_offset) - 1  # the ")"
    args: list[ast.expr] = [*call.args, *(k.value for k in call.keywords)]
    if not args:
        return (close, close, argument)
    last = max(args, key=lambda a: (a.end_lineno or 0, a.end_col_offset or 0))
    after_last = _offset(code, last.end_lineno, last.end_col_offset)
    between = "\n".join(line.split("#")[0] for line in code[after_last:close].split("\n"))
    line_start = code.rfind("\n", 0, close) + 1
    if code[line_start:close].strip():  # "...)" on one line: add ", argument" before ")"
        return (close, close, (" " if "," in between else ", ") + argument)
    # ")" alone on its line, one argument per line: a line of its own, as the last argument.
    end_line = code[code.rfind("\n", 0, after_last) + 1 :]
    indent = end_line[: len(end_line) - len(end_line.lstrip())]
    if "," in between:
        return (line_start, line_start, f"{indent}{argument},\n")
    return (after_last, line_start, f",{code[after_last:line_start]}{indent}{argument},\n")
