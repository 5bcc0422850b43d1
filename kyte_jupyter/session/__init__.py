"""Isolated Airflow homes, one per notebook, and what keeps them sound.

* :mod:`.store` — find, create, rename, delete and prune homes (:class:`Session`,
  :class:`SessionStore`);
* :mod:`.template` — the migrated template metastore every new home is copied from;
* :mod:`.audit` — the session's audit log (JSON lines);
* :mod:`.lease` — which live kernel owns which runs of a session;
* :mod:`.health` — checks of the metastore file (corrupt, missing, locked) and its repair.

Nothing here imports Airflow or jupyter_server: the server uses this package too, and a
kernel must set up its home before Airflow is first imported.
"""

from __future__ import annotations

from .audit import now as _now
from .store import (
    HOME_ENV,
    ROOT_ENV,
    SESSION_FILE,
    Session,
    SessionError,
    SessionStore,
    _atomic_write,
    _file_lock,
    _normalise,
    _session_id_for,
    airflow_version,
    code_hash,
    default_sessions_root,
    valid_session_id,
)

__all__ = [
    "HOME_ENV",
    "ROOT_ENV",
    "SESSION_FILE",
    "Session",
    "SessionError",
    "SessionStore",
    "_atomic_write",
    "_file_lock",
    "_normalise",
    "_now",
    "_session_id_for",
    "airflow_version",
    "code_hash",
    "default_sessions_root",
    "valid_session_id",
]
