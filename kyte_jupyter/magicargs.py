"""Parsing the magics' arguments, shared by every magics class (one place for the messages)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError

from . import cellspec


def parse(func: Any, line: str, usage: str) -> Any:
    """Parse a magic's line with its ``magic_arguments`` parser; bad input is a
    ``UsageError`` naming the usage (and the quoting hint for unquoted JSON)."""
    __tracebackhide__ = True
    try:
        args = magic_arguments.parse_argstring(func, cellspec.strip_comment(line))
    except UsageError as e:
        cellspec.raise_unquoted_json(line)
        raise UsageError(f"{e}\nUsage: {usage} (see {usage.split()[0]}? for help)") from None
    except ValueError as e:  # unbalanced quotes
        raise UsageError(f"Cannot read the arguments ({e}); check your quotes.") from None
    for name, value in vars(args).items():
        if isinstance(value, str):
            setattr(args, name, cellspec.unquote(value))
    return args


def parse_when(text: str | None) -> _dt.datetime | None:
    """``--logical-date`` as an aware datetime (UTC when no zone is given), or None."""
    text = cellspec.unquote(text)
    if not text:
        return None
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--logical-date {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM."
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)


def parse_conf(text: str | None) -> dict[str, Any] | None:
    """``--conf`` as a JSON object, or None."""
    return cellspec.parse_json_object(text, "--conf") if text else None


def parallel_args(func: Any) -> Any:
    """``--parallelism`` and ``--executor``, shared by ``%run_task`` and ``%run_dag``."""
    func = magic_arguments.argument(
        "--executor", default=None, metavar="NAME",
        help="Hand task instances to this Airflow executor (configured in the session's "
             "[core] executor, e.g. CeleryExecutor); implies a parallel run.")(func)
    return magic_arguments.argument(
        "--parallelism", "-p", type=int, default=None, metavar="N",
        help="Run up to N independent task instances at once through Airflow's "
             "LocalExecutor (default: the default_parallelism setting, 1 = one at a time "
             "in the kernel). The DAG must export cleanly: workers import its DAG file.")(func)
