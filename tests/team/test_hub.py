"""The team deployment end to end: JupyterHub with the repository's hub configuration, two
users, each user's JupyterLab with Kyte, session metastores on one shared PostgreSQL server.

Real components: PostgreSQL (Debian's package, password authentication for users' roles),
JupyterHub with its ``SimpleLocalProcessSpawner``, configurable-http-proxy (npm, installed in
``deploy/jupyterhub`` by scripts/test.sh), ``jupyterhub-singleuser`` servers and ipykernel
kernels started through their REST API and driven over the kernel websocket. Only the
authenticator is a test one (JupyterHub's ``DummyAuthenticator`` with a shared password).

Alice and Bob each define a DAG ``same`` in a notebook ``same.ipynb`` and run it at the same
time; then each tries to reach the other's DAGs, runs, logs and database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pgserver import PgServer, pg_bin, running_postgres
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from kyte_jupyter.session import airflow_version
from kyte_jupyter.session.team import ensure_seed_template, role_name, user_password

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "jupyterhub"
CHP = DEPLOY / "node_modules" / ".bin" / "configurable-http-proxy"
PASSWORD = "hub-test-password"
USERS = ("alice", "bob")

pytestmark = [
    pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL is not installed"),
    pytest.mark.skipif(not CHP.exists(), reason="run `npm install` in deploy/jupyterhub"),
    pytest.mark.timeout(600),
]

DAG_CELL = '''\
%%dag
import os
from airflow.sdk import DAG, task

with DAG("same", schedule=None):
    @task
    def whoami():
        print("secret of", os.environ["KYTE_USER"])
        return os.environ["KYTE_USER"]

    @task
    def shout(name):
        print("shouting", name.upper())
        return name.upper()

    shout(whoami())
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Hub:
    """A running JupyterHub (stopped by PID) and what the test needs to talk to it."""

    def __init__(self, tmp: Path, pg: PgServer) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.homes = tmp / "homes"
        self.secret_file = tmp / "kyte_hub_secret"
        config = tmp / "test_hub_config.py"
        config.write_text(f"""
