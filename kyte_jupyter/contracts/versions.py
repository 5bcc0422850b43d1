"""The DAG version shapes of the REST API: a DAG's versions and the graph of one version.

Airflow 3 records a ``dag_version`` each time a DAG's serialized form changes (Kyte writes
one each time a cell changes a DAG); every DagRun names the version it ran.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, JsonValue

from ._base import Contract
from .graph import GraphSnapshot

_DATE_TIME: dict[str, JsonValue] = {"format": "date-time"}


class DagVersion(Contract):
    """One recorded version of a DAG."""

    number: int = Field(description="The version number (1, 2, …) runs refer to.")
    created_at: str | None = Field(json_schema_extra=_DATE_TIME)


class DagVersionGraph(GraphSnapshot):
    """The graph of one version of a DAG, in the graph snapshot's shape."""

    model_config = ConfigDict(extra="forbid")

    number: int = Field(description="The version number.")
    created_at: str | None = Field(json_schema_extra=_DATE_TIME)
