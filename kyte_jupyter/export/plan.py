"""Stage 2, planning: which cells make which file, and everything that blocks a file.

A file (a :class:`Unit`) is a whole-DAG-file cell, or all ``%%dag DAG_ID`` cells of one DAG.
Planning finds the DAG ids of whole-DAG-file cells statically (:mod:`.dags`), refuses DAGs
defined twice, ids that cannot be file names, shared cells that create DAGs, and then has each
chosen file's names checked (:mod:`.names`) and rendered (:mod:`.render`). Every problem is
collected; :func:`build_dag_files` raises them all at once, in cell order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from nbformat import NotebookNode

from .common import INCLUDE_TAG, DagFile, ExportError, in_cell_order, unique
from .dags import dag_aliases, find_dags, string_constants
from .names import check_names
from .notebook import Cell, Cells, read_cells
from .render import render_file
from .templates import TemplateFolder

_SAFE_FILE_STEM = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass
class Unit:
    """What becomes one file: a whole-DAG-file cell, or all cells of one grown DAG."""

    dag_ids: list[str]
    cells: list[Cell]
    grown: bool
    problems: list[str] = field(default_factory=list)

    @property
    def first(self) -> int:
        """The number of the unit's first cell (files are ordered by it)."""
        return self.cells[0].number


def build_dag_files(
    nb: NotebookNode,
    notebook_name: str,
    dag_id: str | None = None,
    *,
    templates: TemplateFolder | None = None,
) -> list[DagFile]:
    """Plan and render the DAG files of a notebook, in notebook order of their first cell.

    ``notebook_name`` is what the header calls the notebook. With ``dag_id``, only the file
    defining that DAG. ``templates`` says where the notebook's folder is from the output
    folder, so DAGs using template files next to the notebook still find them
    (:mod:`.templates`); without it, files are rendered as if written next to the notebook.
    Raises :class:`ExportError` listing every problem found.
    """
    cells = read_cells(nb)
    units = _units(cells)
    general = cells.general
    if dag_id is not None:
        chosen = [u for u in units if dag_id in u.dag_ids]
        if not chosen and not general:
            known = [d for u in units for d in u.dag_ids]
            have = ", ".join(repr(d) for d in known) if known else "none"
            general.append(f"there is no DAG {dag_id!r} in this notebook (DAGs found: {have}).")
    else:
        chosen = units
        if not units and not general:
            general.append(
                "this notebook defines no DAG: add a `%%dag` cell, for example "
                "`%%dag my_dag --schedule @daily` followed by your tasks."
            )
    problems = list(general)
    files: list[DagFile] = []
    for unit in chosen:
        problems.extend(unit.problems)
        if unit.problems or general:
            continue
        source, unit_problems = _render(cells, unit, notebook_name, templates)
        problems.extend(unit_problems)
        if not unit_problems:
            files.append(DagFile(f"{unit.dag_ids[0]}.py", tuple(unit.dag_ids), source))
    if problems:
        raise ExportError(in_cell_order(unique(problems)), notebook_name)
    return files


