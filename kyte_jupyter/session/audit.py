"""The session's audit log: one JSON object per line, appended by every action (SPEC §1).

Each entry has ``time``, ``user``, ``action``, the action's own fields (DAG, task, code
hash …) and ``outcome``. Writers append whole lines with ``O_APPEND``, so two kernels of one
notebook (or a kernel and the server) can write at once; a line torn by a killed writer is
skipped when reading, the rest is kept.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
from pathlib import Path
from typing import Any


def now() -> str:
    """The current UTC time, ISO 8601 with milliseconds (the audit log's ``time``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


#: Who acts, when someone other than the OS user: the hub user (JupyterHub sets
#: ``JUPYTERHUB_USER`` for each user's server and so its kernels), or ``KYTE_USER``.
USER_ENVS = ("KYTE_USER", "JUPYTERHUB_USER")


def os_user() -> str:
    """The OS user name (``$USER`` when the container has no passwd entry)."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return os.environ.get("USER", "unknown")


def user() -> str:
    """The acting user: the hub user under JupyterHub (``KYTE_USER`` wins), else the OS user."""
    for name in USER_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    return os_user()


def append(path: Path, action: str, outcome: str = "ok", **fields: Any) -> dict[str, Any]:
    """Append one entry to the audit log at ``path`` and return it (``None`` fields dropped)."""
    entry: dict[str, Any] = {"time": now(), "user": user(), "action": action}
    if entry["user"] != os_user():
        entry["os_user"] = os_user()  # a hub user: the OS account their server runs as
    entry.update({k: v for k, v in fields.items() if v is not None})
    entry["outcome"] = outcome
    line = json.dumps(entry, default=str, sort_keys=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_APPEND writes of one line are atomic enough for concurrent writers on Linux.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return entry


def read(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The entries of the audit log at ``path``, oldest first (the last ``limit`` if given)."""
    if not path.exists():
        return []
    entries = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn line from a killed writer: skip it, keep the rest
    return entries[-limit:] if limit else entries
