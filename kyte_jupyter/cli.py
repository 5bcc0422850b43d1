"""``jupyter kyte``: Kyte's command line.

Subcommands:

``jupyter kyte export NOTEBOOK [--dag DAG_ID] [--output DIR] [--root DIR] [--force]``
    Write the notebook's DAGs to ``<dag_id>.py`` files (by default in a ``dags/`` folder next
    to the notebook). Nothing is written outside the root, not even through a symbolic link.
    Exit status 0 on success, 1 if the notebook cannot be exported (nothing is written then),
    2 for a usage error.

``jupyter kyte publish NOTEBOOK --target NAME [--dag D] [--dry-run] [--yes]``
    Export, check, show the difference against the target, then write the DAG files to a
    folder or commit them to a git branch (see :mod:`kyte_jupyter.publish`).

``jupyter kyte lint NOTEBOOK [--format text|json] [--policy-module PATH]``
    Static checks of the notebook's DAGs (see :mod:`kyte_jupyter.lint.cli`); exit 1 on errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .lint import cli as lint_cli
from .publish import cli as publish_cli

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``jupyter kyte`` with ``argv`` (default: the process arguments); return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter kyte",
        description="Kyte for Jupyter: write, run and export Airflow DAGs in notebooks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    export = commands.add_parser(
        "export",
        help="export a notebook's DAGs to Airflow DAG files",
        description=(
            "Write one Airflow DAG file per DAG of the notebook: a header, the cells tagged\n"
            "kyte-include and the DAG's %%dag cells. Scratch cells and other magics are left\n"
            "out. If anything is wrong, every problem is listed and nothing is written."
        ),
        epilog=(
            "examples:\n"
            "  jupyter kyte export etl.ipynb                  # every DAG, into ./dags/\n"
            "  jupyter kyte export etl.ipynb --dag daily_etl  # only DAG daily_etl\n"
            "  jupyter kyte export etl.ipynb --output ~/airflow/dags\n"
            "  jupyter kyte export nb/etl.ipynb --root .      # nothing written outside ./\n"
            "  jupyter kyte export etl.ipynb --tests          # + test_<dag_id>.py per DAG"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("notebook", metavar="NOTEBOOK", help="the notebook (.ipynb) to export")
    export.add_argument("--dag", metavar="DAG_ID", help="export only this DAG (default: every DAG)")
    export.add_argument(
        "--output",
        "-o",
        metavar="DIR",
        help="folder to write the DAG files into (default: a dags/ folder next to the notebook)",
    )
    export.add_argument(
        "--root",
        metavar="DIR",
        help=(
            "write nothing outside this folder, not even through a symbolic link (default: "
            "the --output folder if given, else the notebook's folder)"
        ),
    )
    export.add_argument(
        "--force",
        action="store_true",
        help="overwrite existing files even if Kyte did not write them",
    )
    export.add_argument(
        "--no-lint",
        action="store_true",
        help="export even if `jupyter kyte lint` finds errors (by default they refuse it)",
    )
    export.add_argument(
        "--tests",
        action="store_true",
        help="also write test_<dag_id>.py next to each DAG file: the notebook's %%%%scenario "
             "cells as plain pytest + Airflow tests",
    )
    export.set_defaults(run=_export)
    publish_cli.register(commands)
    lint_cli.register(commands)
    return parser


def _export(args: argparse.Namespace) -> int:
    from .export import ExportError, export_notebook

    if not args.no_lint:
        from .lint.gate import LintGateError, export_refusal

        try:
            refusal = export_refusal(args.notebook, args.dag)
        except LintGateError as e:
            print(f"jupyter kyte export: warning: {e}; exporting unchecked.", file=sys.stderr)
            refusal = None
        if refusal is not None:
            print(f"jupyter kyte export: {refusal}", file=sys.stderr)
            print("Nothing was written. Fix them, or export with --no-lint.", file=sys.stderr)
            return EXIT_FAILED
    try:
        # A relative --output is relative to the working directory, as any shell path.
        output = None if args.output is None else Path(args.output).absolute()
        paths = export_notebook(args.notebook, args.dag, output, args.force, root=args.root)
    except ExportError as e:
        print(f"jupyter kyte export: {e}", file=sys.stderr)
        print("Nothing was written.", file=sys.stderr)
        return EXIT_FAILED
    for path in paths:
        print(f"Wrote {_display(path)}")
    if getattr(args, "tests", False):
        from .whatif import WhatIfError
        from .whatif.export import write_tests

        try:
            tests = write_tests(args.notebook, paths)
        except WhatIfError as e:
            print(f"jupyter kyte export --tests: {e}", file=sys.stderr)
            return EXIT_FAILED
        for path in tests:
            print(f"Wrote {_display(path)}")
    return EXIT_OK


def _display(path: Path) -> str:
    """A path relative to the working directory when it is below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())
    except OSError:
        return os.fspath(path)


if __name__ == "__main__":
    sys.exit(main())
