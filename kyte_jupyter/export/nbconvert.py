"""Stage 5, nbconvert: ``jupyter nbconvert --to kyte_dag NOTEBOOK``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nbconvert.exporters import Exporter
from nbconvert.utils.exceptions import ConversionException
from nbformat import NotebookNode
from traitlets import Unicode, default

from .common import ExportError
from .paths import OutputPathError, resolve_output_dir, resolve_target
from .plan import build_dag_files
from .templates import TemplateFolder


class KyteDagExporter(Exporter):
    """nbconvert exporter: ``jupyter nbconvert --to kyte_dag NOTEBOOK``.

    Writes every DAG file of the notebook (one per DAG) into nbconvert's output folder (by
    nbconvert's convention, next to the notebook unless ``--output-dir`` says otherwise), each
    named ``<dag_id>.py``. ``--KyteDagExporter.dag_id=ID`` exports only the DAG ``ID``. The
    main output (what ``--stdout`` prints) is the first DAG file; the others travel as extra
    output files. Unlike ``jupyter kyte export``, nbconvert overwrites existing files.

    Every file nbconvert's writer would write is checked first, as ``jupyter kyte export``
    checks its own (:func:`~kyte_jupyter.export.paths.resolve_target`): none may land outside
    ``--KyteDagExporter.root`` (default: the output folder), not even through a symbolic link.
    """

    export_from_notebook = "Airflow DAG (Kyte)"
    output_mimetype = "text/x-python"

    dag_id = Unicode(
        None, allow_none=True, help="Export only this DAG (default: every DAG of the notebook)."
    ).tag(config=True)

    root = Unicode(
        "",
        help=(
            "Write nothing outside this folder, not even through a symbolic link (default: "
            "the output folder: --output-dir, else the notebook's folder)."
        ),
    ).tag(config=True)

    def __init__(self, config: Any = None, **kw: Any) -> None:
        """Create the exporter; ``dag_id=...`` selects one DAG, like the config option."""
        super().__init__(config=config, **kw)  # type: ignore[no-untyped-call]

    @default("file_extension")
    def _file_extension_default(self) -> str:
        return ".py"

    def from_notebook_node(  # type: ignore[override]
        self, nb: NotebookNode, resources: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[str, dict[str, Any]]:
        """Render the notebook's DAG files; raise ``ConversionException`` on any problem."""
        nb_copy, res = super().from_notebook_node(nb, resources, **kw)
        name = str(res.get("metadata", {}).get("name") or "notebook")
        meta = res.get("metadata", {})
        folder = self._output_folder(res)
        templates = None
        if "path" in meta:  # from_filename knows the notebook's folder ("" = the working dir)
            templates = TemplateFolder.between(Path(meta["path"] or os.curdir), folder)
        try:
            files = build_dag_files(
                nb_copy, name + ".ipynb", dag_id=self.dag_id, templates=templates
            )
        except ExportError as e:
            raise ConversionException(str(e)) from e
        first, rest = files[0], files[1:]
        # nbconvert names the main output after the notebook unless --output was given.
        if res.get("unique_key") in (None, name):
            res["unique_key"] = first.filename.removesuffix(".py")
        outputs = res.setdefault("outputs", {})
        if rest:
            res["output_files_dir"] = os.curdir  # what nbconvert logs as "support files" folder
        for f in rest:
            # "./" because nbconvert's writer makes the parent folder of each extra output.
            outputs[os.path.join(os.curdir, f.filename)] = f.source.encode("utf-8")
        if self._writes_files():
            names = [res["unique_key"] + ".py", *(f.filename for f in rest)]
            self._check_targets(folder, name + ".ipynb", names)
        return first.source, res

    def _writes_files(self) -> bool:
        """Whether nbconvert's writer writes files (not ``--stdout``, not the debug writer)."""
        writer = str(self.config.get("NbConvertApp", {}).get("writer_class", "FilesWriter"))
        return not any(word in writer.lower() for word in ("stdout", "debug"))

    def _output_folder(self, res: dict[str, Any]) -> Path:
        """The folder nbconvert's FilesWriter writes into, absolute."""
        # FilesWriter's own rule: --output-dir (build_directory), else the notebook's folder.
        build = self.config.get("FilesWriter", {}).get("build_directory") or ""
        return Path(build or res.get("metadata", {}).get("path") or os.curdir).absolute()

    def _check_targets(self, folder: Path, notebook: str, names: list[str]) -> None:
        """Refuse outputs that nbconvert's FilesWriter would write outside the root."""
        root = Path(self.root).absolute() if self.root else folder
        try:
            resolve_output_dir(folder / "notebook.ipynb", folder, root)
            for name in names:
                resolve_target(folder / name, root)
        except OutputPathError as e:
            raise ConversionException(str(e.of(notebook))) from e
