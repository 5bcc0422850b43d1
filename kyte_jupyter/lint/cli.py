"""``jupyter kyte lint NOTEBOOK``: the static checks of a notebook, for people and for CI.

Exit status 0 when there is no error (warnings allowed), 1 when any finding is an error or
the notebook cannot be read, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from .findings import CHECKS, LintConfig, has_errors

EXIT_OK = 0
EXIT_FAILED = 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``lint`` subcommand to ``jupyter kyte``'s subcommands."""
    lint = commands.add_parser(
        "lint",
        help="check a notebook's DAGs before running or exporting them",
        description=(
            "Check every DAG of a notebook as it would be exported and deployed: Airflow's\n"
            "ruff rules (AIR) on the cells, the DAG checks Airflow makes at parse time,\n"
            "every template field rendered for the next logical date, the rendered SQL\n"
            "parsed in the connection's dialect, and the deployment's cluster policies.\n"
            "Exit status 1 if anything is an error."
        ),
        epilog=(
            "examples:\n"
            "  jupyter kyte lint etl.ipynb\n"
            "  jupyter kyte lint etl.ipynb --format json > findings.json\n"
            "  jupyter kyte lint etl.ipynb --policy-module deploy/airflow_local_settings.py\n"
            "  jupyter kyte lint etl.ipynb --disable sql --disable AIR311 --dialect pg=postgres\n"
            f"\nchecks: {', '.join(CHECKS)}"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lint.add_argument("notebook", metavar="NOTEBOOK", help="the notebook (.ipynb) to check")
    lint.add_argument("--dag", metavar="DAG_ID", help="check only this DAG (default: every DAG)")
    lint.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default text)"
    )
    lint.add_argument(
        "--policy-module",
        metavar="PATH",
        type=Path,
        default=None,
        help="an airflow_local_settings.py whose dag_policy/task_policy the deployment applies "
        "(default: $KYTE_POLICY_MODULE, else the server's KyteExtensionApp.policy_module from "
        "the Jupyter config files, as notebook kernels get it)",
    )
    lint.add_argument(
        "--disable",
        metavar="CHECK_OR_RULE",
        action="append",
        default=[],
        help="turn off a check (e.g. sql) or a rule (e.g. AIR311); may be repeated",
    )
    lint.add_argument(
        "--dialect",
        metavar="CONN=DIALECT",
        action="append",
        default=[],
        help="sqlfluff dialect for a connection id or type (e.g. warehouse=snowflake)",
    )
    lint.set_defaults(run=run)


def sqlfluff_dialects() -> list[str]:
    """The dialect names sqlfluff knows (imports sqlfluff: a few seconds)."""
    import sqlfluff

    return sorted(d.label for d in sqlfluff.list_dialects())


def default_policy_module() -> Path | None:
    """The policy module the notebook kernels would get: ``$KYTE_POLICY_MODULE``, else the
    server's ``KyteExtensionApp.policy_module`` from the Jupyter config files."""
    env = os.environ.get("KYTE_POLICY_MODULE")
    if env:
        return Path(env)
    from ..settings import server_setting

    value = server_setting("policy_module")
    if not value:
        return None
    return Path(os.path.abspath(os.path.expanduser(str(value))))


def run(args: argparse.Namespace) -> int:
    """Run ``jupyter kyte lint`` with parsed arguments; return the exit status."""
    from .notebook import NotebookLintError, lint_notebook

    dialects: dict[str, str] = {}
    for item in args.dialect:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            print(f"jupyter kyte lint: --dialect wants CONN=DIALECT, not {item!r}", file=sys.stderr)
            return 2
        dialects[key] = value
    if dialects:
        known = sqlfluff_dialects()
        for key, value in dialects.items():
            if value not in known:
                print(f"jupyter kyte lint: --dialect {key}={value}: sqlfluff has no dialect "
                      f"{value!r}; its dialects are: {', '.join(known)}", file=sys.stderr)
                return 2
    config = LintConfig(
        policy_module=args.policy_module or default_policy_module(),
        disable=frozenset(args.disable),
        sql_dialects=dialects,
    )
    try:
        # DAG code and Airflow may print; stdout is for the findings only.
        with contextlib.redirect_stdout(sys.stderr):
            result = lint_notebook(args.notebook, config, dag_id=args.dag)
    except NotebookLintError as e:
        print(f"jupyter kyte lint: {e}", file=sys.stderr)
        return EXIT_FAILED
    if args.format == "json":
        payload = {
            "version": 1,
            "notebook": result.notebook,
            "dag_ids": result.dag_ids,
            "errors": sum(f.severity == "error" for f in result.findings),
            "warnings": sum(f.severity == "warning" for f in result.findings),
            "findings": [f.model_dump() for f in result.findings],
        }
        print(json.dumps(payload, indent=2, default=str))
    else:
        for f in result.findings:
            print(f"{result.notebook}: {f.text()}")
        errors = sum(f.severity == "error" for f in result.findings)
        warnings = len(result.findings) - errors
        dags = ", ".join(result.dag_ids) or "none"
        print(f"{errors} error(s), {warnings} warning(s) in DAGs: {dags}")
    return EXIT_FAILED if has_errors(result.findings) else EXIT_OK
