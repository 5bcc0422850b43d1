"""Where a session's metastore lives: SQLite in its home (default), or a PostgreSQL database.

With ``metastore_url`` (the server trait) or ``$KYTE_METASTORE_URL`` set to a SQLAlchemy URL
template such as ``postgresql+psycopg://kyte_{user}:secret@db:5432/kyte_{user}_{session}``,
every session gets its own PostgreSQL database:

* ``{user}`` is the user name (the hub user under JupyterHub, else the OS user), ``{session}``
  the session id; both are reduced to ``[a-z0-9_]`` so they make valid database names, and a
  database name longer than PostgreSQL's 63 bytes is shortened with a hash;
* a *template database* (``{session}`` = ``tpl_<airflow version>``) is created and migrated
  once per Airflow version (``airflow db migrate``, in a subprocess), then each new session's
  database is a copy of it: ``CREATE DATABASE … TEMPLATE …`` (tens of milliseconds);
* every database Kyte creates is owned by the URL's role and closed to everyone else
  (``REVOKE ALL … FROM PUBLIC``): with one role per user, no user can connect to another's.

:func:`connect_readonly` opens a session's metastore for reading, whichever the backend, as a
DB-API connection with :mod:`sqlite3`'s conventions (``?`` parameters, rows readable by index
and name, ``sqlite3`` error classes, timestamps and JSON as the text SQLite holds), so the
readers in the server and the kernel run the same SQL on both.

No Airflow and no SQLAlchemy here: the server reads PostgreSQL with :mod:`psycopg` (3),
imported only when a PostgreSQL metastore is configured.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

if TYPE_CHECKING:
    import psycopg

METASTORE_ENV = "KYTE_METASTORE_URL"
#: The user name ``{user}`` stands for, when set (the hub sets it for each user's server).
USER_ENV = "KYTE_USER"
#: PostgreSQL's longest identifier, in bytes.
MAX_NAME = 63
#: The database the URL's role connects to for ``CREATE DATABASE`` / ``DROP DATABASE``.
MAINTENANCE_DB = "postgres"


class MetastoreURLError(ValueError):
    """The metastore URL (template) is not one Kyte can use; the message says why."""


def configured_template() -> str | None:
    """``$KYTE_METASTORE_URL``, or ``None`` (then sessions use SQLite)."""
    return os.environ.get(METASTORE_ENV) or None


def is_postgres(url: str | None) -> bool:
    """True for a ``postgresql://`` / ``postgresql+driver://`` URL."""
    return bool(url) and str(url).split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def name_part(value: str) -> str:
    """``value`` reduced to what may stand in a database or role name: ``[a-z0-9_]``."""
    return re.sub(r"[^a-z0-9_]+", "_", value.lower()).strip("_") or "x"


def _short(name: str) -> str:
    if len(name.encode()) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME - 11]}_{digest}"


@dataclass(frozen=True)
class PgURL:
    """A parsed ``postgresql[+driver]://user:password@host:port/database?options`` URL."""

    scheme: str
    user: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str
    query: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, url: str) -> PgURL:
        """Parse a SQLAlchemy PostgreSQL URL (``MetastoreURLError`` if it is not one)."""
        if not is_postgres(url):
            raise MetastoreURLError(
                f"metastore_url must be a PostgreSQL URL (postgresql+psycopg://…), got {_hide(url)}"
            )
        parts = urlsplit(url)
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise MetastoreURLError(f"metastore_url names no database: {_hide(url)}")
        try:
            port = parts.port
        except ValueError as e:
            raise MetastoreURLError(f"metastore_url has a bad port: {_hide(url)}") from e
        return cls(
            scheme=parts.scheme,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            host=parts.hostname,
            port=port,
            database=database,
            query=tuple(parse_qsl(parts.query)),
        )

    def with_database(self, database: str) -> PgURL:
        """The same server and role, another database."""
        return PgURL(self.scheme, self.user, self.password, self.host, self.port, database,
                     self.query)

    def sqlalchemy(self) -> str:
        """This URL for SQLAlchemy (and so Airflow), with the psycopg 3 driver."""
        auth = ""
        if self.user:
            auth = quote(self.user, safe="")
            if self.password is not None:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        host = self.host or ""
        if host and ":" in host:
            host = f"[{host}]"
        port = f":{self.port}" if self.port else ""
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='/')}" for k, v in self.query)
        return (f"postgresql+psycopg://{auth}{host}{port}/{quote(self.database, safe='')}"
                + (f"?{query}" if query else ""))

    def conninfo(self) -> dict[str, Any]:
        """Keyword arguments for :func:`psycopg.connect`."""
        out: dict[str, Any] = {"dbname": self.database}
        if self.user:
            out["user"] = self.user
        if self.password is not None:
            out["password"] = self.password
        if self.host:
            out["host"] = self.host
        if self.port:
            out["port"] = self.port
        out.update(dict(self.query))
        out.setdefault("connect_timeout", 10)
        return out


