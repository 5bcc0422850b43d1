"""Which strings are ids: checked before an id from a request goes near the file system.

The rules replicate Airflow's own (not imported: the server must not import Airflow):

* DAG and task ids: ``airflow.sdk.definitions._internal.node.validate_key`` and
  ``airflow.utils.helpers.validate_key`` — ``KEY_REGEX = r"^[\\w.-]+$"`` (``\\w`` is Unicode,
  as in Python's ``re``), at most 250 characters, and no ``..`` (refused since Airflow 3.3
  unless ``[core] allow_double_dot_in_ids``; refused here always, it is a path trick).
* run ids: ``DagRun.validate_run_id`` — the generated form
  (``manual__2026-01-02T03:04:05+00:00``, ``RUN_ID_REGEX``) or ``[scheduler]
  allowed_run_id_pattern`` (default ``^[A-Za-z0-9_.~:+-]+$``), no ``..``, and at most
  ``ID_LEN`` = 250 characters (``airflow.models.base``).
* session ids: what :mod:`kyte_jupyter.session` makes (``<slug>-<10 hex>``).

Unlike ``re.match(r"...$")`` these use :func:`re.fullmatch`, so a trailing newline is refused.
"""

from __future__ import annotations

import re

#: ``airflow.models.base.ID_LEN`` and ``validate_key``'s default ``max_length``.
ID_LEN = 250

_KEY = re.compile(r"[\w.-]+")
_RUN_ID = re.compile(r"[A-Za-z0-9_.~:+-]+")
_SESSION_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,80}")

#: JSON Schema patterns of the same rules, for docs/openapi.yaml.
KEY_PATTERN = r"^[\w.-]{1,250}$"
RUN_ID_PATTERN = r"^[A-Za-z0-9_.~:+-]{1,250}$"
SESSION_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,80}$"


def valid_key(value: object) -> bool:
    """Whether ``value`` is a valid Airflow DAG or task id."""
    return (
        isinstance(value, str)
        and len(value) <= ID_LEN
        and _KEY.fullmatch(value) is not None
        and ".." not in value
    )


def valid_run_id(value: object) -> bool:
    """Whether ``value`` is a run id Airflow accepts (default ``allowed_run_id_pattern``)."""
    return (
        isinstance(value, str)
        and len(value) <= ID_LEN
        and _RUN_ID.fullmatch(value) is not None
        and ".." not in value
    )


def valid_session_id(value: object) -> bool:
    """Whether ``value`` has the shape of a Kyte session id."""
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


def id_problem(label: str, value: str) -> str | None:
    """Why ``value`` is not a valid ``label`` (dag_id, task_id, run_id, session_id), or None."""
    if label == "session_id":
        ok = valid_session_id(value)
        rule = "lower-case letters, digits, '_' and '-' (as Kyte makes them)"
    elif label == "run_id":
        ok = valid_run_id(value)
        rule = f"letters, digits and '_.~:+-', no '..', at most {ID_LEN} characters"
    else:
        ok = valid_key(value)
        rule = f"letters, digits, '_', '.' and '-', no '..', at most {ID_LEN} characters"
    if ok:
        return None
    shown = value if len(value) <= 80 else value[:77] + "..."
    return f"{label} {shown!r} is not an Airflow id ({rule})."
