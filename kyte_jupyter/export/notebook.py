"""Stage 1, reading: the notebook file, and each code cell as what export makes of it.

A code cell is one of: shared code (tagged ``kyte-include``), a whole-DAG-file cell (``%%dag``
with no DAG id), a cell growing a DAG (``%%dag DAG_ID``), another magic, or a scratch cell.
Exported cells are compiled and their module-level names collected; scratch cells and other
magics only have their names collected (best effort), so a DAG cell using a name that only
they define can be reported.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nbformat
from IPython.core.error import UsageError
from nbformat import NotebookNode

from ..cellspec import DagCellOptions, parse_dag_line, split_magic_cell
from .common import INCLUDE_TAG, ExportError
from .names import Names, module_names

Kind = Literal["include", "file", "grown", "scratch", "magic"]


@dataclass
class Cell:
    """One code cell of the notebook, as export sees it."""

    number: int  # from 1, in notebook order, markdown cells included
    kind: Kind
    code: str
    offset: int  # line of the cell = line of ``code`` + offset
    magic: str | None = None
    options: DagCellOptions | None = None
    tree: ast.Module | None = None  # exported cells that compile
    names: Names = field(default_factory=Names)
    dag_ids: list[str] = field(default_factory=list)

    def where(self, line: int | None = None) -> str:
        """``cell N`` or ``cell N, line L`` (``line`` counted in ``code``)."""
        if line is None:
            return f"cell {self.number}"
        return f"cell {self.number}, line {line + self.offset}"

    def describe(self) -> str:
        """The cell and what it is, for messages naming where a name is defined."""
        if self.kind == "grown" or (self.kind == "file" and self.dag_ids):
            ids = ", ".join(repr(d) for d in self.dag_ids)
            return f"cell {self.number} (DAG {ids})"
        if self.kind == "magic":
            return f"cell {self.number} (a %%{self.magic} cell)"
        return f"cell {self.number} (a scratch cell)"


@dataclass
class Cells:
    """The code cells of a notebook and the problems found while reading them."""

    cells: list[Cell] = field(default_factory=list)
    # Problems that may concern any DAG (we cannot tell which): they block every export.
    general: list[str] = field(default_factory=list)
    # Problems in `%%dag DAG_ID` cells: they block the export of that DAG only.
    grown_problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def includes(self) -> list[Cell]:
        """The cells tagged ``kyte-include``, in notebook order."""
        return [c for c in self.cells if c.kind == "include"]


def read_notebook(path: Path) -> NotebookNode:
    """Read a notebook file, or raise :class:`ExportError` saying why it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExportError([f"there is no notebook at {path}."], path.name) from None
    except IsADirectoryError:
        raise ExportError([f"{path} is a folder, not a notebook."], path.name) from None
    except OSError as e:
        raise ExportError([f"cannot read {path}: {e.strerror or e}."], path.name) from e
    except UnicodeDecodeError:
        raise ExportError([f"{path} is not a notebook (not UTF-8 text)."], path.name) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        why = f"not JSON: {e.msg} at line {e.lineno}, column {e.colno}"
        raise ExportError([_invalid(path, why)], path.name) from None
    # Checked before nbformat (whose errors are less clear) and after it (it converts).
    problem = _structure_problem(raw)
    if problem is not None:
        raise ExportError([_invalid(path, problem)], path.name)
    try:
        nb: NotebookNode = nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]
    except Exception as e:  # nbformat raises reader, version and conversion errors
        raise ExportError([_invalid(path, str(e))], path.name) from e
    problem = _structure_problem(nb)
    if problem is not None:
        raise ExportError([_invalid(path, problem)], path.name)
    return nb


def _invalid(path: Path, why: str) -> str:
    why = why.strip().splitlines()[0] if why.strip() else "unknown error"
    return f"{path} is not a valid Jupyter notebook ({why}). Open it in Jupyter to repair it."


def _structure_problem(nb: Any) -> str | None:
    """What makes a notebook unusable for export (a lenient check: Jupyter opens notebooks
    with small schema slips, and so does export)."""
    if not isinstance(nb, dict):
        return "it is not a JSON object"
    if not isinstance(nb.get("nbformat"), int):
        return "it has no nbformat version"
    if nb["nbformat"] < 4:
        return None  # older notebooks keep cells in worksheets; nbformat converts them
    if not isinstance(nb.get("cells"), list):
        return "it has no list of cells"
    for number, cell in enumerate(nb["cells"], start=1):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            return f"cell {number} has no cell type"
        source = cell.get("source", "")
        if not isinstance(source, str) and not (
            isinstance(source, list) and all(isinstance(s, str) for s in source)
        ):
            return f"cell {number} has no text source"
        metadata = cell.get("metadata", {})
        if not isinstance(metadata, dict) or not isinstance(metadata.get("tags", []), list):
            return f"cell {number} has malformed metadata"
    return None