def _hide(url: str) -> str:
    """``url`` with its password masked (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def render(template: str, *, user: str, session: str) -> PgURL:
    """The URL of one database: ``{user}`` and ``{session}`` filled in (see the module doc)."""
    if "{session}" not in template:
        raise MetastoreURLError(
            "metastore_url must contain {session} (each notebook session gets its own "
            f"database): {_hide(template)}"
        )
    filled = template.replace("{user}", name_part(user)).replace(
        "{session}", name_part(session))
    url = PgURL.parse(filled)
    return url.with_database(_short(url.database))


def template_name(airflow_version: str) -> str:
    """The ``{session}`` of the template database for this Airflow version."""
    return "tpl_" + name_part(airflow_version)


class PostgresMetastores:
    """The PostgreSQL databases of one user's sessions, made from a URL template."""

    def __init__(self, template: str, user: str) -> None:
        self.template = template
        self.user = user
        render(template, user=user, session="probe")  # fail early on a bad template

    def url_for(self, session: str) -> PgURL:
        """The database URL ``{session}`` = ``session`` gives (nothing is created)."""
        return render(self.template, user=self.user, session=session)

    def _admin(self, url: PgURL) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(**url.with_database(MAINTENANCE_DB).conninfo(), autocommit=True)

    @contextlib.contextmanager
    def admin(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit connection of the URL's role to the maintenance database."""
        con = self._admin(self.url_for("probe"))
        try:
            yield con
        finally:
            con.close()

    @staticmethod
    def exists(con: psycopg.Connection[Any], name: str) -> bool:
        """True if a database called ``name`` exists."""
        return con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() \
            is not None

    def ensure_template(self, airflow_version: str, migrate: Any) -> PgURL:
        """The migrated template database of this Airflow version, made once.

        ``migrate(url)`` migrates the empty database at ``url`` (a subprocess running
        ``airflow db migrate``). Builders serialise on an advisory lock; a half-built
        template is never seen under its final name (it is renamed when done).
        """
        from psycopg import sql

        final = self.url_for(template_name(airflow_version))
        with self.admin() as con:
            if self.exists(con, final.database):
                return final
            key = int(hashlib.sha256(final.database.encode()).hexdigest()[:15], 16)
            con.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                if self.exists(con, final.database):
                    return final
                build = final.with_database(_short(final.database + "_build"))
                con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(build.database)))
                con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(build.database)))
                con.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                    sql.Identifier(build.database)))
                try:
                    migrate(build)
                except BaseException:
                    con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(build.database)))
                    raise
                con.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(build.database), sql.Identifier(final.database)))
            finally:
                con.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return final

    def create(self, session: str, template: PgURL) -> PgURL:
        """A new database for ``session``, cloned from ``template``; never an existing one
        (a name taken by another sessions root gets ``_2``, ``_3`` …)."""
        import psycopg
        from psycopg import sql

        base = self.url_for(session)
        with self.admin() as con:
            for n in range(1, 100):
                url = base if n == 1 else base.with_database(_short(f"{base.database}_{n}"))
                try:
                    con.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(url.database), sql.Identifier(template.database)))
                except psycopg.errors.DuplicateDatabase:
                    continue
                con.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                    sql.Identifier(url.database)))
                return url
        raise MetastoreURLError(f"No free database name for session {session!r}.")

    def drop(self, url: PgURL) -> None:
        """Drop a session's database (its open connections are ended)."""
        drop_database(url)


def drop_database(url: PgURL) -> None:
    """Drop the database at ``url``, connected as its role (its open connections end)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(**url.with_database(MAINTENANCE_DB).conninfo(), autocommit=True) as con:
        con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(url.database)))


# ---- reading, with sqlite3's conventions ----------------------------------------------------
class Row(tuple):  # type: ignore[type-arg]
    """A result row readable by index and by column name, like :class:`sqlite3.Row`."""

    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        """The column names."""
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = {c.name: i for i, c in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> Row:
        row = Row(values)
        row._names = names
        return row

    return make


def _translate_sql(text: str) -> str:
    """sqlite3's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return text.replace("%", "%%").replace("?", "%s")


