"""Lint a notebook file outside a kernel: its DAGs are built as the deployment would build them.

The notebook is read and planned by the export (:func:`kyte_jupyter.export.read_notebook`,
:func:`~kyte_jupyter.export.build_dag_files`); each file it would write is written to a
temporary folder instead and parsed with Airflow's ``DagBag.process_file``, timed, as the DAG
processor parses it. Each DAG found is then linted (:func:`~kyte_jupyter.lint.lint_dag`) with
the cells it came from, and every finding is placed in a notebook cell: exported lines are
matched back to the cells they were copied from. Template files are looked up where the
exported file would live (a ``dags/`` folder next to the notebook), as the deployment will.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nbformat import NotebookNode

from ..bridge import lint as _airflow
from .findings import CellSource, Finding, LintConfig, cell_and_line, sort_findings
from .locate import locate_dag
from .runner import lint_cells, lint_dag


class NotebookLintError(Exception):
    """The notebook cannot be read at all; the message says why."""


@dataclass
class NotebookLint:
    """The findings of one notebook and the DAGs that were linted."""

    notebook: str
    dag_ids: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def notebook_cells(nb: NotebookNode) -> list[CellSource]:
    """The exported cells of a notebook (``%%dag`` cells and ``kyte-include`` cells), as the
    export reads them (:func:`kyte_jupyter.export.notebook.read_cells`)."""
    from ..export.notebook import read_cells

    raw_cells = nb.get("cells", [])
    out: list[CellSource] = []
    for cell in read_cells(nb).cells:
        if cell.kind not in ("include", "file", "grown"):
            continue
        raw = raw_cells[cell.number - 1] if cell.number <= len(raw_cells) else {}
        cell_id = raw.get("id") if hasattr(raw, "get") else None
        out.append(
            CellSource(
                cell.code,
                cell.offset + 1,
                cell.number,
                str(cell_id) if cell_id else None,
                tuple(cell.dag_ids) if cell.kind == "grown" else (),
            )
        )
    return out


class _LineMap:
    """Which cell line each line of an exported file was copied from."""

    def __init__(self, source: str, cells: Sequence[CellSource]) -> None:
        self.lines: dict[int, tuple[CellSource, int]] = {}
        cell_lines: list[tuple[CellSource, int]] = []
        texts: list[str] = []
        for cell in cells:
            for n, text in enumerate(cell.code.split("\n"), start=1):
                cell_lines.append((cell, n))
                texts.append(text.strip())
        file_texts = [t.strip() for t in source.split("\n")]
        matcher = difflib.SequenceMatcher(None, file_texts, texts, autojunk=False)
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                if file_texts[block.a + k]:
                    self.lines[block.a + k + 1] = cell_lines[block.b + k]
        first: dict[str, tuple[CellSource, int]] = {}
        for text, where in zip(texts, cell_lines, strict=True):
            if text:
                first.setdefault(text, where)
        for number, text in enumerate(file_texts, start=1):
            if text and number not in self.lines and text in first:
                self.lines[number] = first[text]  # a hoisted import

    def cells(self) -> list[CellSource]:
        """The cells at least half of whose code lines made it into the file."""
        matched: dict[int, int] = {}
        by_id: dict[int, CellSource] = {}
        for cell, _ in self.lines.values():
            matched[id(cell)] = matched.get(id(cell), 0) + 1
            by_id[id(cell)] = cell
        out = []
        for key, count in matched.items():
            cell = by_id[key]
            code_lines = sum(1 for t in cell.code.split("\n") if t.strip())
            if count * 2 >= code_lines:
                out.append(cell)
        return sorted(out, key=lambda c: c.number or 0)

    def place(self, line: int | None) -> tuple[CellSource | None, int | None]:
        """(cell, cell line) of a line of the exported file."""
        if line is None or line not in self.lines:
            return None, None
        cell, code_line = self.lines[line]
        return cell, cell.cell_line(code_line)


_FILE_LINE = re.compile(r'File "([^"]+)", line (\d+)')


def _import_error_findings(
    dag_ids: Sequence[str], path: Path, error: str, lines: _LineMap, cells: Sequence[CellSource]
) -> Finding:
    """One import error of an exported file as a finding placed in its cell."""
    line = None
    for m in _FILE_LINE.finditer(error):
        if os.path.realpath(m.group(1)) == os.path.realpath(path):
            line = int(m.group(2))
    last = [t for t in error.strip().split("\n") if t.strip()]
    message = last[-1].strip() if last else error
    message = message.replace(str(path), path.name)
    if "DagBag import timeout" in error or "AirflowTaskTimeout" in message:
        rule = "import-timeout"
        message = (
            f"the exported file's top-level code ran longer than [core] dagbag_import_timeout "
            f"({_airflow.dagbag_import_timeout(str(path)):g}s): {message}"
        )
    elif "AirflowTimetableInvalid" in message:
        rule = "invalid-schedule"
    elif "AirflowClusterPolicy" in message:
        rule = "deployment-policy"
    else:
        rule = "import-error"
    cell, cell_line = lines.place(line)
    dag_id = dag_ids[0] if len(dag_ids) == 1 else None
    if cell is None and dag_id is not None:
        cell, cell_line = locate_dag(cells, dag_id)
    return Finding(
        severity="error",
        check="dag",
        rule=rule,
        dag_id=dag_id,
        message=f"Airflow cannot load the exported DAG file: {message}",
        cell=cell.number if cell else None,
        cell_id=cell.cell_id if cell else None,
        line=cell_line,
    )


_NO_DAG = "defines no DAG that Kyte can find"


def _raising_cells(
    problems: Sequence[str], cells: Sequence[CellSource], scratch: Path
) -> dict[int, Finding]:
    """Cells the export finds no DAG in that raise when run: their exception, as a finding.

    A cell whose code raises before (or instead of) making its DAG is reported by the export
    plan as defining no DAG; running it (after the ``kyte-include`` cells, as the exported
    file would) through Airflow's DagBag shows the error the user must fix.
    """
    numbers = {n for p in problems if _NO_DAG in p for n, _ in [cell_and_line(p)] if n}
    includes = [c for c in cells if c.first_line == 1]
    out: dict[int, Finding] = {}
    for cell in cells:
        if cell.number not in numbers:
            continue
        source = "\n".join(c.code for c in [*includes, cell])
        target = scratch / f"kyte_lint_cell_{cell.number}.py"
        target.write_text(source, encoding="utf-8")
        loaded = _airflow.load_dag_file(target)
        for error in loaded.errors.values():
            found = _import_error_findings([], target, error, _LineMap(source, cells), [cell])
            out[cell.number] = found.model_copy(update={
                "cell": cell.number, "cell_id": cell.cell_id, "line": found.line,
                "message": found.message.replace(
                    "Airflow cannot load the exported DAG file",
                    "this %%dag cell raises when run, so it defines no DAG"),
            })
    return out


def lint_notebook(
    notebook_path: str | os.PathLike[str],
    config: LintConfig | None = None,
    dag_id: str | None = None,
) -> NotebookLint:
    """Lint every DAG of a notebook (or only ``dag_id``) as it would be exported and deployed.

    Raises :class:`NotebookLintError` if the notebook cannot be read. Problems that stop the
    export itself are findings of check ``export``.
    """
    from ..export import DEFAULT_OUTPUT_DIR, ExportError, build_dag_files, read_notebook
    from ..export.templates import TemplateFolder

    config = config or LintConfig()
    path = Path(notebook_path)
    try:
        nb = read_notebook(path)
    except ExportError as e:
        raise NotebookLintError("; ".join(e.problems)) from e
    result = NotebookLint(path.name)
    cells = notebook_cells(nb)
    scratch = tempfile.TemporaryDirectory(prefix="kyte-lint-")
    # Render as if written to the scratch folder, so template files next to the notebook are
    # found from there, as they are from the real export folder.
    templates = TemplateFolder.between(path.parent.resolve(), Path(scratch.name).resolve())
    try:
        files = build_dag_files(nb, path.name, dag_id=dag_id, templates=templates)
    except ExportError as e:
        raised = _raising_cells(e.problems, cells, Path(scratch.name))
        scratch.cleanup()
        for problem in e.problems:
            number, line = cell_and_line(problem)
            if number in raised:  # its exception says more than "defines no DAG"
                result.findings.append(raised[number])
                continue
            result.findings.append(
                Finding(
                    severity="error",
                    check="export",
                    rule="export",
                    dag_id=None,
                    # The cell and line are fields of the finding: not again in the text.
                    message=re.sub(r"^cell \d+(, line \d+)?: ", "", problem),
                    cell=number,
                    line=line,
                )
            )
        result.findings += lint_cells(cells, config)
        result.findings = sort_findings(result.findings)
        return result

    deploy_folder = (path.parent / DEFAULT_OUTPUT_DIR).resolve()
    includes = [c for c in cells if c.first_line == 1]  # kyte-include cells start at line 1
    cell_dags: dict[int, list[str]] = {}
    with scratch as tmp:
        for dag_file in files:
            target = Path(tmp) / dag_file.filename
            target.write_text(dag_file.source, encoding="utf-8")
            lines = _LineMap(dag_file.source, cells)
            own = [
                c
                for c in lines.cells()
                if c.first_line > 1 and (not c.dag_ids or set(c.dag_ids) & set(dag_file.dag_ids))
            ]
            unit = [*own, *includes]
            for c in own:
                owned_ids = cell_dags.setdefault(id(c), [])
                owned_ids.extend(d for d in dag_file.dag_ids if d not in owned_ids)
            loaded = _airflow.load_dag_file(target)
            for error in loaded.errors.values():
                result.findings.append(
                    _import_error_findings(dag_file.dag_ids, target, error, lines, unit)
                )
            for dag in loaded.dags.values():
                dag.fileloc = str(deploy_folder / dag_file.filename)
                result.dag_ids.append(dag.dag_id)
                result.findings += lint_dag(
                    dag,
                    unit,
                    config,
                    parse_seconds=loaded.seconds if len(loaded.dags) == 1 else None,
                    with_cells=False,
                )
    for cell in cells:
        ids: tuple[str, ...] = cell.dag_ids or tuple(cell_dags.get(id(cell), ()))
        placed = dataclasses.replace(cell, dag_ids=tuple(ids))
        result.findings += lint_cells([placed], config, ids[0] if len(ids) == 1 else None)
    result.findings = sort_findings(result.findings)
    return result
