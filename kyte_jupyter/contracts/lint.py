"""What a static check found (SPEC §8): shown under a ``%%dag`` cell, printed by
``jupyter kyte lint --format json``, kept in the graph snapshot and served with the DAG.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ._base import TolerantContract

#: How bad a finding is: an error refuses the export and fails ``jupyter kyte lint``.
Severity = Literal["error", "warning"]
#: The check that found it (``export`` = a problem the exporter reported).
CheckId = Literal["airflow", "dag", "templates", "sql", "policy", "export"]


class Finding(TolerantContract):
    """One problem found before a run.

    ``cell`` is the notebook cell number (from 1, markdown cells counted, as export numbers
    them) and ``cell_id`` the cell's nbformat id, when known; ``line`` is the line in that cell
    (the ``%%dag`` line is line 1). ``field_line`` is the line within a rendered template field
    or SQL statement. ``rule`` is the rule's code: ruff's (``AIR311``), sqlfluff's (``PRS``),
    the policy function (``dag_policy``) or one of ours (``undefined``, ``missing-template``,
    ``invalid-schedule`` …).
    """

    model_config = ConfigDict(frozen=True)

    severity: Severity
    check: CheckId
    rule: str = Field(examples=["AIR311", "undefined", "task_policy:owner-required"])
    dag_id: str | None
    task_id: str | None = Field(default=None, description="null: about the DAG as a whole.")
    field: str | None = Field(default=None, description="The template field, e.g. sql.")
    message: str
    cell: int | None = None
    cell_id: str | None = None
    line: int | None = None
    field_line: int | None = None

    def where(self) -> str:
        """``cell 3, line 4`` / ``DAG 'etl', task 'load', field 'sql'`` for text output."""
        parts: list[str] = []
        if self.cell is not None:
            parts.append(f"cell {self.cell}" + (f", line {self.line}" if self.line else ""))
        elif self.line is not None:
            parts.append(f"line {self.line}")
        if self.dag_id is not None:
            parts.append(f"DAG {self.dag_id!r}")
        if self.task_id is not None:
            parts.append(f"task {self.task_id!r}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)

    def text(self) -> str:
        """One line: ``error AIR311 cell 2, line 1: message``."""
        return f"{self.severity} {self.rule} {self.where()}: {self.message}"
