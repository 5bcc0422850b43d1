"""Stage 5, nbconvert: ``jupyter nbconvert --to kyte_dag NOTEBOOK``."""

from __future__ import annotations

import os
from typing import Any

from nbconvert.exporters import Exporter
from nbconvert.utils.exceptions import ConversionException
from nbformat import NotebookNode
from traitlets import Unicode, default

from .common import ExportError
from .plan import build_dag_files


class KyteDagExporter(Exporter):
    """nbconvert exporter: ``jupyter nbconvert --to kyte_dag NOTEBOOK``.

    Writes every DAG file of the notebook (one per DAG) into nbconvert's output folder (by
    nbconvert's convention, next to the notebook unless ``--output-dir`` says otherwise), each
    named ``<dag_id>.py``. ``--KyteDagExporter.dag_id=ID`` exports only the DAG ``ID``. The
    main output (what ``--stdout`` prints) is the first DAG file; the others travel as extra
    output files. Unlike ``jupyter kyte export``, nbconvert overwrites existing files.
    """

    export_from_notebook = "Airflow DAG (Kyte)"
    output_mimetype = "text/x-python"

    dag_id = Unicode(
        None, allow_none=True, help="Export only this DAG (default: every DAG of the notebook)."
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
        try:
            files = build_dag_files(nb_copy, name + ".ipynb", dag_id=self.dag_id)
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
        return first.source, res
