"""How a ``%%dag`` cell's code runs: compiled and executed as a module, like a DAG file.

Airflow imports a DAG file as a module; a ``%%dag`` cell gets the same semantics while its
names stay in the notebook's namespace (so later cells and the user can use them).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

CELL_MODULE = "kyte_dag_cell"
"""``__name__`` of the code in ``%%dag`` cells: a module in ``sys.modules``, as a DAG file is.

Like a DAG file imported by a ``DagBag``, the code does not run as ``__main__`` (so an
``if __name__ == "__main__": dag.test()`` block stays quiet), but its module exists, so
``@dataclass``, ``typing.get_type_hints``, pickling and anything else that looks a class up
through ``sys.modules[cls.__module__]`` work. The module *is* the notebook's namespace.
"""


class _NamespaceModule:
    """Stands in for a module whose ``__dict__`` is a given namespace (IPython's DummyMod)."""


def _module_of(ns: dict[str, Any]) -> Any:
    """The module whose ``__dict__`` is ``ns``: the kernel's ``__main__`` in a notebook."""
    for mod in (sys.modules.get("__main__"), sys.modules.get(CELL_MODULE)):
        if mod is not None and getattr(mod, "__dict__", None) is ns:
            return mod
    proxy = _NamespaceModule()
    proxy.__dict__ = ns
    return proxy


@contextlib.contextmanager
def cell_module(ns: dict[str, Any], notebook_path: str) -> Iterator[None]:
    """Run code in ``ns`` as the module :data:`CELL_MODULE`, with ``__file__`` in the
    notebook's folder (where a DAG file's ``__file__`` would be)."""
    sys.modules[CELL_MODULE] = _module_of(ns)
    saved = {k: ns[k] for k in ("__name__", "__file__") if k in ns}
    ns["__name__"] = CELL_MODULE
    ns["__file__"] = notebook_path
    try:
        yield
    finally:
        for k in ("__name__", "__file__"):
            if k in saved:
                ns[k] = saved[k]
            else:
                ns.pop(k, None)


def compile_cell(body: str, filename: str) -> Any:
    """Compile a cell's body as a module: its own ``__future__`` imports only, and a NUL
    byte is a ``SyntaxError`` at its line, as for any other bad character."""
    if "\0" in body:
        before = body[: body.index("\0")]
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        text = body.splitlines()[line - 1] if body.splitlines() else ""
        error = SyntaxError("source code cannot contain null bytes",
                            (filename, line, col, text.replace("\0", "\\0")))
        error.kyte_cell = True  # type: ignore[attr-defined]
        raise error
    try:
        return compile(body, filename, "exec", dont_inherit=True)
    except SyntaxError as e:
        # Shown like a syntax error in any cell (see magics._show_syntax_error).
        e.kyte_cell = True  # type: ignore[attr-defined]
        raise
