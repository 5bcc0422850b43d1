"""Masking secrets in text bound for a cell, as Airflow masks task logs.

Why internal: the Task SDK's secrets masker (``airflow.sdk._shared.secrets_masker``) is what
masks connection passwords and sensitive variables in task logs; it has no public import. The
notebook's cell output is saved with the notebook, so every path to it goes through here.
"""

from __future__ import annotations

from typing import Any


def redact(text: str) -> str:
    """``text`` with every secret the masker knows replaced by ``***``."""
    from airflow.sdk._shared.secrets_masker import redact as _redact

    return str(_redact(text))


def redact_value(value: Any) -> Any:
    """A structure (str, list, dict …) with its secrets masked (Airflow's own recursion)."""
    from airflow.sdk._shared.secrets_masker import redact as _redact

    return _redact(value)
