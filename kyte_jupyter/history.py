"""``%runs``, ``%dag_diff`` and ``%compare``: a DAG's run history, versions and runs side by side.

Thin magics over :mod:`kyte_jupyter.versions`, which reads the session's metastore; each
returns a value that displays as a table (HTML in notebooks, text in consoles) and can be
used from code (``h = %runs etl`` then ``h[0].run_id``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from html import escape
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from . import versions
from .magicargs import parse
from .runner.summary import STATE_COLOURS

#: Most runs ``%runs`` lists; DAG version numbers are 32-bit integers in the metastore.
MAX_LIMIT = 10_000
MAX_VERSION = 2**31 - 1


def _state_html(state: str | None) -> str:
    colour = STATE_COLOURS.get(state or "", "transparent")
    dot = (
        f"<span style='display:inline-block;width:.7em;height:.7em;border-radius:50%;"
        f"background:{colour};margin-right:.35em'></span>"
    )
    return dot + escape(state or "—")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th style='text-align:left'>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='kyte-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}s"


class RunHistory(list[versions.RunRecord]):
    """The runs of a DAG, newest first; displays as a table."""

    def __init__(self, dag_id: str, runs: list[versions.RunRecord]) -> None:
        super().__init__(runs)
        self.dag_id = dag_id

    _HEADERS = ["run id", "logical date", "state", "version", "duration"]

    def _cells(self, html: bool) -> list[list[str]]:
        return [
            [
                f"<code>{escape(r.run_id)}</code>" if html else r.run_id,
                escape(r.logical_date or "") if html else r.logical_date or "",
                _state_html(r.state) if html else r.state or "",
                "" if r.version is None else f"v{r.version}",
                _seconds(r.duration_s),
            ]
            for r in self
        ]

    def _repr_html_(self) -> str:
        if not self:
            return f"<p>DAG <b>{escape(self.dag_id)}</b> has not run in this notebook yet.</p>"
        return f"<b>{escape(self.dag_id)}</b> runs" + _table(self._HEADERS, self._cells(True))

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        if not self:
            p.text(f"DAG {self.dag_id} has not run in this notebook yet.")
            return
        p.text(f"{self.dag_id} runs\n" + _text_table(self._HEADERS, self._cells(False)))


class DiffView:
    """A :class:`~kyte_jupyter.versions.DagDiff` for display; ``.diff`` is the data."""

    def __init__(self, diff: versions.DagDiff) -> None:
        self.diff = diff

    def __getattr__(self, name: str) -> Any:
        return getattr(self.diff, name)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        text = "\n".join(self.diff.summary_lines())
        if self.diff.code_diff:
            text += "\n\n" + self.diff.code_diff.rstrip("\n")
        p.text(text)

    def _repr_html_(self) -> str:
        colours = {
            "+": "var(--jp-success-color1, #2e7d32)",
            "-": "var(--jp-error-color1, #c62828)",
            "~": "var(--jp-warn-color1, #ef6c00)",
        }
        lines = []
        for line in self.diff.summary_lines():
            mark = line.strip()[:1]
            colour = colours.get(mark, "inherit")
            lines.append(f"<div style='color:{colour}'>{escape(line)}</div>")
        code = ""
        if self.diff.code_diff:
            rows = []
            for line in self.diff.code_diff.splitlines():
                colour = (
                    colours.get(line[:1], "inherit")
                    if line[:3] not in ("+++", "---")
                    else "inherit"
                )
                rows.append(f"<span style='color:{colour}'>{escape(line)}</span>")
            code = "<pre style='margin-top:.5em'>" + "\n".join(rows) + "</pre>"
        return (
            "<div class='kyte-diff' style='font-family:var(--jp-code-font-family,monospace)'>"
            + "".join(lines)
            + code
            + "</div>"
        )


class Comparison(list[versions.TaskComparison]):
    """Two runs of a DAG side by side, per task instance; displays as a table."""

    def __init__(
        self, dag_id: str, run_a: str, run_b: str, rows: list[versions.TaskComparison]
    ) -> None:
        super().__init__(rows)
        self.dag_id, self.run_a, self.run_b = dag_id, run_a, run_b

    @property
    def differences(self) -> list[versions.TaskComparison]:
        """The task instances whose state or XCom differ."""
        return [r for r in self if not r.same]

    _HEADERS = ["task", "state A", "state B", "tries A/B", "duration A/B", "XCom"]

    def _cells(self, html: bool) -> list[list[str]]:
        out = []
        for r in self:
            xcom = {None: "", True: "equal", False: "differs"}[r.xcom_equal]
            tries = f"{r.tries_a or '—'}/{r.tries_b or '—'}"
            took = f"{_seconds(r.duration_a) or '—'}/{_seconds(r.duration_b) or '—'}"
            if html:
                out.append(
                    [
                        f"<code>{escape(r.key)}</code>",
                        _state_html(r.state_a),
                        _state_html(r.state_b),
                        tries,
                        took,
                        f"<b>{xcom}</b>" if r.xcom_equal is False else xcom,
                    ]
                )
            else:
                out.append([r.key, r.state_a or "—", r.state_b or "—", tries, took, xcom])
        return out

    def _title(self) -> str:
        return f"{self.dag_id}: A = {self.run_a}, B = {self.run_b}"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        text = self._title() + "\n" + _text_table(self._HEADERS, self._cells(False))
        for r in self:
            if r.xcom_diff:
                text += f"\n\nXCom of {r.key}:\n{r.xcom_diff}"
        p.text(text)

    def _repr_html_(self) -> str:
        diffs = "".join(
            f"<details><summary>XCom of <code>{escape(r.key)}</code></summary>"
            f"<pre>{escape(r.xcom_diff)}</pre></details>"
            for r in self
            if r.xcom_diff
        )
        return f"<b>{escape(self._title())}</b>" + _table(self._HEADERS, self._cells(True)) + diffs


def _decode_xcom(value: Any) -> Any:
    """An XCom as a downstream task sees it (Airflow's serde envelope opened: pandas …), with
    the secrets Airflow knows masked."""
    from airflow.sdk.serde import deserialize

    from .bridge import redact_value

    try:
        value = deserialize(value)
    except Exception:  # plain JSON values, or a class this kernel cannot import
        pass
    return redact_value(value)  # secrets masked, as in logs


@magics_class
class HistoryMagics(Magics):
    """``%runs``, ``%dag_diff``, ``%compare``."""

    def __init__(self, shell: Any, notebook: Any) -> None:
        super().__init__(shell)
        self.notebook = notebook

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        session = self.notebook.session
        if session.metastore_url is None and not session.db_path.is_file():
            raise UsageError("This notebook's metastore is missing; run `%kyte` to see why.")
        try:
            con = session.connect_readonly(timeout=10)  # SQLite, or PostgreSQL read alike
        except sqlite3.Error as e:
            raise UsageError(f"Cannot open this notebook's metastore: {e}. Run `%kyte`.") from None
        try:
            yield con
        except sqlite3.Error as e:
            raise UsageError(f"Cannot read this notebook's metastore: {e}. Run `%kyte`.") from None
        finally:
            con.close()

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("dag_id", help="The DAG whose runs to list.")
    @magic_arguments.argument("--limit", type=int, default=20, help="How many runs (newest first).")
    @line_magic
    def runs(self, line: str) -> RunHistory:
        """List a DAG's runs, newest first, with state, DAG version and duration.

        Each time a ``%%dag`` cell changes the DAG, Airflow records a new DAG version; the
        version column says which one a run used (``%dag_diff`` shows what changed).

        Examples
        --------
        ::

            %runs etl
            h = %runs etl --limit 5
            h[0].run_id
        """
        args = parse(self.runs, line, "%runs DAG_ID")
        if not 1 <= args.limit <= MAX_LIMIT:
            raise UsageError(f"--limit must be from 1 to {MAX_LIMIT}.")
        with self._db() as con:
            return RunHistory(args.dag_id, versions.run_history(con, args.dag_id, args.limit))

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("dag_id", help="The DAG.")
    @magic_arguments.argument(
        "versions",
        nargs="*",
        type=int,
        metavar="V",
        help="Version numbers: none = the last two; one = that one "
        "against the latest; two = the first against the second.",
    )
    @line_magic
    def dag_diff(self, line: str) -> DiffView:
        """Show what changed between two versions of a DAG: tasks, edges, arguments, code.

        Examples
        --------
        ::

            %dag_diff etl          # the last two versions
            %dag_diff etl 3        # version 3 against the latest
            d = %dag_diff etl 1 4
            d.added_tasks
        """
        args = parse(self.dag_diff, line, "%dag_diff DAG_ID [V1 [V2]]")
        if len(args.versions) > 2:
            raise UsageError("Give at most two version numbers: %dag_diff DAG_ID [V1 [V2]].")
        for number in args.versions:
            if not 1 <= number <= MAX_VERSION:
                raise UsageError(f"Version numbers start at 1 (%runs {args.dag_id} shows them); "
                                 f"{number} is not one.")
        with self._db() as con:
            known = versions.list_versions(con, args.dag_id)
            if not known:
                raise UsageError(
                    f"DAG {args.dag_id!r} has no recorded version in this notebook; define it "
                    "with a %%dag cell first."
                )
            numbers = [v.number for v in known]
            wanted = list(args.versions)
            if not wanted:
                if len(known) < 2:
                    raise UsageError(
                        f"DAG {args.dag_id!r} has only version {numbers[0]}: nothing to compare "
                        "yet. Change a %%dag cell of it and run the cell again."
                    )
                wanted = numbers[-2:]
            elif len(wanted) == 1:
                wanted.append(numbers[-1])
            try:
                old, new = (versions.get_version(con, args.dag_id, n) for n in wanted)
            except versions.VersionError as e:
                raise UsageError(str(e)) from None
        return DiffView(versions.diff_versions(old, new))

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("dag_id", help="The DAG.")
    @magic_arguments.argument("run_a", help="A run id (see %%runs DAG_ID).")
    @magic_arguments.argument("run_b", help="Another run id.")
    @line_magic
    def compare(self, line: str) -> Comparison:
        """Compare two runs of a DAG per task instance: state, tries, duration, XCom equality.

        XCom values are compared as data (pandas objects with ``.equals``), with a readable
        difference for the ones that differ. The runs may use different DAG versions.

        Examples
        --------
        ::

            h = %runs etl
            c = %compare etl {h[1].run_id} {h[0].run_id}
            c.differences
        """
        args = parse(self.compare, line, "%compare DAG_ID RUN_A RUN_B")
        run_a, run_b = str(args.run_a), str(args.run_b)
        with self._db() as con:
            try:
                rows = versions.compare_runs(con, args.dag_id, run_a, run_b, decode=_decode_xcom)
            except versions.VersionError as e:
                raise UsageError(str(e)) from None
        return Comparison(args.dag_id, run_a, run_b, rows)
