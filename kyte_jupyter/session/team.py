"""Team mode: one PostgreSQL role per hub user, and their template database, made by the hub.

JupyterHub's pre-spawn hook (``deploy/jupyterhub/jupyterhub_config.py``) calls
:func:`provision_user` with an administrator's connection before it starts a user's server:

* the user gets a login role ``kyte_<user>`` (``CREATEDB``, nothing else), whose password is
  derived from a hub secret (:func:`user_password`), so it never has to be stored;
* every database a user's Kyte creates is owned by that role and closed to ``PUBLIC``
  (:mod:`.metastore`), so no other user's role can connect to it;
* the user's template database is a copy of one *seed* template, migrated once per Airflow
  version for the whole hub (as the role ``kyte_seed``), whose objects are then handed to the
  user's role (``REASSIGN OWNED``): a user's first session needs no ``airflow db migrate``.

The user's server gets ``KYTE_METASTORE_URL`` (no password in it), ``PGPASSWORD`` (libpq
reads it, so neither the URL nor any file in a session home holds the password) and
``KYTE_USER`` (the audit trail's ``user``, and ``{user}`` in database names).

Nothing here imports Airflow, jupyter_server or JupyterHub.
"""

from __future__ import annotations

import hashlib
import hmac
import tempfile
from pathlib import Path
from typing import Any

from .metastore import (
    MAINTENANCE_DB,
    PgURL,
    name_part,
    render,
    template_name,
)

#: The role that owns the hub's seed template database.
SEED_ROLE = "kyte_seed"
#: Database names of users' session databases: ``{user}`` and ``{session}`` filled per user.
DEFAULT_DATABASE_TEMPLATE = "kyte_{user}_{session}"


def role_name(user: str) -> str:
    """The PostgreSQL role of a hub user."""
    return ("kyte_" + name_part(user))[:63]


def user_password(secret: bytes | str, user: str) -> str:
    """The password of a hub user's role: an HMAC of the user name under the hub's secret."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"kyte-metastore:{user}".encode(), hashlib.sha256).hexdigest()


def user_url_template(admin: PgURL, user: str,
                      database_template: str = DEFAULT_DATABASE_TEMPLATE) -> str:
    """The ``metastore_url`` of a user's server: their role, no password, ``{session}`` open."""
    url = PgURL(admin.scheme, role_name(user), None, admin.host, admin.port,
                database_template.replace("{user}", name_part(user)), admin.query)
    return url.sqlalchemy().replace("%7Bsession%7D", "{session}")


def _admin_connect(admin: PgURL, database: str = MAINTENANCE_DB) -> Any:
    import psycopg

    return psycopg.connect(**admin.with_database(database).conninfo(), autocommit=True)


def _ensure_role(con: Any, role: str, password: str) -> None:
    from psycopg import sql

    exists = con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    con.execute(sql.SQL(
        verb + " ROLE {} LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOREPLICATION PASSWORD {}"
    ).format(sql.Identifier(role), sql.Literal(password)))


def ensure_seed_template(admin_url: str, secret: bytes | str, airflow_version: str,
                         database_template: str = DEFAULT_DATABASE_TEMPLATE) -> PgURL:
    """The hub's seed template database for this Airflow version, migrated once (as
    :data:`SEED_ROLE`, in a subprocess running ``airflow db migrate``)."""
    from .store import SessionStore

    admin = PgURL.parse(admin_url)
    password = user_password(secret, SEED_ROLE)
    with _admin_connect(admin) as con:
        _ensure_role(con, SEED_ROLE, password)
    seed = PgURL(admin.scheme, SEED_ROLE, password, admin.host, admin.port,
                 database_template.replace("{user}", "seed"), admin.query)
    template = seed.sqlalchemy().replace("%7Bsession%7D", "{session}")
    with tempfile.TemporaryDirectory(prefix="kyte-seed-") as root:
        store = SessionStore(Path(root), metastore_url=template, user="seed")
        return store.postgres_template()


def provision_user(admin_url: str, user: str, secret: bytes | str, airflow_version: str,
                   database_template: str = DEFAULT_DATABASE_TEMPLATE) -> dict[str, str]:
    """Make ``user``'s role and template database if missing; return their server's env."""
    from psycopg import sql

    admin = PgURL.parse(admin_url)
    role = role_name(user)
    password = user_password(secret, user)
    seed = ensure_seed_template(admin_url, secret, airflow_version, database_template)
    url_template = user_url_template(admin, user, database_template)
    mine = render(url_template, user=user, session=template_name(airflow_version))
    with _admin_connect(admin) as con:
        _ensure_role(con, role, password)
        if con.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                       (mine.database,)).fetchone() is None:
            building = mine.database[:55] + "_build"
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(building)))
            con.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                sql.Identifier(building), sql.Identifier(seed.database), sql.Identifier(role)))
            con.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                sql.Identifier(building)))
            with _admin_connect(admin, building) as inside:
                inside.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(
                    sql.Identifier(SEED_ROLE), sql.Identifier(role)))
            con.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(building), sql.Identifier(mine.database)))
    return {
        "KYTE_METASTORE_URL": url_template,
        "PGPASSWORD": password,
        "KYTE_USER": user,
    }


__all__ = [
    "DEFAULT_DATABASE_TEMPLATE", "SEED_ROLE", "ensure_seed_template", "provision_user",
    "role_name", "user_password", "user_url_template",
]