def _as_sqlite_error(e: Exception) -> sqlite3.Error:
    import psycopg

    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
        return sqlite3.OperationalError(f"no such table or column ({text})")
    if isinstance(e, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled):
        return sqlite3.OperationalError(f"database is locked ({text})")
    if isinstance(e, psycopg.OperationalError | psycopg.errors.InsufficientPrivilege):
        return sqlite3.OperationalError(f"unable to open database ({text})")
    return sqlite3.DatabaseError(text)


class PgCursor:
    """The part of :class:`sqlite3.Cursor` Kyte's readers use."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def fetchone(self) -> Any:
        """The next row or ``None``."""
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        return list(self._cursor.fetchall())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor.fetchall())


class PgConnection:
    """A PostgreSQL connection that reads like a :class:`sqlite3.Connection`.

    ``execute`` takes ``?`` parameters; errors are raised as :mod:`sqlite3` errors (an
    unknown table as ``OperationalError('no such …')``), so code written for the SQLite
    metastore handles both. ``row_factory`` is accepted and ignored (rows are :class:`Row`).
    """

    row_factory: Any = None

    def __init__(self, con: psycopg.Connection[Any]) -> None:
        self._con = con

    def execute(self, text: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> PgCursor:
        """Run one statement."""
        import psycopg

        if text.strip().upper().startswith("BEGIN"):
            return PgCursor(self._con.execute("SELECT 1"))  # a transaction is always open
        try:
            return PgCursor(self._con.execute(_translate_sql(text), params))
        except psycopg.Error as e:
            with contextlib.suppress(psycopg.Error):
                self._con.rollback()
            raise _as_sqlite_error(e) from e

    def commit(self) -> None:
        """Commit the transaction."""
        self._con.commit()

    def rollback(self) -> None:
        """Roll the transaction back."""
        self._con.rollback()

    def close(self) -> None:
        """Close the connection."""
        self._con.close()

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self._con.commit()
        else:
            self._con.rollback()


def _register_sqlite_text(con: psycopg.Connection[Any]) -> None:
    """Load timestamps as SQLite's naive-UTC text and JSON as text, as Kyte reads SQLite."""
    from psycopg.adapt import Loader

    class UtcText(Loader):
        def load(self, data: Any) -> str:
            text = bytes(data).decode()
            return text[:-3] if text.endswith("+00") else text

    class Text(Loader):
        def load(self, data: Any) -> str:
            return bytes(data).decode()

    con.adapters.register_loader("timestamptz", UtcText)
    con.adapters.register_loader("timestamp", Text)
    con.adapters.register_loader("json", Text)
    con.adapters.register_loader("jsonb", Text)


def connect_postgres(url: str, *, readonly: bool = True, timeout: float = 10.0) -> PgConnection:
    """Open a session's PostgreSQL metastore with sqlite3's conventions (see the module doc)."""
    import psycopg

    pg = PgURL.parse(url)
    info = pg.conninfo()
    info["connect_timeout"] = max(1, int(timeout))
    # Bounded waits for locks, as SQLite's busy timeout bounds them.
    options = f"-c TimeZone=UTC -c lock_timeout={int(timeout * 1000)}"
    if readonly:
        options += " -c default_transaction_read_only=on"
    info["options"] = (info.get("options", "") + " " + options).strip()
    try:
        con = psycopg.connect(**info)
    except psycopg.Error as e:
        raise _as_sqlite_error(e) from e
    con.row_factory = _row_factory
    _register_sqlite_text(con)
    return PgConnection(con)


def connect_readonly(
    metastore_url: str | None, db_path: Path, *, timeout: float = 5.0
) -> sqlite3.Connection | PgConnection:
    """A read-only connection to a session's metastore: PostgreSQL at ``metastore_url`` if
    set, else the SQLite file ``db_path``. Both raise :mod:`sqlite3` errors."""
    if metastore_url:
        return connect_postgres(metastore_url, readonly=True, timeout=timeout)
    return sqlite3.connect(db_path.absolute().as_uri() + "?mode=ro", uri=True, timeout=timeout)


__all__ = [
    "MAINTENANCE_DB", "METASTORE_ENV", "USER_ENV", "MetastoreURLError", "PgConnection",
    "PgCursor", "PgURL", "PostgresMetastores", "Row", "configured_template", "connect_postgres",
    "connect_readonly", "drop_database", "is_postgres", "name_part", "render", "template_name",
]


#: A metastore connection as Kyte's readers use it: the SQLite file, or PostgreSQL read the
#: same way (``?`` placeholders, rows by index or name).
Connection = sqlite3.Connection | PgConnection
