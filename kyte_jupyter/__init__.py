"""Kyte for Jupyter: write, run and debug Apache Airflow DAGs in notebooks."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext kyte_jupyter``: attach this kernel to its notebook's Airflow home."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext kyte_jupyter``."""
    from .magics import unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import KyteExtensionApp

    return [{"module": "kyte_jupyter.server.app", "app": KyteExtensionApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "kyte-jupyter"}]
