"""Isolated Airflow homes, one per notebook: find, create, rename, delete, prune.

A *session* is a directory (its *home*) holding everything Airflow keeps for one notebook:
``airflow.cfg``, the SQLite metastore ``airflow.db``, the ``dags/`` folder, ``logs/`` and
Kyte's own ``kyte/`` folder (graph snapshots and the audit log).  Homes live under the
*sessions root* and are found again by the notebook path recorded in ``kyte-session.json``,
so they survive kernel and server restarts, and follow a notebook that is renamed.

A new home is ready in milliseconds: the metastore is a copy of a template that was
migrated once per Airflow version (``airflow db migrate`` takes seconds, a copy does not).
With a PostgreSQL ``metastore_url`` (:mod:`.metastore`) the metastore is instead a database
of its own, cloned with ``CREATE DATABASE … TEMPLATE`` from a migrated template database.

This module never imports Airflow (the server uses it) and never imports jupyter_server.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from . import audit as _audit
from . import metastore as _metastore
from .audit import now as _now

SESSION_FILE = "kyte-session.json"
ROOT_ENV = "KYTE_SESSIONS_ROOT"
HOME_ENV = "KYTE_SESSION_HOME"

_AIRFLOW_CFG = """\
# Written by Kyte for this notebook's private Airflow. Edit freely: Kyte only writes it once.
[core]
dags_folder = {home}/dags
load_examples = False
unit_test_mode = False
# Serialized DAGs are read by the Kyte server extension without Airflow.
compress_serialized_dags = False

[database]
{database}load_default_connections = False

[logging]
base_log_folder = {home}/logs
dag_processor_child_process_log_directory = {home}/logs/dag_processor
# Keep metastore bookkeeping out of task logs and cell output.
namespace_levels = airflow.api_fastapi=WARNING airflow.dag_processing=WARNING
  airflow.serialization=WARNING airflow.models.dagrun=WARNING airflow.models.dag=WARNING
  airflow.models.dag_version=WARNING airflow.sdk.definitions.dag=WARNING sqlalchemy=WARNING
"""


class SessionError(Exception):
    """A session could not be created, found or used; the message says what to do."""


def default_sessions_root() -> Path:
    """The sessions root: ``$KYTE_SESSIONS_ROOT``, else ``<jupyter data dir>/kyte/sessions``."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser()
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "kyte" / "sessions"


def airflow_version() -> str:
    """The installed Airflow version, read from package metadata (Airflow is not imported)."""
    try:
        return metadata.version("apache-airflow-core")
    except metadata.PackageNotFoundError:
        return metadata.version("apache-airflow")


_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,80}$")


def valid_session_id(session_id: str) -> bool:
    """True if ``session_id`` has the shape of an id this module makes (no path tricks)."""
    return bool(_ID_RE.match(session_id))


def _session_id_for(notebook_path: str) -> str:
    stem = Path(notebook_path).stem or "notebook"
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40] or "notebook"
    digest = hashlib.sha256(notebook_path.encode()).hexdigest()[:10]
    return f"{slug}-{digest}"


