"""The graph snapshot a kernel writes to ``kyte/graphs/<dag_id>.json`` (docs/design.md).

Written atomically by the kernel each time a DAG's definition changes, deleted when the DAG
disappears; read by the server (and so the sidebar) without Airflow.
"""

from __future__ import annotations

from pydantic import Field

from ._base import TolerantContract
from .lint import Finding


class GraphNode(TolerantContract):
    """One task of a DAG's graph."""

    task_id: str = Field(description="Full task id (with its task group prefix).")
    label: str = Field(description="What to show: the task id without its group prefix.")
    operator: str | None = Field(default=None, description="Operator class name.")
    task_group: str | None = Field(default=None, description="Innermost task group id.")
    is_mapped: bool = False
    is_setup: bool = False
    is_teardown: bool = False
    trigger_rule: str = "all_success"


class TaskGroup(TolerantContract):
    """A task group of a DAG's graph (the root group is not listed)."""

    group_id: str
    parent: str | None = Field(default=None, description="Enclosing group id, null at top.")
    label: str


class GraphSnapshot(TolerantContract):
    """What ``kyte/graphs/<dag_id>.json`` holds."""

    dag_id: str
    description: str | None = None
    schedule: str | None = Field(default=None, description="Timetable summary, e.g. @daily.")
    fileloc: str | None = Field(default=None, description="Notebook or DAG file path.")
    nodes: list[GraphNode]
    edges: list[tuple[str, str]] = Field(
        default_factory=list, description="[upstream task_id, downstream task_id] pairs."
    )
    task_groups: list[TaskGroup] = Field(default_factory=list)
    updated: str | None = Field(default=None, description="ISO 8601 time of the last write.")
    warnings: list[str] = Field(
        default_factory=list,
        description=(
            "Disagreements between kernel and notebook the user should see (e.g. a deleted "
            "cell's tasks were dropped); shown in the sidebar's DAG header and by %kyte."
        ),
    )
    findings: list[Finding] = Field(
        default_factory=list,
        description=(
            "The DAG's static-check findings from its last lint in the kernel (after its "
            "%%dag cell, %lint, or the SQL check finishing in the background); [] when clean."
        ),
    )
