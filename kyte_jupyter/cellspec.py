"""What a ``%%dag`` cell says: its options, parsed the same way by the magic and by export.

Airflow is not imported here, so export and the server can read notebooks cheaply.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError

DAG_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")


@magic_arguments.magic_arguments()
@magic_arguments.argument(
    "dag_id",
    nargs="?",
    help="Grow this DAG with the cell's tasks. Without it, the cell is a whole DAG file.",
)
@magic_arguments.argument(
    "--schedule", help='Schedule of the DAG: a cron expression, a preset like "@daily", or "None".'
)
@magic_arguments.argument("--start-date", help="First logical date, YYYY-MM-DD.")
@magic_arguments.argument(
    "--default-args", help='JSON object of default task arguments, e.g. \'{"retries": 2}\'.'
)
@magic_arguments.argument("--tags", help="Comma-separated tags, e.g. etl,daily.")
@magic_arguments.argument("--description", help="One-line description of the DAG.")
def dag_arguments(line: str) -> None:
    """Options of ``%%dag`` (declared once, for the magic and for export)."""


@dataclass
class DagCellOptions:
    """The parsed first line of a ``%%dag`` cell."""

    dag_id: str | None = None
    schedule: str | None = None
    start_date: _dt.date | None = None
    default_args: dict[str, Any] | None = None
    tags: list[str] = field(default_factory=list)
    description: str | None = None
    line: str = ""
    """The magic's line as written (what follows ``%%dag``)."""

    def given(self) -> dict[str, Any]:
        """The DAG keyword arguments this cell sets explicitly (for merging across cells)."""
        out: dict[str, Any] = {}
        if self.schedule is not None:
            out["schedule"] = None if self.schedule == "None" else self.schedule
        if self.start_date is not None:
            out["start_date"] = self.start_date
        if self.default_args is not None:
            out["default_args"] = self.default_args
        if self.tags:
            out["tags"] = self.tags
        if self.description is not None:
            out["description"] = self.description
        return out


def strip_comment(line: str) -> str:
    """Drop a trailing ``# comment`` (outside quotes), as Python does after code."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


def parse_dag_line(line: str) -> DagCellOptions:
    """Parse the arguments of ``%%dag``; raise ``UsageError`` saying what to fix."""
    try:
        shlex.split(line)
    except ValueError as e:
        raise UsageError(f"%%dag: cannot read the arguments ({e}); check your quotes.") from e
    line = strip_comment(line)
    try:
        args = magic_arguments.parse_argstring(dag_arguments, line)
    except UsageError as e:
        raise_unquoted_json(line, "%%dag: ")
        raise UsageError(
            f"%%dag: {e}\nUsage: %%dag [DAG_ID] [--schedule S] [--start-date YYYY-MM-DD] "
            "[--default-args JSON] [--tags a,b] [--description TEXT]"
        ) from e
    for name in ("dag_id", "schedule", "start_date", "default_args", "tags", "description"):
        setattr(args, name, unquote(getattr(args, name)))
    opts = DagCellOptions(dag_id=args.dag_id, schedule=args.schedule, description=args.description,
                          line=line.strip())
    if opts.dag_id is not None and not DAG_ID_RE.match(opts.dag_id):
        raise UsageError(
            f"%%dag: {opts.dag_id!r} is not a valid DAG id: use letters, digits, '_', '-' and '.'."
        )
    if opts.dag_id is None and any(
        v is not None
        for v in (args.schedule, args.start_date, args.default_args, args.tags, args.description)
    ):
        raise UsageError(
            "%%dag: options like --schedule need a DAG id: %%dag my_dag --schedule @daily"
        )
    if args.start_date is not None:
        opts.start_date = parse_date(args.start_date, "--start-date")
    if args.default_args is not None:
        opts.default_args = parse_json_object(args.default_args, "--default-args")
    if args.tags:
        opts.tags = [t.strip() for t in args.tags.split(",") if t.strip()]
    return opts



_UNQUOTED_JSON = re.compile(r"(?:^|\s)(--conf|--default-args)(?:\s+|=)([{\[].*?)(?=\s--|\s*$)")


def raise_unquoted_json(line: str, prefix: str = "") -> None:
    """If the arguments failed to parse because a JSON value was not quoted, say so.

    The shell-like splitting of magic arguments cuts ``--conf {"a": 1}`` at the space and
    drops the double quotes; the fix is to quote the whole value.
    """
    m = _UNQUOTED_JSON.search(line)
    if m is None:
        return
    flag = m.group(1)
    raise UsageError(
        f"{prefix}{flag} is not valid JSON: its value must be quoted as one argument "
        f"(got {m.group(2).strip()!r} unquoted). Write an object in single quotes with double "
        f"quotes inside, like {flag} '{{\"retries\": 2}}'."
    )


def unquote(text: str | None) -> str | None:
    """Remove one pair of matching outer quotes: IPython keeps them in magic arguments."""
    if text is not None and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_date(text: str, flag: str) -> _dt.date:
    """Parse YYYY-MM-DD, or raise a ``UsageError`` naming ``flag``."""
    try:
        return _dt.date.fromisoformat(unquote(text) or "")
    except ValueError as e:
        raise UsageError(f"{flag} {text!r} is not a date: write it as YYYY-MM-DD.") from e


def parse_json_object(text: str, flag: str) -> dict[str, Any]:
    """Parse a JSON object, or raise a ``UsageError`` that points at the mistake."""
    text = unquote(text) or ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{flag} is not valid JSON: {e.msg} at character {e.pos + 1} of {text!r}. "
            'Write an object like \'{"retries": 2}\' (double quotes inside single quotes).'
        ) from e
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object like '{{\"retries\": 2}}', not {text!r}.")
    return value


def split_magic_cell(source: str) -> tuple[str, str, str] | None:
    """Split a cell into (magic name, argument line, body) if it is a cell magic, else None."""
    stripped = source.lstrip("\n")
    if not stripped.startswith("%%"):
        return None
    first, _, body = stripped.partition("\n")
    name, _, line = first[2:].partition(" ")
    return name.strip(), line.strip(), body