def _units(cells: Cells) -> list[Unit]:
    """Group the cells into files; adds to ``cells.general`` what blocks every file."""
    general = cells.general
    includes = [c.tree for c in cells.includes if c.tree is not None]
    constants = string_constants(includes)
    aliases = dag_aliases(includes)
    for cell in cells.includes:
        if cell.tree is None:
            continue
        for site in find_dags(cell.tree, constants, aliases)[0]:
            label = repr(site.dag_id) if site.dag_id else "a DAG"
            general.append(
                f"{cell.where(site.line)}: this `{INCLUDE_TAG}` cell creates {label}; it "
                f"would be copied into every exported file. Move the DAG into a %%dag cell."
            )
    units: list[Unit] = []
    file_owner: dict[str, Cell] = {}
    grown: dict[str, Unit] = {}
    for cell in cells.cells:
        if cell.kind == "grown":
            dag_id = cell.dag_ids[0]
            unit = grown.get(dag_id)
            if unit is None:
                unit = grown[dag_id] = Unit([dag_id], [], grown=True)
                unit.problems.extend(cells.grown_problems.get(dag_id, []))
                units.append(unit)
            unit.cells.append(cell)
        elif cell.kind == "file" and cell.tree is not None and cell.tree.body:
            sites, problems = find_dags(
                cell.tree,
                string_constants([cell.tree], constants),
                aliases | dag_aliases([cell.tree]),
            )
            general.extend(f"{cell.where(line)}: {msg}" for line, msg in problems)
            if not sites and not problems:
                general.append(
                    f"{cell.where()}: this %%dag cell defines no DAG that Kyte can find. "
                    'Create it with `with DAG("my_dag", ...):` or a called `@dag` function, '
                    "or write `%%dag my_dag` on the first line to add tasks to `my_dag`."
                )
            cell.dag_ids = unique(s.dag_id for s in sites)
            for dag_id in cell.dag_ids:
                other = file_owner.setdefault(dag_id, cell)
                if other is not cell:
                    general.append(
                        f"{cell.where()}: DAG {dag_id!r} is also defined by cell "
                        f"{other.number}; keep one of the two cells (delete or rename the "
                        "other) so the export knows which one you mean."
                    )
            if cell.dag_ids:
                units.append(Unit(cell.dag_ids, [cell], grown=False))
    for dag_id, unit in grown.items():
        owner = file_owner.get(dag_id)
        if owner is not None:
            numbers = ", ".join(str(c.number) for c in unit.cells)
            general.append(
                f"DAG {dag_id!r} is defined by the whole-DAG-file cell {owner.number} and "
                f"grown by `%%dag {dag_id}` cells ({numbers}); give one of them another id."
            )
    _check_file_names(units)
    units.sort(key=lambda u: u.first)
    return units


def _check_file_names(units: list[Unit]) -> None:
    stems: dict[str, Unit] = {}
    for unit in units:
        same = stems.setdefault(unit.dag_ids[0].lower(), unit)
        if same is not unit and same.dag_ids[0] != unit.dag_ids[0]:
            unit.problems.append(
                f"cell {unit.first}: DAG {unit.dag_ids[0]!r} and DAG {same.dag_ids[0]!r} "
                "differ only in case, so their files would collide on some systems; "
                "rename one of them."
            )
        for dag_id in unit.dag_ids:
            if not _SAFE_FILE_STEM.match(dag_id):
                unit.problems.append(
                    f"cell {unit.first}: DAG id {dag_id!r} cannot be a file name; use "
                    "letters, digits, '_', '-' and '.' (as Airflow requires)."
                )


def _render(
    cells: Cells, unit: Unit, notebook_name: str, templates: TemplateFolder | None
) -> tuple[str, list[str]]:
    """The file's source, or the problems that keep it from being written."""
    includes = cells.includes
    problems = check_names([*includes, *unit.cells], cells.cells, unit.dag_ids, unit.grown)
    if problems:
        return "", problems
    if templates is not None and templates.needed([*includes, *unit.cells]):
        if not unit.grown:
            trees = [c.tree for c in includes if c.tree is not None]
            aliases, constants = dag_aliases(trees), string_constants(trees)
            rewritten = [templates.rewrite(c, aliases, constants) for c in unit.cells]
            unit = replace(unit, cells=rewritten)
    else:
        templates = None
    source = render_file(notebook_name, unit, includes, templates)
    try:
        compile(source, f"{unit.dag_ids[0]}.py", "exec", dont_inherit=True)
    except SyntaxError as e:
        return "", [
            f"the exported file for DAG {unit.dag_ids[0]!r} does not compile "
            f"(line {e.lineno}: {e.msg}); this is a bug in Kyte, please report it."
        ]
    return source, []