c = get_config()
load_subconfig({str(DEPLOY / "jupyterhub_config.py")!r})
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {PASSWORD!r}
c.Authenticator.allowed_users = {set(USERS)!r}
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {_free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{_free_port()}"
c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
c.JupyterHub.db_url = "sqlite:///{tmp}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.pid_file = "{tmp}/jupyterhub.pid"
c.Spawner.args = {["--allow-root"] if os.geteuid() == 0 else []!r}
c.Spawner.environment = {{"PYTHONUNBUFFERED": "1"}}
""")
        env = dict(os.environ)
        for name in ("KYTE_METASTORE_URL", "KYTE_SESSIONS_ROOT", "AIRFLOW_HOME", "KYTE_USER",
                     "JUPYTERHUB_USER"):
            env.pop(name, None)
        env.update({
            "KYTE_HUB_ADMIN_DB_URL": pg.admin_url,  # with the superuser's password
            "KYTE_HUB_SPAWNER": "simple",
            "KYTE_HUB_HOMES": str(self.homes),
            "KYTE_HUB_SECRET_FILE": str(self.secret_file),
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        })
        self.log = (tmp / "hub.log").open("wb")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config)],
            cwd=tmp, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/hub/api/", timeout=2).status_code == 200:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("JupyterHub did not start:\n" + self.log_text()[-3000:])
            time.sleep(0.2)

    def log_text(self) -> str:
        return (self.tmp / "hub.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # the hub stops users' servers and the proxy
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, PgServer]]:
    tmp = tmp_path_factory.mktemp("hub")
    with running_postgres(password_auth=True) as pg:
        # The seed template is migrated while the hub starts (the pre-spawn hook would do
        # it on the first spawn otherwise, as it does in production; it then finds it made).
        secret = tmp / "kyte_hub_secret"
        secret.write_text("e2e-secret")
        secret.chmod(0o600)
        seed = concurrent.futures.ThreadPoolExecutor(1).submit(
            ensure_seed_template, pg.admin_url, b"e2e-secret", airflow_version())
        h = Hub(tmp, pg)
        try:
            seed.result()
            yield h, pg
        finally:
            h.stop()


class UserClient:
    """One hub user, logged in through the hub's REST API."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub = hub
        self.name = name
        r = httpx.post(f"{hub.url}/hub/api/users/{name}/tokens",
                       json={"auth": {"username": name, "password": PASSWORD},
                             "note": "kyte e2e"}, timeout=30)
        assert r.status_code in (200, 201), r.text
        self.token = r.json()["token"]
        self.headers = {"Authorization": f"token {self.token}"}

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.hub.url}{path}", headers=self.headers,
                             timeout=60, **kwargs)

    def server(self, path: str, user: str | None = None) -> str:
        return f"/user/{user or self.name}/{path}"

    def start_server(self) -> None:
        r = self.api("POST", f"/hub/api/users/{self.name}/server")
        assert r.status_code in (201, 202), r.text

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/hub/api/users/{self.name}").json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return
            if not model.get("pending") and not server:
                raise AssertionError(f"{self.name}'s server failed:\n"
                                     + self.hub.log_text()[-4000:])
            time.sleep(0.5)
        raise AssertionError(f"{self.name}'s server not ready:\n" + self.hub.log_text()[-4000:])

    def open_notebook(self) -> str:
        nb = {"cells": [{"cell_type": "code", "source": DAG_CELL, "metadata": {},
                         "outputs": [], "execution_count": None, "id": "dagcell"}],
              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        r = self.api("PUT", self.server("api/contents/same.ipynb"),
                     json={"type": "notebook", "format": "json", "content": nb})
        assert r.status_code in (200, 201), r.text
        r = self.api("POST", self.server("api/sessions"),
                     json={"path": "same.ipynb", "name": "same.ipynb", "type": "notebook",
                           "kernel": {"name": "python3"}})
        assert r.status_code == 201, r.text
        return str(r.json()["kernel"]["id"])

    async def execute(self, kernel_id: str, code: str, timeout: float = 300,
                      user: str | None = None) -> dict[str, Any]:
        """Run one cell through the kernel websocket; stdout, status and error text."""
        url = (f"ws://127.0.0.1:{self.hub.port}"
               + self.server(f"api/kernels/{kernel_id}/channels", user))
        ws = await websocket_connect(HTTPRequest(url, headers=self.headers))
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": self.name, "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        out: dict[str, Any] = {"stdout": "", "status": None, "error": ""}
        idle = False
        deadline = time.monotonic() + timeout
        try:
            while not (idle and out["status"]):
                raw = await asyncio.wait_for(ws.read_message(), deadline - time.monotonic())
                assert raw is not None, "the kernel websocket closed"
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    out["stdout"] += content["text"]
                elif kind == "error":
                    out["error"] += "\n".join(content.get("traceback", [])) + content["evalue"]
                elif kind == "execute_reply":
                    out["status"] = content["status"]
                elif kind == "status" and content["execution_state"] == "idle":
                    idle = True
        finally:
            ws.close()
        return out


def _session_meta(hub: Hub, user: str) -> dict[str, Any]:
    [meta] = list((hub.homes / user / ".kyte" / "sessions").glob("*/kyte-session.json"))
    return dict(json.loads(meta.read_text()))


def test_two_users_same_dag_same_notebook_cannot_reach_each_other(
    hub: tuple[Hub, PgServer],
) -> None:
    h, pg = hub
    alice, bob = (UserClient(h, name) for name in USERS)
    # Wrong password: no token.
    r = httpx.post(f"{h.url}/hub/api/users/alice/tokens",
                   json={"auth": {"username": "alice", "password": "nope"}}, timeout=30)
    assert r.status_code in (401, 403)
    for u in (alice, bob):
        u.start_server()
    for u in (alice, bob):
        u.wait_ready()
    kernels = {u.name: u.open_notebook() for u in (alice, bob)}
    try:
        _check_two_users(h, pg, alice, bob, kernels)
    finally:  # kernels first: the hub then stops the servers in seconds
        for u in (alice, bob):
            with contextlib.suppress(httpx.HTTPError):
                u.api("DELETE", u.server(f"api/kernels/{kernels[u.name]}"))


def _check_two_users(h: Hub, pg: PgServer, alice: UserClient, bob: UserClient,
                     kernels: dict[str, str]) -> None:

    async def define_and_run(u: UserClient) -> dict[str, Any]:
        r = await u.execute(kernels[u.name], DAG_CELL)
        assert r["status"] == "ok", r
        return await u.execute(
            kernels[u.name],
            "r = %run_dag same\nprint('RESULT', r.state, r.run_id, "
            "sorted(r.task_states.items()))")

    async def both() -> list[dict[str, Any]]:
        return list(await asyncio.gather(define_and_run(alice), define_and_run(bob)))

    # Both users run their DAG at the same time.
    results = dict(zip(USERS, asyncio.run(both()), strict=True))
    run_ids = {}
    for name, r in results.items():
        assert r["status"] == "ok", r
        line = next(x for x in r["stdout"].splitlines() if x.startswith("RESULT"))
        assert "RESULT success" in line and "('shout', 'success')" in line, line
        run_ids[name] = line.split()[2]

    # Kyte's REST API, through the hub's proxy: each sees exactly their own session, DAG, run
    # and log.
    views = {}
    for u in (alice, bob):
        sessions = u.api("GET", u.server("kyte/sessions")).json()
        assert len(sessions) == 1 and sessions[0]["notebook_path"].endswith("same.ipynb")
        assert sessions[0]["home"].startswith(str(h.homes / u.name))
        sid = sessions[0]["id"]
        dags = u.api("GET", u.server(f"kyte/sessions/{sid}/dags")).json()
        assert [d["dag_id"] for d in dags] == ["same"]
        assert {n["task_id"]: n["state"] for n in dags[0]["nodes"]} == {
            "whoami": "success", "shout": "success"}
        runs = u.api("GET", u.server(f"kyte/sessions/{sid}/dags/same/runs")).json()
        assert [r["run_id"] for r in runs] == [run_ids[u.name]]
        log = u.api("GET", u.server(
            f"kyte/sessions/{sid}/dags/same/runs/{run_ids[u.name]}/tasks/whoami/logs")).json()
        assert f"secret of {u.name}" in log["text"]
        audit = u.api("GET", u.server(f"kyte/sessions/{sid}/audit")).json()
        assert audit and {e["user"] for e in audit} == {u.name}  # the hub user, not the OS's
        assert {"session.create", "task.run"} <= {e["action"] for e in audit}
        views[u.name] = (sid, run_ids[u.name])

    # Same notebook name, same DAG, but two sessions and two databases.
    metas = {name: _session_meta(h, name) for name in USERS}
    dbs = {name: m["metastore_url"].rsplit("/", 1)[1].split("?")[0]
           for name, m in metas.items()}
    assert dbs["alice"] != dbs["bob"] and dbs["alice"].startswith("kyte_alice_")
    for m in metas.values():
        assert "PGPASSWORD" not in json.dumps(m) and ":" not in m["metastore_url"].split("@")[0][
            len("postgresql+psycopg://"):]  # no password in the session's files

    # Alice through Kyte's REST API and the Jupyter API: nothing of Bob's.
    bob_sid, bob_run = views["bob"]
    for path in (f"kyte/sessions/{bob_sid}", f"kyte/sessions/{bob_sid}/dags",
                 f"kyte/sessions/{bob_sid}/dags/same/runs",
                 f"kyte/sessions/{bob_sid}/dags/same/runs/{bob_run}/tasks/whoami/logs",
                 "kyte/sessions", "api/kernels", "api/contents/same.ipynb"):
        r = alice.api("GET", alice.server(path, "bob"), follow_redirects=False)
        assert r.status_code in (302, 401, 403, 404), (path, r.status_code)
        assert "secret of bob" not in r.text and bob_run not in r.text
        # Bob's session id on Alice's own server: unknown there.
        if path.startswith(f"kyte/sessions/{bob_sid}"):
            mine = alice.api("GET", alice.server(path))
            assert mine.status_code == 404 and "secret of bob" not in mine.text
    r = alice.api("DELETE", alice.server(f"kyte/sessions/{bob_sid}", "bob"),
                  follow_redirects=False)
    assert r.status_code in (302, 401, 403, 404)
    assert (h.homes / "bob" / ".kyte" / "sessions" / bob_sid).is_dir()
    # Alice's token on Bob's kernel websocket: refused.
    with pytest.raises(Exception):  # noqa: B017 (tornado raises HTTPClientError or WebSocketClosedError)
        asyncio.run(alice.execute(kernels["bob"], "print(1)", timeout=30, user="bob"))

    # Alice's kernel: its Airflow sees only her run; her database role cannot open Bob's
    # database, nor log in as Bob.
    probe = f"""
import os, psycopg
from airflow.models import DagRun
from airflow.utils.session import create_session
with create_session() as s:
    print("RUNS", sorted(r.run_id for r in s.query(DagRun).all()))
for user, db in (({role_name('alice')!r}, {dbs['bob']!r}), ({role_name('bob')!r}, {dbs['bob']!r}),
                 ("postgres", {dbs['bob']!r}), ({role_name('alice')!r}, {dbs['alice']!r})):
    try:
        psycopg.connect(host="127.0.0.1", port={pg.port}, dbname=db, user=user,
                        connect_timeout=5).close()
        print("REACHED", user, db)
    except psycopg.Error as e:
        print("DENIED", user, db, " ".join(str(e).split()))
"""
    r = asyncio.run(alice.execute(kernels["alice"], probe))
    assert r["status"] == "ok", r
    out = r["stdout"]
    assert f"RUNS ['{run_ids['alice']}']" in out, out
    denied = {tuple(line.split()[1:3]): line for line in out.splitlines()
              if line.startswith("DENIED")}
    assert "permission denied for database" in denied[(role_name("alice"), dbs["bob"])], out
    # Alice's password is not Bob's, nor the superuser's (her server never sees either).
    assert "password authentication failed" in denied[(role_name("bob"), dbs["bob"])], out
    assert "password authentication failed" in denied[("postgres", dbs["bob"])], out
    assert f"REACHED {role_name('alice')} {dbs['alice']}" in out, out

    # The database credentials themselves: Alice's role cannot read, clone or drop Bob's.
    secret = h.secret_file.read_bytes().strip()
    alice_pw = user_password(secret, "alice")
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(pg.dsn(dbs["bob"], role_name("alice"), alice_pw)).close()
    with psycopg.connect(pg.dsn("postgres", role_name("alice"), alice_pw),
                         autocommit=True) as con:
        for statement in (f'CREATE DATABASE "alice_copy" TEMPLATE "{dbs["bob"]}"',
                          f'DROP DATABASE "{dbs["bob"]}"', f'ALTER DATABASE "{dbs["bob"]}" '
                          'RENAME TO "mine"', f'GRANT CONNECT ON DATABASE "{dbs["bob"]}" '
                          f'TO {role_name("alice")}'):
            with pytest.raises(psycopg.Error) as caught:
                con.execute(statement)
            assert isinstance(caught.value, psycopg.errors.InsufficientPrivilege |
                              psycopg.errors.ObjectInUse) or "must be owner" in str(
                                  caught.value) or "permission denied" in str(caught.value)
    with psycopg.connect(pg.dsn("postgres")) as admin:
        owners = dict(admin.execute(
            "SELECT d.datname, r.rolname FROM pg_database d JOIN pg_roles r "
            "ON r.oid = d.datdba WHERE d.datname LIKE 'kyte_%'").fetchall())
        tables = admin.execute(
            "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = %s",
            (role_name("alice"),)).fetchone()
    assert owners[dbs["alice"]] == role_name("alice") and owners[dbs["bob"]] == role_name("bob")
    assert tables == (False, False)
