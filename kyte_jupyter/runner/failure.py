"""A failed task, as the cell shows it: its own frames and the exception once, secrets masked.

The task's exception carries the whole traceback, through Airflow's task runner. The cell
shows it from the first frame of the task's own code (Airflow's and Kyte's frames folded
away); the stored log keeps the full traceback, and ``%debug`` opens the full one. Every line
bound for the cell goes through Airflow's secrets masker, as task logs do: a notebook is saved
with its outputs.
"""

from __future__ import annotations

import copy
import os
import sys
from types import TracebackType
from typing import Any

from .. import bridge


def _internal_roots() -> tuple[str, ...]:
    """Files and folders whose frames are not the task's own: Kyte, Airflow, what runs it."""
    roots = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep]
    for name in ("airflow", "pydantic", "structlog", "httpx", "sqlalchemy", "asyncio",
                 "concurrent", "contextlib", "threading"):
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            is_package = os.path.basename(path) == "__init__.py"
            roots.append(os.path.dirname(path) + os.sep if is_package else path)
    return tuple(roots)


def _is_internal(filename: str, roots: tuple[str, ...]) -> bool:
    return any(filename.startswith(root) for root in roots)


def fold(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the first frame of the task's own code on (Airflow's folded away).

    A task whose code has no frame in it (an operator of Airflow's failed) keeps the
    innermost frame, where the exception was raised.
    """
    roots = _internal_roots()
    entry = tb
    while entry is not None:
        if not _is_internal(entry.tb_frame.f_code.co_filename, roots):
            return entry
        entry = entry.tb_next
    last = tb
    while last is not None and last.tb_next is not None:
        last = last.tb_next
    return last


def one_line(error: BaseException) -> str:
    """``Type: first line of the message``, secrets masked (for summaries and JSON)."""
    text = str(error).strip().splitlines()
    message = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return bridge.redact(message)


def masked(error: BaseException) -> BaseException:
    """``error`` itself, or a copy whose message has its secrets masked.

    The copy keeps the type (so the cell names the same exception) and the traceback; the
    original, unmasked, stays what ``%debug`` and ``r.errors`` hold.
    """
    text = str(error)
    if bridge.redact(text) == text:
        return error
    try:
        clone = copy.copy(error)
        clone.args = tuple(bridge.redact(a) if isinstance(a, str) else a for a in error.args)
    except Exception:
        clone = RuntimeError(bridge.redact(f"{type(error).__name__}: {text}"))
    if str(clone) != bridge.redact(text):  # a __str__ not built from args
        clone = RuntimeError(bridge.redact(f"{type(error).__name__}: {text}"))
    return clone.with_traceback(error.__traceback__)


def for_cell(error: BaseException, shell: Any) -> BaseException:
    """The exception a magic raises for a failed task.

    IPython shows it through ``_render_traceback_``: the task's own frames (:func:`fold`)
    and the exception, each line masked. When IPython shows it, ``sys.last_value`` is
    pointed back at the task's own exception (with its full traceback), so ``%debug``
    opens on the task's frames.
    """
    shown = masked(error)
    folded = fold(error.__traceback__)

    def render() -> list[str]:
        sys.last_type, sys.last_value = type(error), error
        sys.last_traceback = error.__traceback__
        if hasattr(sys, "last_exc"):
            sys.last_exc = error
        lines = shell.InteractiveTB.structured_traceback(type(shown), shown, folded)
        return [bridge.redact(line) for line in lines]

    try:
        shown._render_traceback_ = render  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # an exception type without a __dict__
        return shown
    return shown
