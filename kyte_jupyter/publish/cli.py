"""``jupyter kyte publish``: review, then ship a notebook's DAG files to a target."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import (
    Check,
    PublishError,
    PublishPlan,
    PublishResult,
    Target,
    configured_targets,
    default_author,
    plan_notebook,
    plan_promotion,
)

EXIT_OK, EXIT_FAILED = 0, 1

DESCRIPTION = """\
Publish the notebook's DAG files to a target: a folder (a dags folder or a DAG bundle) or a
branch of a git repository. The notebook is exported and checked first; then you see what
would change in the target and confirm. A git target gets one commit with you as author.
Files in the target that Kyte did not write are never overwritten."""

EPILOG = """\
examples:
  jupyter kyte publish etl.ipynb --target staging --dry-run   # review only
  jupyter kyte publish etl.ipynb --target staging             # review, then confirm
  jupyter kyte publish --from staging --target prod --dag etl # promote the reviewed file
  jupyter kyte publish etl.ipynb --target git+file:///srv/dags.git#main --yes
  jupyter kyte publish --list-targets"""


def register(commands: Any) -> None:
    """Add the ``publish`` subcommand to ``jupyter kyte``'s subparsers."""
    p = commands.add_parser(
        "publish",
        help="publish a notebook's DAGs to a folder or git branch (review, then confirm)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("notebook", metavar="NOTEBOOK", nargs="?", help="the notebook to publish")
    p.add_argument(
        "--target",
        "-t",
        metavar="NAME",
        help="a configured target name, a folder, or git+URL#BRANCH",
    )
    p.add_argument("--from", dest="source", metavar="NAME", help="promote: copy from this target")
    p.add_argument("--dag", metavar="DAG_ID", help="publish only this DAG's file")
    p.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    p.add_argument("--yes", "-y", action="store_true", help="publish without asking")
    p.add_argument("--message", "-m", metavar="TEXT", help="the commit message (git targets)")
    p.add_argument(
        "--expect",
        metavar="FILE=SHA256",
        action="append",
        default=[],
        help="publish only if FILE still has the SHA-256 that was reviewed (used by the dialog)",
    )
    p.add_argument(
        "--no-lint",
        action="store_true",
        help="skip the static checks and scenario tests (not recommended)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    p.add_argument("--list-targets", action="store_true", help="list the configured targets")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Carry out ``jupyter kyte publish``; return the exit code."""
    out = _Output(args.format)
    try:
        return _run(args, out)
    finally:
        out.close()


def _run(args: argparse.Namespace, out: _Output) -> int:
    from ..export import ExportError

    try:
        named = configured_targets()
        if args.list_targets:
            return out.targets(named)
        plan = _plan(args, named)
        if args.expect:
            plan.check_expected(_expected(args.expect))
        out.plan(plan)
        if args.dry_run or not plan.pending:
            return EXIT_OK
        if not args.yes and not _confirm(plan):
            out.note("Nothing was published.")
            return EXIT_FAILED
        try:
            result = plan.apply(author=default_author(), message=args.message)
        finally:
            close = getattr(plan.store, "close", None)
            if close:
                close()
        _audit(args.notebook, plan, result)
        out.result(result)
    except (PublishError, ExportError) as e:
        out.error(str(e))
        return EXIT_FAILED
    return EXIT_OK


def _plan(args: argparse.Namespace, named: dict[str, str]) -> PublishPlan:
    if not args.target:
        raise PublishError("Name a target with --target (a configured name, a folder or git+URL).")
    target = Target.parse(args.target, named)
    if args.source:
        if args.notebook:
            raise PublishError("Give either a NOTEBOOK or --from TARGET to promote, not both.")
        return plan_promotion(Target.parse(args.source, named), target, dag_id=args.dag)
    if not args.notebook:
        raise PublishError("Name the notebook to publish, or --from TARGET to promote.")
    if not Path(args.notebook).is_file():
        raise PublishError(f"There is no notebook {args.notebook}.")
    checks = [] if args.no_lint else default_checks(args.dag)
    return plan_notebook(args.notebook, target, dag_id=args.dag, checks=checks)


def default_checks(dag_id: str | None) -> list[Check]:
    """The checks a publish runs after the export (which checks names and syntax itself):
    the static checks of ``jupyter kyte lint`` (errors refuse), then the notebook's
    ``%%scenario`` cells as the exported pytest files (a failing scenario refuses)."""

    def lint(notebook: Path, files: Mapping[str, str]) -> list[str]:
        from ..lint.gate import LintGateError, export_refusal

        try:
            refusal = export_refusal(notebook, dag_id)
        except LintGateError as e:
            return [f"the static checks could not run ({e}); publish again, or use --no-lint."]
        if refusal is None:
            return []
        return [line.strip().removeprefix("- ") for line in refusal.splitlines()[1:]]

    return [lint, _scenario_tests]


def _scenario_tests(notebook: Path, files: Mapping[str, str]) -> list[str]:
    """Run the notebook's scenarios as the exported tests (plain pytest + Airflow)."""
    import nbformat

    from ..whatif import WhatIfError
    from ..whatif.export import scenario_cells, write_tests

    nb = nbformat.read(os.fspath(notebook), as_version=4)  # type: ignore[no-untyped-call]
    if not scenario_cells(nb):
        return []
    with tempfile.TemporaryDirectory(prefix="kyte-publish-tests-") as tmp:
        folder = Path(tmp) / "dags"
        folder.mkdir()
        paths = []
        for name, source in files.items():
            (folder / name).write_text(source, encoding="utf-8")
            paths.append(folder / name)
        # Reading the exported files imports Airflow here: give it a scratch home unless the
        # caller chose one.
        os.environ.setdefault("AIRFLOW_HOME", str(Path(tmp) / "airflow-home"))
        try:
            tests = write_tests(notebook, paths)
        except WhatIfError as e:
            return [f"scenario: {e}"]
        if not tests:
            return []
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(Path(tmp) / "test-home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
            timeout=1800,
            check=False,
        )
        if done.returncode == 0:
            return []
        failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
        return [f"scenario test {line.removeprefix('FAILED ')}" for line in failed] or [
            "the scenario tests failed: " + " / ".join(done.stdout.strip().splitlines()[-3:])
        ]


def _expected(pairs: list[str]) -> dict[str, str]:
    expected = {}
    for pair in pairs:
        name, sep, sha = pair.partition("=")
        if not sep or len(sha) != 64:
            raise PublishError(f"--expect takes FILE=SHA256, not {pair!r}.")
        expected[name] = sha
    return expected


def _confirm(plan: PublishPlan) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        print(
            "Not published: confirm by running again with --yes once you have reviewed the "
            "changes above.",
            file=sys.stderr,
        )
        return False
    answer = input(f"Publish {len(plan.pending)} file(s) to {plan.target.describe()}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _audit(notebook: str | None, plan: PublishPlan, result: PublishResult) -> None:
    """Record who published which file hash where, in the notebook session's audit trail."""
    if not notebook:
        return
    from ..session import SessionStore

    session = SessionStore().for_notebook(str(Path(notebook).resolve()))
    for change in result.written:
        session.audit(
            "publish",
            dag_id=change.filename.removesuffix(".py"),
            file=change.filename,
            sha256=change.sha256,
            target=plan.target.name,
            location=plan.target.location,
            branch=plan.target.branch if plan.target.kind == "git" else None,
            commit=result.commit,
        )


class _Output:
    """Prints for a person (text), or collects one JSON document for the Publish dialog."""

    def __init__(self, fmt: str) -> None:
        self.json = fmt == "json"
        self.doc: dict[str, Any] = {"published": False, "commit": None}

    def close(self) -> None:
        """Print the JSON document (JSON format only)."""
        if self.json:
            print(json.dumps(self.doc))

    def targets(self, named: dict[str, str]) -> int:
        self.doc["targets"] = named
        if not self.json:
            if not named:
                print("No publish targets are configured (KyteExtensionApp.publish_targets).")
            for name, where in sorted(named.items()):
                print(f"{name}\t{where}")
        return EXIT_OK

    def plan(self, plan: PublishPlan) -> None:
        label = plan.target.name
        self.doc.update(
            target=label,
            target_description=plan.target.describe(),
            changes=[
                {
                    "filename": c.filename,
                    "status": c.status,
                    "sha256": c.sha256,
                    "diff": c.diff(label),
                }
                for c in plan.changes
            ],
        )
        if self.json:
            return
        print(plan.diff(), end="")
        for c in plan.changes:
            print(f"{c.status:>9}  {c.filename}  sha256 {c.sha256[:12]}")
        if not plan.pending:
            print(f"{plan.target.describe()} already holds these files; nothing to publish.")

    def note(self, text: str) -> None:
        self.doc["message"] = text
        if not self.json:
            print(text, file=sys.stderr)

    def result(self, result: PublishResult) -> None:
        self.doc.update(published=True, commit=result.commit)
        if not self.json:
            commit = f" in commit {result.commit[:12]}" if result.commit else ""
            print(f"Published {len(result.written)} file(s) to {result.target.describe()}{commit}.")

    def error(self, text: str) -> None:
        self.doc["error"] = text
        if not self.json:
            print(f"jupyter kyte publish: {text}", file=sys.stderr)
