# JupyterHub configuration for a Kyte team deployment (docs/operator-guide.md, "Team deployment").
#
#   jupyterhub -f deploy/jupyterhub/jupyterhub_config.py
#
# Every user's JupyterLab runs Kyte (the server extension is enabled on install). Each user's
# notebook sessions live under their own root, and each session's Airflow metastore is a
# database of its own on one shared PostgreSQL server, owned by the user's own role:
#
#   KYTE_HUB_ADMIN_DB_URL  PostgreSQL URL of a role that may create roles and databases
#                          (e.g. postgresql+psycopg://postgres:PW@db.internal:5432/postgres).
#                          Only the hub process sees it; users' servers never do.
#   KYTE_HUB_SECRET_FILE   a file with the secret users' database passwords are derived from
#                          (created, mode 600, if missing; default: kyte_hub_secret next to the
#                          hub's working directory). Keep it with the hub's cookie secret.
#   KYTE_HUB_SPAWNER       "local" (default: LocalProcessSpawner, one system user per hub user)
#                          or "simple" (SimpleLocalProcessSpawner: one OS user for everyone,
#                          homes under KYTE_HUB_HOMES/{username}; for tests and demos only).
#   KYTE_HUB_HOMES         root of the "simple" spawner's homes (default /tmp/kyte-hub-homes).
#
# The authenticator is JupyterHub's default (PAM); set c.JupyterHub.authenticator_class in a
# file that loads this one (load_subconfig) for OAuth, LDAP, ….
import asyncio
import os
import secrets
from pathlib import Path

from kyte_jupyter.session import airflow_version
from kyte_jupyter.session.team import provision_user

c = get_config()  # type: ignore[name-defined]  # noqa: F821

ADMIN_DB_URL = os.environ.get("KYTE_HUB_ADMIN_DB_URL", "")
SECRET_FILE = Path(os.environ.get("KYTE_HUB_SECRET_FILE", "kyte_hub_secret")).absolute()
SPAWNER = os.environ.get("KYTE_HUB_SPAWNER", "local")
HOMES = Path(os.environ.get("KYTE_HUB_HOMES", "/tmp/kyte-hub-homes"))


def _secret() -> bytes:
    if not SECRET_FILE.exists():
        fd = os.open(SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return SECRET_FILE.read_bytes().strip()


if SPAWNER == "simple":
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = str(HOMES / "{username}")
else:
    c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
    c.LocalProcessSpawner.create_system_users = False

# configurable-http-proxy as `npm install` in this folder installs it (else: from PATH).
_CHP = Path(__file__).resolve().parent / "node_modules" / ".bin" / "configurable-http-proxy"
if _CHP.exists():
    c.ConfigurableHTTPProxy.command = [str(_CHP)]

c.Spawner.default_url = "/lab"
c.Spawner.cmd = ["jupyterhub-singleuser"]
# The first spawn after an Airflow upgrade migrates the seed template (tens of seconds).
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120
# Each user's server sees only their own database role; the hub's own settings stay here.
c.Spawner.env_keep = ["PATH", "PYTHONPATH", "LANG", "LC_ALL", "VIRTUAL_ENV"]

_provision_lock = asyncio.Lock()


async def kyte_pre_spawn_hook(spawner) -> None:  # type: ignore[no-untyped-def]
    """Give the user a PostgreSQL role and template database, and their server its env."""
    user = spawner.user.name
    env: dict[str, str] = {"KYTE_USER": user}
    if SPAWNER == "simple":
        home = Path(spawner.home_dir)
        home.mkdir(parents=True, exist_ok=True)
        # Sessions under the user's own root (the default, under ~/.local/share, already is
        # per user with system users).
        env["KYTE_SESSIONS_ROOT"] = str(home / ".kyte" / "sessions")
    if ADMIN_DB_URL:
        async with _provision_lock:  # one seed migration, even when many users spawn at once
            env.update(await asyncio.to_thread(
                provision_user, ADMIN_DB_URL, user, _secret(), airflow_version()))
    spawner.environment.update(env)


c.Spawner.pre_spawn_hook = kyte_pre_spawn_hook
