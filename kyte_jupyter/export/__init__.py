"""Export a notebook's DAGs to DAG files that a stock Airflow deployment parses unchanged.

One ``.py`` file per DAG, made of (SPEC §5):

* a header naming the source notebook and saying that Kyte wrote the file, so that a later
  export may overwrite it (a file without that header is never overwritten unless forced);
* the code of the cells tagged ``kyte-include`` (shared imports and helpers), in notebook
  order, their leading imports gathered at the top of the file;
* the ``%%dag`` cells of that DAG, in notebook order: a whole-DAG-file cell (``%%dag`` with no
  DAG id) verbatim; the bodies of ``%%dag DAG_ID …`` cells indented inside one
  ``with DAG(...):`` built from the options of all of them, merged as the kernel merges them
  (a later cell's explicit option overrides an earlier one; ``schedule=None`` unless a cell
  sets one; ``--start-date`` becomes a midnight-UTC ``pendulum.datetime``).

A whole-DAG-file cell that defines several DAGs (as some of Airflow's own example files do)
is exported as one file holding all of them, named after the first; ``--dag`` with any of
those ids selects that file. Scratch cells (no tag, not ``%%dag``), markdown and other magics
are left out.

Nothing is written when anything is wrong: every problem is collected into one
:class:`ExportError`, each message naming the cell (numbered from 1 in notebook order,
markdown cells included) and the line in that cell.

One module per stage, as Airflow's ``dag_processing/`` is laid out:

=================  ==========================================================================
``notebook``       reading: the notebook file, and each code cell as what export makes of it
``plan``           planning: which cells make which file, and what blocks each file
``dags``           finding the DAG ids of whole-DAG-file cells without running them
``names``          free names: what each cell binds and uses, and names only scratch cells have
``render``         rendering a file's text (``imports``: its import block, isort's layout)
``templates``      template files next to the notebook, found from the exported file
``paths``          where files go: one check that no write leaves the root, and the writing
``nbconvert``      the nbconvert exporter (``jupyter nbconvert --to kyte_dag``)
=================  ==========================================================================

This package never imports Airflow nor jupyter_server: it reads notebooks with nbformat and
code with :mod:`ast`, so the server extension can call it in its own process.
"""

from __future__ import annotations

import os
from pathlib import Path

from nbformat import NotebookNode

from .common import DEFAULT_OUTPUT_DIR, HEADER_MARK, INCLUDE_TAG, DagFile, ExportError
from .nbconvert import KyteDagExporter
from .notebook import read_notebook
from .paths import (
    OutputPathError,
    atomic_write_text,
    export_root,
    resolve_output_dir,
    resolve_target,
    written_by_kyte,
)
from .plan import build_dag_files
from .templates import TemplateFolder

__all__ = [
    "DEFAULT_OUTPUT_DIR",
    "HEADER_MARK",
    "INCLUDE_TAG",
    "DagFile",
    "ExportError",
    "KyteDagExporter",
    "OutputPathError",
    "build_dag_files",
    "export_dags",
    "export_notebook",
    "read_notebook",
    "resolve_output_dir",
    "resolve_target",
    "written_by_kyte",
]


def export_notebook(
    notebook_path: str | os.PathLike[str],
    dag_id: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
    *,
    root: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Export the DAGs of a notebook to ``<dag_id>.py`` files and return their paths.

    ``dag_id`` exports only the file that defines that DAG. ``output_dir`` defaults to a
    ``dags/`` folder next to the notebook (created if needed). A file that exists but was not
    written by Kyte (no Kyte header) is only overwritten when ``force`` is true.

    Nothing is written outside ``root``, through ``..``, an absolute path or a symbolic link
    (see :func:`resolve_output_dir` for the default root and how ``output_dir`` is taken).

    Raises :class:`ExportError` listing every problem (:class:`OutputPathError` when a path
    leaves the root); in that case nothing is written.
    """
    path = Path(notebook_path)
    nb = read_notebook(path)
    try:
        out = resolve_output_dir(path, output_dir, root)
    except OutputPathError as e:
        raise e.of(path.name) from None
    templates = TemplateFolder.between(path.absolute().parent, out)
    files = build_dag_files(nb, path.name, dag_id=dag_id, templates=templates)
    base = export_root(path, output_dir, root)
    targets = [(out / f.filename, f) for f in files]
    try:
        real = {target: resolve_target(target, base) for target, _ in targets}
    except OutputPathError as e:
        raise e.of(path.name) from None
    problems: list[str] = []
    if out.exists() and not out.is_dir():
        problems.append(f"the output {out} exists and is not a folder; choose another output.")
    else:
        for target, _ in targets:
            if target.is_dir():
                problems.append(f"{target} is a folder; remove it or choose another output.")
            elif target.exists() and not force and not written_by_kyte(target):
                problems.append(
                    f"{target} exists and was not written by Kyte; export would overwrite it. "
                    "Move it away, choose another output folder, or use --force to overwrite it."
                )
    if problems:
        raise ExportError(problems, path.name)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for target, f in targets:
            atomic_write_text(real[target], f.source)
    except OSError as e:
        raise ExportError([f"cannot write to {out}: {e.strerror or e}."], path.name) from e
    return [target for target, _ in targets]


def export_dags(nb: NotebookNode, notebook_name: str, dag_id: str | None = None) -> dict[str, str]:
    """The exported files of a notebook, as ``{file stem: source}``, without writing anything.

    The key is the DAG id the file is named after (the first DAG of a whole-DAG-file cell that
    defines several). Raises :class:`ExportError`.
    """
    return {
        f.filename.removesuffix(".py"): f.source for f in build_dag_files(nb, notebook_name, dag_id)
    }
