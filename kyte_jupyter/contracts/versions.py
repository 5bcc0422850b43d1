"""The DAG version shapes of the REST API: a DAG's versions, the graph of one version and
the difference between two versions.

Airflow 3 records a ``dag_version`` each time a DAG's serialized form changes (Kyte writes
one each time a cell changes a DAG); every DagRun names the version it ran.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, JsonValue

from ._base import Contract
from .graph import GraphNode, GraphSnapshot, TaskGroup

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


#: How a task or an edge differs from one version to the other.
Change = Literal["added", "removed", "changed", "unchanged"]


class ArgumentChange(Contract):
    """One operator argument of a task that differs between two versions."""

    name: str = Field(description="The argument, as Airflow serializes it (e.g. retries).")
    old: Any = Field(description="Its value (JSON) in the older version; null = the default.")
    new: Any = Field(description="Its value (JSON) in the newer version; null = the default.")


class DiffNode(GraphNode):
    """A task of either version, with how it changed (its fields from the newer version,
    or from the older one for a removed task)."""

    model_config = ConfigDict(extra="forbid")

    change: Change
    arguments: list[ArgumentChange] = Field(
        default_factory=list, description="The arguments that differ (only when changed)."
    )


class DiffEdge(Contract):
    """An edge of either version, with how it changed."""

    source: str = Field(description="Upstream task id.")
    target: str = Field(description="Downstream task id.")
    change: Literal["added", "removed", "unchanged"]


class DagVersionDiff(Contract):
    """What changed from one version of a DAG to another, as ``%dag_diff`` shows it: the
    union of both versions' graphs, each task and edge marked, and the code diff."""

    dag_id: str
    old: int = Field(description="The older version's number.")
    new: int = Field(description="The newer version's number.")
    nodes: list[DiffNode]
    edges: list[DiffEdge]
    task_groups: list[TaskGroup] = Field(description="The task groups of either version.")
    code_diff: str = Field(description="Unified diff of the stored source; '' when the same.")