@dataclass
class Session:
    """One notebook's Airflow home."""

    id: str
    home: Path
    notebook_path: str
    created: str = ""
    airflow_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- layout -------------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        """The SQLite metastore."""
        return self.home / "airflow.db"

    @property
    def metastore_url(self) -> str | None:
        """The PostgreSQL metastore's SQLAlchemy URL, or ``None`` for the SQLite file."""
        url = self.extra.get("metastore_url")
        return str(url) if url else None

    @property
    def dags_folder(self) -> Path:
        """The session's DAG folder (its Airflow ``dags-folder`` bundle)."""
        return self.home / "dags"

    @property
    def logs_folder(self) -> Path:
        """Task logs, laid out as Airflow lays them out."""
        return self.home / "logs"

    @property
    def kyte_dir(self) -> Path:
        """Kyte's own state: graph snapshots and the audit log."""
        return self.home / "kyte"

    @property
    def graphs_dir(self) -> Path:
        """One JSON graph snapshot per DAG, written by the kernel, read by the server."""
        return self.kyte_dir / "graphs"

    @property
    def audit_path(self) -> Path:
        """The audit log, JSON lines."""
        return self.kyte_dir / "audit.jsonl"

    def to_json(self) -> dict[str, Any]:
        """The public description of the session (REST API shape)."""
        return {
            "id": self.id,
            "notebook_path": self.notebook_path,
            "home": str(self.home),
            "created": self.created,
            "airflow_version": self.airflow_version,
        }

    def connect_readonly(self, timeout: float = 5.0) -> Any:
        """A read-only DB-API connection to the metastore, SQLite or PostgreSQL, with
        :mod:`sqlite3`'s conventions (see :func:`.metastore.connect_readonly`)."""
        return _metastore.connect_readonly(self.metastore_url, self.db_path, timeout=timeout)

    def env(self, extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment a kernel needs so that Airflow, imported later, uses this home."""
        env = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW_CONFIG": str(self.home / "airflow.cfg"),
            HOME_ENV: str(self.home),
            # Airflow skips re-serializing a DAG written less than 30 s ago; a notebook changes
            # DAGs faster than that, and each change must become a DAG version (%runs, %dag_diff).
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
        }
        env.update(self.extra.get("env", {}))
        if extra_env:
            env.update(extra_env)
        return env

    # ---- audit --------------------------------------------------------------------------
    def audit(self, action: str, outcome: str = "ok", **fields: Any) -> dict[str, Any]:
        """Append one entry to the audit log and return it."""
        return _audit.append(self.audit_path, action, outcome, **fields)

    def read_audit(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The audit log entries, oldest first (the last ``limit`` if given)."""
        return _audit.read(self.audit_path, limit)

    def mark_preloaded(self) -> None:
        """Record that the preload files were imported into the metastore."""
        self.extra["preloaded"] = True
        self._write_meta()

    def _write_meta(self) -> None:
        meta = {
            "id": self.id,
            "notebook_path": self.notebook_path,
            "created": self.created,
            "airflow_version": self.airflow_version,
            **self.extra,
        }
        _atomic_write(self.home / SESSION_FILE, json.dumps(meta, indent=2))


def code_hash(source: str) -> str:
    """A short, stable hash of a cell's code for the audit log."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class SessionStore:
    """All sessions under one root directory."""

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        airflow_config: Mapping[str, Mapping[str, str]] | None = None,
        env: Mapping[str, str] | None = None,
        connections_files: list[str] | None = None,
        variables_files: list[str] | None = None,
        metastore_url: str | None = None,
        user: str | None = None,
    ) -> None:
        self.root = Path(root).expanduser() if root else default_sessions_root()
        #: SQLAlchemy URL template of PostgreSQL session databases; empty: SQLite files.
        self.metastore_url = (
            metastore_url if metastore_url is not None else _metastore.configured_template()
        ) or ""
        if self.metastore_url and not _metastore.is_postgres(self.metastore_url):
            raise SessionError(
                "metastore_url must be a PostgreSQL URL template such as "
                "postgresql+psycopg://kyte_{user}:PASSWORD@HOST:5432/kyte_{user}_{session} "
                "(leave it empty for a SQLite file per session)."
            )
        self.user = user or _audit.user()
        self._postgres: _metastore.PostgresMetastores | None = None
        self._pg_template: tuple[str, _metastore.PgURL] | None = None
        self.airflow_config = {k: dict(v) for k, v in (airflow_config or {}).items()}
        self.extra_env = dict(env or {})
        self.connections_files = list(connections_files or [])
        self.variables_files = list(variables_files or [])

    # ---- lookup -------------------------------------------------------------------------
    def _home(self, session_id: str) -> Path:
        if not valid_session_id(session_id):
            raise SessionError(f"{session_id!r} is not a Kyte session id.")
        home = (self.root / session_id).resolve()
        if home.parent != self.root.resolve():
            raise SessionError(f"{session_id!r} is not a Kyte session id.")
        return home

    def load(self, home: Path) -> Session:
        """Read the session whose home is ``home``."""
        try:
            meta = json.loads((home / SESSION_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise SessionError(f"{home} is not a Kyte session home ({e}).") from e
        known = {"id", "notebook_path", "created", "airflow_version"}
        return Session(
            id=meta.get("id", home.name),
            home=home,
            notebook_path=meta.get("notebook_path", ""),
            created=meta.get("created", ""),
            airflow_version=meta.get("airflow_version", ""),
            extra={k: v for k, v in meta.items() if k not in known},
        )

    def get(self, session_id: str) -> Session:
        """The session with this id; ``KeyError`` if there is none."""
        home = self._home(session_id)
        if not (home / SESSION_FILE).exists():
            raise KeyError(session_id)
        return self.load(home)

    def list(self) -> list[Session]:
        """Every session under the root, newest first."""
        if not self.root.is_dir():
            return []
        out = []
        for child in self.root.iterdir():
            if child.name.startswith(".") or not (child / SESSION_FILE).is_file():
                continue
            with contextlib.suppress(SessionError):
                out.append(self.load(child))
        out.sort(key=lambda s: s.created, reverse=True)
        return out

    def find(self, notebook_path: str) -> Session | None:
        """The session of a notebook path, if it has one."""
        key = _normalise(notebook_path)
        preferred = self.root / _session_id_for(key)
        if (preferred / SESSION_FILE).is_file():
            s = self.load(preferred)
            if s.notebook_path == key:
                return s
        for s in self.list():
            if s.notebook_path == key:
                return s
        return None

    # ---- create / change ----------------------------------------------------------------
    def for_notebook(self, notebook_path: str) -> Session:
        """The notebook's session, created (from the template metastore) if it has none."""
        key = _normalise(notebook_path)
        found = self.find(key)
        if found is not None:
            return found
        with _file_lock(self.root / ".lock"):
            found = self.find(key)
            if found is not None:
                return found
            return self._create(key)

    @property
    def postgres(self) -> _metastore.PostgresMetastores | None:
        """The PostgreSQL databases of this store's sessions, if it has a ``metastore_url``."""
        if self.metastore_url and self._postgres is None:
            try:
                self._postgres = _metastore.PostgresMetastores(self.metastore_url, self.user)
            except _metastore.MetastoreURLError as e:
                raise SessionError(str(e)) from e
        return self._postgres

    def _create(self, key: str) -> Session:
        pg = self.postgres
        template = self.template_db() if pg is None else None
        pg_template = self.postgres_template() if pg is not None else None
        base = _session_id_for(key)
        session_id, n = base, 1
        while (self.root / session_id).exists():
            n += 1
            session_id = f"{base}-{n}"
        home = self.root / session_id
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".new-{session_id}-"))
        db_url: _metastore.PgURL | None = None
        try:
            for sub in ("dags", "logs", "kyte/graphs"):
                (tmp / sub).mkdir(parents=True)
            if pg is not None and pg_template is not None:
                db_url = self._pg_call(lambda: pg.create(session_id, pg_template))
            else:
                assert template is not None
                shutil.copyfile(template, tmp / "airflow.db")
            url = db_url.sqlalchemy() if db_url is not None else None
            if url is not None:  # it may hold the database password
                _write_private(tmp / "airflow.cfg", self._airflow_cfg(home, url))
            else:
                (tmp / "airflow.cfg").write_text(self._airflow_cfg(home), encoding="utf-8")
            session = Session(
                id=session_id,
                home=tmp,
                notebook_path=key,
                created=_now(),
                airflow_version=airflow_version(),
            )
            if url is not None:
                session.extra["metastore_url"] = url
            if self.extra_env:
                session.extra["env"] = dict(self.extra_env)
            preload = self._copy_preload(tmp)
            if preload:
                session.extra["preload"] = preload
            session._write_meta()
            os.rename(tmp, home)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if pg is not None and db_url is not None:
                with contextlib.suppress(Exception):
                    pg.drop(db_url)
            raise
        session.home = home
        session.audit("session.create", notebook_path=key)
        return session

    def _copy_preload(self, home: Path) -> dict[str, builtins.list[str]]:
        """Copy the operator's connection/variable files into a new home (imported later,
        by the kernel, the first time it uses Airflow: see ``_airflow.preload``)."""
        out: dict[str, builtins.list[str]] = {}
        for kind, files in (("connections", self.connections_files),
                            ("variables", self.variables_files)):
            for i, src in enumerate(files):
                if not os.path.isfile(src):
                    continue  # the server warns about missing files at start-up
                dest = home / "kyte" / "preload" / f"{kind}-{i}{Path(src).suffix}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
                out.setdefault(kind, []).append(str(dest.relative_to(home)))
        return out

    def _airflow_cfg(self, home: Path, metastore_url: str | None = None) -> str:
        if metastore_url:
            conn = metastore_url.replace("%", "%%")  # configparser interpolation
            # Airflow would derive an asyncpg URL for its async engine; psycopg 3 does both.
            database = f"sql_alchemy_conn = {conn}\nsql_alchemy_conn_async = {conn}\n"
        else:
            database = f"sql_alchemy_conn = sqlite:///{home}/airflow.db\n"
        text = _AIRFLOW_CFG.format(home=home, database=database)
        for section, values in self.airflow_config.items():
            text += f"\n[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
        return text

    def rename(self, old_path: str, new_path: str) -> Session | None:
        """Move a notebook's session with it when the notebook is renamed.

        A session already recorded at the new path (a notebook deleted there earlier) is
        detached, never deleted: its path becomes ``<path>.detached-<id>``.
        """
        s = self.find(old_path)
        if s is None:
            return None
        target = self.find(new_path)
        if target is not None and target.id != s.id:
            target.notebook_path = f"{target.notebook_path}.detached-{target.id}"
            target._write_meta()
            target.audit("session.detach", notebook_path=target.notebook_path)
        s.notebook_path = _normalise(new_path)
        s._write_meta()
        s.audit("session.rename", old_path=_normalise(old_path), notebook_path=s.notebook_path)
        return s

    def delete(self, session_id: str) -> None:
        """Remove a session's home and everything in it."""
        home = self._home(session_id)
        if not (home / SESSION_FILE).exists():
            raise KeyError(session_id)
        url = self.load(home).metastore_url
        trash = self.root / f".deleted-{session_id}-{int(time.time() * 1000)}"
        os.rename(home, trash)
        shutil.rmtree(trash, ignore_errors=True)
        if url:
            self.drop_database(url)

    def drop_database(self, url: str) -> None:
        """Drop a deleted session's PostgreSQL database (its connections are ended)."""
        self._pg_call(lambda: _metastore.drop_database(_metastore.PgURL.parse(url)))

    def prune(self, max_age_days: float) -> builtins.list[str]:
        """Delete sessions not used for ``max_age_days``; return their ids."""
        cutoff = time.time() - max_age_days * 86400
        removed: builtins.list[str] = []
        for s in self.list():
            try:
                last = max(p.stat().st_mtime for p in (s.home, s.db_path, s.audit_path)
                           if p.exists())
            except ValueError:
                continue
            if last < cutoff:
                self.delete(s.id)
                removed.append(s.id)
        return removed

    # ---- template metastore -------------------------------------------------------------
    def prepare_template(self) -> None:
        """Make the template metastore of this Airflow version if it is not there yet."""
        if self.postgres is not None:
            self.postgres_template()
        else:
            self.template_db()

    def _pg_call(self, fn: Any) -> Any:
        try:
            return fn()
        except SessionError:
            raise
        except Exception as e:  # psycopg errors: the server is down, a bad password …
            raise SessionError(
                f"Could not use the PostgreSQL metastore server ({type(e).__name__}: {e}). "
                "Check metastore_url / KYTE_METASTORE_URL and that the server is up."
            ) from e

    def postgres_template(self) -> _metastore.PgURL:
        """The migrated template database of this Airflow version (PostgreSQL), made once."""
        pg = self.postgres
        assert pg is not None, "no PostgreSQL metastore_url"
        version = airflow_version()
        if self._pg_template is None or self._pg_template[0] != version:
            url = self._pg_call(lambda: pg.ensure_template(version, self._migrate))
            self._pg_template = (version, url)  # it exists from now on: not asked again
        return self._pg_template[1]

    def _migrate(self, url: _metastore.PgURL) -> None:
        """``airflow db migrate`` into the empty database at ``url`` (in a subprocess)."""
        self.root.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(dir=self.root, prefix=".build-"))
        try:
            _write_private(build / "airflow.cfg", self._airflow_cfg(build, url.sqlalchemy()))
            self._run_template_build(build)
        finally:
            shutil.rmtree(build, ignore_errors=True)

    def _run_template_build(self, build: Path) -> None:
        env = dict(os.environ)
        env.update({"AIRFLOW_HOME": str(build), "AIRFLOW_CONFIG": str(build / "airflow.cfg")})
        env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
        proc = subprocess.run(
            [sys.executable, "-m", "kyte_jupyter.session.template"],
            env=env, capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise SessionError(
                "Could not prepare Airflow's metastore template "
                f"(airflow db migrate failed):\n{proc.stderr[-3000:]}"
            )

    def template_db(self) -> Path:
        """A migrated, empty metastore for this Airflow version, made once and then copied."""
        tdir = self.root / ".templates" / f"airflow-{airflow_version()}"
        db = tdir / "airflow.db"
        if db.is_file():
            return db
        with _file_lock(tdir.parent / f".{tdir.name}.lock"):
            if db.is_file():
                return db
            build = Path(tempfile.mkdtemp(dir=tdir.parent, prefix=".build-"))
            try:
                (build / "airflow.cfg").write_text(self._airflow_cfg(build), encoding="utf-8")
                self._run_template_build(build)
                if not (build / "airflow.db").is_file():
                    raise SessionError("Could not prepare Airflow's metastore template "
                                       "(airflow db migrate wrote no airflow.db).")
                tdir.mkdir(parents=True, exist_ok=True)
                os.replace(build / "airflow.db", db)
            finally:
                shutil.rmtree(build, ignore_errors=True)
        return db


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (``airflow.cfg`` may hold a database password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _normalise(notebook_path: str) -> str:
    """Notebook paths are compared as absolute, normalised paths (symlinks kept)."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(notebook_path)))
