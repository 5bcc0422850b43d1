"""One definition of every shape that crosses a boundary of Kyte (issue 14.1).

* :mod:`.graph` — the graph snapshot a kernel writes to ``kyte/graphs/<dag_id>.json``;
* :mod:`.lint` — a static check's finding (in the snapshot, the REST reply, the CLI's JSON);
* :mod:`.run` — the run summary JSON the magics emit (MIME :data:`RUN_SUMMARY_MIME`);
* :mod:`.rest` — the replies of the server's REST API;
* :mod:`.openapi` — JSON Schemas of all of them, the ``components/schemas`` of
  ``docs/openapi.yaml`` (the front end generates its TypeScript types from that document).

Pydantic v2 models only: this package imports neither Airflow nor jupyter_server, so the
kernel, the server and the tests can all use it. Shapes are extended only by adding fields.
"""

from __future__ import annotations

from .graph import GraphNode, GraphSnapshot, TaskGroup
from .lint import Finding
from .run import RUN_SUMMARY_MIME, RunSummary, RunTaskInstance

__all__ = [
    "RUN_SUMMARY_MIME",
    "Finding",
    "GraphNode",
    "GraphSnapshot",
    "RunSummary",
    "RunTaskInstance",
    "TaskGroup",
]
