"""The run summary the magics emit as JSON next to their HTML/text summary (PLAN.md).

``%run_task``, ``%run_dag`` (and ``%%scenario``) display it under :data:`RUN_SUMMARY_MIME`;
the front end reads only this, never a Python repr.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Contract, State

#: The MIME type of a run summary in a display output's data bundle.
RUN_SUMMARY_MIME = "application/vnd.kyte.run-summary+json"


class RunTaskInstance(Contract):
    """One task instance of a run summary."""

    key: str = Field(description="task_id, or task_id[i] for a mapped instance.")
    task_id: str
    map_index: int = Field(description="-1 when not mapped.")
    state: State
    try_number: int
    duration_s: float | None = None
    forced: str | None = Field(
        default=None,
        description="The forced outcome (fail, fail-once, skip, succeed, timeout, branch, "
        "xcom) when the user forced it, else null.",
    )
    error: str | None = Field(
        default=None, description="The error in one line, secrets masked; null if none."
    )


class RunSummary(Contract):
    """What a ``%run_task`` / ``%run_dag`` / ``%%scenario`` did."""

    version: Literal[1] = 1
    magic: Literal["run_task", "run_dag", "scenario"]
    dag_id: str
    run_id: str | None = Field(description="Null when nothing ran.")
    state: State = Field(description="Outcome of what was asked (SPEC section 2).")
    run_state: State = Field(description="The DagRun's own state, or null.")
    duration_s: float
    task_instances: list[RunTaskInstance] = Field(default_factory=list)
    failed: list[str] = Field(
        default_factory=list, description="Keys of task instances failed or upstream_failed."
    )
