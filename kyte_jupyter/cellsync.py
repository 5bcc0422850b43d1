"""The ``kyte.notebook`` comm: the front end tells the kernel which ``%%dag`` cells exist.

The front end opens a comm with target name ``kyte.notebook`` and sends, on open and whenever
cells are added, removed or changed::

    {"type": "cells", "cells": [{"cell_id": "…", "source": "%%dag etl\\n…"}, …]}

listing every code cell whose source starts with ``%%dag`` (run or not). The kernel drops the
contribution of registered cells that left the notebook (or now name another DAG), rewrites
the graph snapshots with ``warnings``, and replies::

    {"type": "dropped", "dag_ids": [...], "messages": [...]}

Comm messages are handled on the kernel's shell thread, between cell executions, so the
registry is never changed while a cell runs.
"""

from __future__ import annotations

import sys
from typing import Any

from .notebook import Notebook

TARGET = "kyte.notebook"


def cells_of(data: Any) -> dict[str, str] | None:
    """The ``cell_id -> source`` map of a ``cells`` message, or None if it is not one."""
    if not isinstance(data, dict) or data.get("type") != "cells":
        return None
    cells = data.get("cells")
    if not isinstance(cells, list):
        return None
    out: dict[str, str] = {}
    for c in cells:
        if isinstance(c, dict) and isinstance(c.get("cell_id"), str):
            source = c.get("source")
            if isinstance(source, list):  # nbformat may split sources into lines
                source = "".join(str(s) for s in source)
            out[c["cell_id"]] = str(source or "")
    return out


def handle(notebook: Notebook, ns: dict[str, Any], data: Any) -> dict[str, Any] | None:
    """Apply one message from the front end; the reply to send, or None to stay silent."""
    cells = cells_of(data)
    if cells is None:
        return None
    result = notebook.sync_cells(cells, ns)
    return {"type": "dropped", "dag_ids": result.dag_ids, "messages": result.messages}


def register(ipython: Any, notebook: Notebook) -> bool:
    """Register the comm target in a kernel (not in a plain IPython shell); True if done."""
    if getattr(ipython, "kernel", None) is None:
        return False
    try:
        import comm
    except ImportError:  # pragma: no cover - ipykernel depends on it
        return False
    manager = comm.get_comm_manager()

    def opened(channel: Any, msg: dict[str, Any]) -> None:
        def receive(message: dict[str, Any]) -> None:
            try:
                reply = handle(notebook, ipython.user_ns, message["content"]["data"])
            except Exception as e:  # never break the kernel's message loop
                print(f"Kyte: could not compare the notebook's cells: {e}", file=sys.stderr)
                return
            if reply is not None:
                channel.send(reply)

        channel.on_msg(receive)
        receive(msg)  # the open message carries the first cell list

    manager.register_target(TARGET, opened)
    return True


def unregister(ipython: Any) -> None:
    """Remove the comm target (``%unload_ext``)."""
    if getattr(ipython, "kernel", None) is None:
        return
    import comm

    manager = comm.get_comm_manager()
    if TARGET in getattr(manager, "targets", {}):
        manager.unregister_target(TARGET, manager.targets[TARGET])
