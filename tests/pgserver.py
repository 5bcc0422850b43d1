"""A throwaway PostgreSQL server for tests and benchmarks (Debian's ``postgresql`` package).

PostgreSQL refuses to run as root, so when the tests run as root the cluster is initialised and
run as the ``postgres`` system user (``runuser -u postgres --``) in a temporary directory it
owns. It listens on 127.0.0.1 at a free port and on a Unix socket in that directory, trusts
local connections (the superuser is ``postgres``), and is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL binaries directory, or ``None``."""
    env = os.environ.get("KYTE_PG_BIN")
    if env:
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running PostgreSQL server."""

    port: int
    socket_dir: Path
    data_dir: Path
    pid: int
    #: The superuser's password over TCP (``password_auth``); the Unix socket needs none.
    admin_password: str = ""

    @property
    def admin_url(self) -> str:
        """SQLAlchemy URL of the superuser on the maintenance database, over TCP."""
        pw = f":{self.admin_password}" if self.admin_password else ""
        return f"postgresql+psycopg://postgres{pw}@127.0.0.1:{self.port}/postgres"

    def dsn(self, dbname: str = "postgres", user: str = "postgres", password: str = "") -> str:
        """A libpq connection string: over TCP, or for the superuser without a password,
        through the Unix socket."""
        if user == "postgres" and not password:
            return f"host={self.socket_dir} port={self.port} dbname={dbname} user=postgres"
        pw = f" password={password}" if password else ""
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}{pw}"


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def running_postgres(*, password_auth: bool = False) -> Iterator[PgServer]:
    """Start PostgreSQL in a temporary directory; stop it by PID and remove it on exit.

    With ``password_auth`` every TCP connection needs a password (``scram-sha-256``), the
    superuser's too (``admin_password``), as on a shared server; the Unix socket (a
    directory only root and ``postgres`` reach) still trusts the superuser.
    """
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql).")
    base = Path(tempfile.mkdtemp(prefix="kyte-pg-"))
    os.chmod(base, 0o755)
    data = base / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            _as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                          "postgres", "-E", "UTF8", "--no-sync", "--no-instructions"]),
            check=True, capture_output=True,
        )
        if password_auth:
            (data / "pg_hba.conf").write_text(
                "local all postgres trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
            )
        port = _free_port()
        proc = subprocess.Popen(
            _as_postgres([str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                          "-k", str(base), "-h", "127.0.0.1", "-c", "fsync=off",
                          "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                          "-c", "max_connections=200"]),
            stdout=subprocess.DEVNULL, stderr=(base / "server.log").open("wb"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (base / "server.log").read_text(errors="replace")
                raise RuntimeError(f"PostgreSQL did not start:\n{log[-2000:]}")
            time.sleep(0.05)
        pid = int((data / "postmaster.pid").read_text().split()[0])
        server = PgServer(port=port, socket_dir=base, data_dir=data, pid=pid)
        if password_auth:
            import secrets

            import psycopg

            server.admin_password = secrets.token_hex(16)
            with psycopg.connect(server.dsn(), autocommit=True) as con:
                con.execute(f"ALTER ROLE postgres PASSWORD '{server.admin_password}'")
        yield server
    finally:
        if proc is not None and proc.poll() is None:
            # The postmaster's own PID (runuser's child): SIGINT is its "fast shutdown".
            with contextlib.suppress(ProcessLookupError, OSError, ValueError, IndexError):
                os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        shutil.rmtree(base, ignore_errors=True)