def read_cells(nb: NotebookNode) -> Cells:
    """Classify and parse the code cells of a notebook."""
    out = Cells()
    for index, raw in enumerate(nb.get("cells", [])):
        if raw.get("cell_type") == "code":
            cell = _read_cell(out, index + 1, raw)
            if cell is not None:
                out.cells.append(cell)
    return out


def _read_cell(out: Cells, number: int, raw: Any) -> Cell | None:
    source = _text(raw.get("source", ""))
    tags = raw.get("metadata", {}).get("tags", []) or []
    magic = split_magic_cell(source)
    if magic is None:
        if INCLUDE_TAG in tags:
            return _parsed(out, Cell(number, "include", source, 0))
        return _scratch(Cell(number, "scratch", source, 0))
    name, line, body = magic
    offset = len(source) - len(source.lstrip("\n")) + 1
    if name != "dag":
        cell = Cell(number, "magic", body, offset, magic=name)
        if INCLUDE_TAG in tags:
            out.general.append(
                f"{cell.where()}: it is tagged `{INCLUDE_TAG}` but is a %%{name} cell, "
                f"which a DAG file cannot contain. Remove the tag or the %%{name} line."
            )
        return _scratch(cell)
    if not body.strip():
        # The kernel refuses an empty %%dag cell, so it contributes nothing.
        return Cell(number, "magic", body, offset, magic=name)
    try:
        options = parse_dag_line(line)
    except UsageError as e:
        out.general.append(f"cell {number}, line {offset}: {e}")
        return None
    if options.dag_id is None:
        return _parsed(out, Cell(number, "file", body, offset, magic="dag", options=options))
    cell = Cell(number, "grown", body, offset, magic="dag", options=options)
    cell.dag_ids = [options.dag_id]
    return _parsed(out, cell)


def _parsed(out: Cells, cell: Cell) -> Cell:
    """An exported cell, compiled; a cell that does not compile is a problem."""
    problem = _compile_problem(cell)
    if problem is None:
        cell.tree = ast.parse(cell.code)
        cell.names = module_names(cell.tree)
    elif cell.kind == "grown":
        out.grown_problems.setdefault(cell.dag_ids[0], []).append(problem)
    else:
        out.general.append(problem)
    return cell


def _scratch(cell: Cell) -> Cell:
    """Best effort: which names a cell that is not exported defines (IPython syntax ok)."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        manager = TransformerManager()  # type: ignore[no-untyped-call]
        tree = ast.parse(manager.transform_cell(cell.code))
    except (SyntaxError, ValueError):
        return cell
    cell.names = module_names(tree)
    return cell


def _compile_problem(cell: Cell) -> str | None:
    """Why a cell's code cannot go into a DAG file, or None."""
    try:
        compile(cell.code, f"<cell {cell.number}>", "exec", dont_inherit=True)
    except SyntaxError as e:
        line = e.lineno or 1
        text = cell.code.split("\n")[line - 1] if line <= cell.code.count("\n") + 1 else ""
        if _looks_like_ipython(text):
            what = "another cell" if cell.kind != "include" else f"a cell without `{INCLUDE_TAG}`"
            return (
                f"{cell.where(line)}: `{text.strip()}` is IPython syntax (a magic or shell "
                f"command), which a DAG file cannot contain; move it to {what}."
            )
        return f"{cell.where(line)}: {type(e).__name__}: {e.msg}; fix the cell and export again."
    except ValueError as e:  # e.g. null bytes in the source
        return f"{cell.where()}: cannot be compiled ({e})."
    return None


def _looks_like_ipython(line: str) -> bool:
    s = line.strip()
    return (
        s.startswith(("%", "!"))
        or s.endswith("?")
        or re.match(r"^[\w.,\s\[\]]+=\s*[%!]", s) is not None
    )


def _text(source: Any) -> str:
    text = "".join(source) if isinstance(source, list) else str(source)
    return text.replace("\r\n", "\n").replace("\r", "\n")
