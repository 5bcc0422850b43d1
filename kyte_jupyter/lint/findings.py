"""The shapes of static checks: what a check found, where the code came from, and the settings.

:class:`Finding` is defined in :mod:`kyte_jupyter.contracts.lint` (it crosses boundaries: the
graph snapshot, the REST reply, the CLI's JSON) and re-exported here. None of these import
Airflow or jupyter_server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..contracts.lint import CheckId, Finding, Severity

__all__ = [
    "CHECKS",
    "CellSource",
    "DEFAULT_DIALECTS",
    "CheckId",
    "Finding",
    "LintConfig",
    "Severity",
    "cell_and_line",
    "has_errors",
    "sort_findings",
]

CHECKS: tuple[CheckId, ...] = ("airflow", "dag", "templates", "sql", "policy")
"""The checks a user can turn off by name (``export`` problems are the exporter's, not ours)."""


@dataclass(frozen=True)
class CellSource:
    """The code of one exported cell and where it sits in the notebook.

    ``code`` is what Python runs (for a ``%%dag`` cell, the body below the magic line) and
    ``first_line`` the cell line of its first line (2 for a ``%%dag`` cell), so a line ``n`` of
    ``code`` is line ``n + first_line - 1`` of the cell.
    """

    code: str
    first_line: int = 1
    number: int | None = None
    cell_id: str | None = None
    dag_ids: tuple[str, ...] = ()

    def cell_line(self, code_line: int | None) -> int | None:
        """The cell line of a line of ``code``."""
        return None if code_line is None else code_line + self.first_line - 1


DEFAULT_DIALECTS: Mapping[str, str] = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "sqlite": "sqlite",
    "snowflake": "snowflake",
    "google_cloud_platform": "bigquery",
    "gcpbigquery": "bigquery",
    "bigquery": "bigquery",
    "mssql": "tsql",
    "oracle": "oracle",
    "redshift": "redshift",
    "trino": "trino",
    "presto": "trino",
    "athena": "athena",
    "aws": "athena",
    "spark_sql": "sparksql",
    "spark": "sparksql",
    "databricks": "databricks",
    "hive_cli": "hive",
    "hiveserver2": "hive",
    "impala": "impala",
    "vertica": "vertica",
    "teradata": "teradata",
    "exasol": "exasol",
    "duckdb": "duckdb",
    "clickhouse": "clickhouse",
    "db2": "db2",
    "greenplum": "greenplum",
}
"""Airflow connection type -> sqlfluff dialect. Anything else is parsed as ANSI SQL."""


@dataclass(frozen=True)
class LintConfig:
    """What to check and how.

    ``disable`` names checks (``sql``, ``policy`` …) or rules (``AIR311``, ``undefined``) to
    skip. ``sql_dialects`` maps a connection id or a connection type to a sqlfluff dialect and
    wins over :data:`DEFAULT_DIALECTS`. ``template_folder`` is where relative template files
    (``.sql``) are looked up besides the DAG's ``template_searchpath``: the folder the exported
    DAG file lives in (the deployment's view), by default the DAG's own folder.
    """

    policy_module: Path | None = None
    disable: frozenset[str] = frozenset()
    sql_dialects: Mapping[str, str] = field(default_factory=dict)
    default_dialect: str = "ansi"
    template_folder: Path | None = None
    ruff_preview: bool = True

    def enabled(self, check: str, rule: str | None = None) -> bool:
        """Whether a check (and, if given, one of its rules) is on."""
        return check not in self.disable and (rule is None or rule not in self.disable)

    def dialect_for(self, conn_id: str | None, conn_type: str | None) -> str:
        """The sqlfluff dialect for a task's connection."""
        for key in (conn_id, conn_type):
            if key and key in self.sql_dialects:
                return self.sql_dialects[key]
        if conn_type and conn_type in DEFAULT_DIALECTS:
            return DEFAULT_DIALECTS[conn_type]
        return self.default_dialect


def has_errors(findings: Iterable[Finding]) -> bool:
    """Whether any finding is an error (what makes ``jupyter kyte lint`` exit 1)."""
    return any(f.severity == "error" for f in findings)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Cell order, then line, then DAG/task, with duplicates removed."""
    unique = dict.fromkeys(findings)
    return sorted(
        unique,
        key=lambda f: (
            f.cell if f.cell is not None else 1 << 30,
            f.line or 0,
            f.dag_id or "",
            f.task_id or "",
            f.field or "",
            f.field_line or 0,
            f.rule,
        ),
    )


_CELL_LINE = re.compile(r"^cell (\d+)(?:, line (\d+))?")


def cell_and_line(message: str) -> tuple[int | None, int | None]:
    """The ``cell N, line M`` an export problem starts with, if any."""
    m = _CELL_LINE.match(message)
    if m is None:
        return None, None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)
