"""Run ownership: which live kernel owns which runs of a session.

Two kernels can be attached to one notebook's home at once (a second browser tab, a second
session opened on the same path, ``jupyter console --existing`` …). Each kernel holds a
*lease* on the home for as long as it lives:

* ``kyte/leases/<kernel id>.<pid>.lock`` — an empty file the kernel keeps open with an
  exclusive ``flock``. The OS drops that lock when the process ends, however it ends
  (``kill -9`` included), so *liveness is checked, not guessed*: a lease whose lock can be
  taken belongs to a dead kernel.
* ``kyte/leases/<kernel id>.<pid>.json`` — who holds it (pid, kernel id, start time,
  command) and its *claims*: the DAGs it is running now, each with the time the claim
  started. Written atomically, after the lock is held.

A kernel claims a DAG before it writes any of that DAG's runs, and drops the claim when the
run ends. Claims and recovery take ``kyte/leases/.lock`` while they read or change the
leases, so a claim never slips between another kernel's look at the leases and its repair.

What two live kernels on one notebook may do at once (docs/design.md, "Run ownership"):
read anything; define DAGs; run *different* DAGs. A run of a DAG that another live kernel
is running is refused with a message naming that kernel. Start-up recovery repairs only
what no live kernel owns.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audit import now
from .store import Session, SessionError, _atomic_write

LEASES_DIR = "kyte/leases"
#: In a claim's action: the run's tries run in LocalExecutor workers the kernel forked (they
#: end with it), not in the kernel.
PARALLEL_ACTION = "--parallelism"


class BusyError(SessionError):
    """Another live kernel of this notebook holds what this kernel asked for."""


@dataclass
class Holder:
    """What one lease file says, and whether its kernel is alive now."""

    kernel_id: str
    pid: int
    started: str
    command: str
    claims: dict[str, dict[str, str]] = field(default_factory=dict)
    alive: bool = False
    path: Path | None = None

    def describe(self) -> str:
        """A short name a user can act on: kernel id, pid, command and start time."""
        started = self.started.replace("T", " ")[:19]
        return (f"kernel {self.kernel_id} (pid {self.pid}, `{_short(self.command)}`, "
                f"started {started} UTC)")


def _short(command: str, limit: int = 60) -> str:
    return command if len(command) <= limit else command[: limit - 1] + "…"


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def kernel_id() -> str:
    """This kernel's id: from its connection file (``kernel-<id>.json``), else ``pid<N>``."""
    try:
        from ipykernel.connect import get_connection_file

        stem = Path(get_connection_file()).stem
    except Exception:  # not in a kernel (plain IPython, a script)
        return f"pid{os.getpid()}"
    stem = stem.removeprefix("kernel-")
    return re.sub(r"[^A-Za-z0-9_-]", "", stem)[:64] or f"pid{os.getpid()}"


def leases_dir(home: Path) -> Path:
    """Where a home's leases live."""
    return home / LEASES_DIR


def _is_locked(lock_path: Path) -> bool:
    """True if some process holds the lease lock (its kernel is alive)."""
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)  # closing drops the probe's own lock, if it got one
    return False


def holders(home: Path) -> list[Holder]:
    """Every lease of a home, each marked alive or dead (by its lock, not by its pid)."""
    out: list[Holder] = []
    folder = leases_dir(home)
    if not folder.is_dir():
        return out
    for info in sorted(folder.glob("*.json")):
        try:
            data: dict[str, Any] = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # written atomically: a partial file is someone else's temp file
        out.append(Holder(
            kernel_id=str(data.get("kernel_id", "?")),
            pid=int(data.get("pid", 0)),
            started=str(data.get("started", "")),
            command=str(data.get("command", "")),
            claims=dict(data.get("claims", {})),
            alive=_is_locked(info.with_suffix(".lock")),
            path=info,
        ))
    return out


@contextlib.contextmanager
def registry_lock(home: Path, timeout: float = 30.0) -> Iterator[None]:
    """Hold ``kyte/leases/.lock`` while reading or changing leases (waits ``timeout`` s)."""
    folder = leases_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BusyError(
                        f"Another kernel of this notebook has held {folder / '.lock'} for "
                        f"over {timeout:.0f} s. Try again, or restart the other kernel."
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


class Lease:
    """This kernel's lease on a session home; see the module docstring."""

    def __init__(self, session: Session, kernel: str, fd: int, stem: str) -> None:
        self.session = session
        self.kernel_id = kernel
        self.pid = os.getpid()
        self._fd = fd
        self._stem = stem
        self.info: dict[str, Any] = {
            "kernel_id": kernel,
            "pid": self.pid,
            "started": now(),
            "command": _command(self.pid),
            "claims": {},
        }

    @property
    def info_path(self) -> Path:
        """The lease's JSON file."""
        return leases_dir(self.session.home) / f"{self._stem}.json"

    @property
    def lock_path(self) -> Path:
        """The lease's lock file (held with ``flock`` while this kernel lives)."""
        return leases_dir(self.session.home) / f"{self._stem}.lock"

    @classmethod
    def acquire(cls, session: Session, kernel: str | None = None) -> Lease:
        """Take a lease on ``session`` for this process."""
        kernel = kernel or kernel_id()
        stem = f"{kernel}.{os.getpid()}"
        folder = leases_dir(session.home)
        folder.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC (Python's default): processes the task starts do not inherit the lock;
        # a forked try does, and holds it for the kernel, which is right.
        fd = os.open(folder / f"{stem}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks only while another kernel probes it
        lease = cls(session, kernel, fd, stem)
        with registry_lock(session.home):
            lease._write()
        return lease

    def _write(self) -> None:
        _atomic_write(self.info_path, json.dumps(self.info, indent=1))

    def others(self) -> list[Holder]:
        """The leases of other live kernels on this home."""
        return [h for h in holders(self.session.home)
                if h.alive and h.path != self.info_path]

    @contextlib.contextmanager
    def claim(self, dag_id: str, action: str) -> Iterator[None]:
        """Own the runs of ``dag_id`` while the block runs (``action``: what for, e.g.
        ``run_dag``). Raises :class:`BusyError` naming the kernel that owns them now."""
        with registry_lock(self.session.home):
            for other in self.others():
                held = other.claims.get(dag_id)
                if held is not None:
                    since = held.get("since", "").replace("T", " ")[11:19]
                    raise BusyError(
                        f"DAG {dag_id!r} is being run by another kernel of this notebook: "
                        f"{other.describe()}, running {held.get('action', 'a run')} since "
                        f"{since} UTC. Two kernels never run the same DAG at once; wait for "
                        "that run to end (or stop that kernel), then run this cell again."
                    )
            if dag_id in self.info["claims"]:  # re-entrant: a run inside a run
                yield
                return
            self.info["claims"][dag_id] = {"since": _db_time(), "action": action}
            self._write()
        try:
            yield
        finally:
            with registry_lock(self.session.home):
                self.info["claims"].pop(dag_id, None)
                self._write()

    def refuse_if_others(self, what: str, *, running_only: bool) -> None:
        """Raise :class:`BusyError` if another live kernel would be hurt by ``what``.

        ``running_only``: only kernels running something count (else any attached kernel).
        """
        for other in self.others():
            if running_only and not other.claims:
                continue
            doing = (f"running {', '.join(sorted(other.claims))}" if other.claims
                     else "attached to this notebook")
            raise BusyError(
                f"{what} would pull the metastore from under {other.describe()}, "
                f"{doing}. Wait for it, or shut that kernel down, then run this again."
            )

    def release(self) -> None:
        """Drop the lease (the kernel is shutting down or unloading Kyte)."""
        with contextlib.suppress(OSError, BusyError), registry_lock(self.session.home, 5):
            self.info_path.unlink(missing_ok=True)
            self.lock_path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _db_time() -> str:
    """Now, formatted as Airflow's ``UtcDateTime`` columns store it in SQLite (comparable)."""
    import datetime as _dt

    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass
class Recovered:
    """What start-up recovery repaired."""

    tries: list[str] = field(default_factory=list)
    runs: list[tuple[str, str]] = field(default_factory=list)
    skipped_dags: list[str] = field(default_factory=list)
    #: Every repaired run was a LocalExecutor run: its tries ran in the kernel's workers.
    in_workers: bool = False


def recover(session: Session, lease: Lease | None) -> Recovered:
    """Repair what kernels that died left behind; never touch what a live kernel owns.

    * Runs a dead kernel had claimed (its lease lists the DAG) and changed since its claim
      began, and still ``running``/``queued``: their unfinished tries are marked failed,
      and the run failed.
    * Tries left unfinished in DAGs no live kernel claims (a kernel that died before leases
      existed, or whose lease is gone): the same, for their runs.
    * DAGs a live kernel claims are left alone (reported in ``skipped_dags``).

    Dead leases are removed afterwards. Plain sqlite3 (``bridge.metastore``): it runs at
    kernel start, before Airflow is imported.
    """
    from ..bridge import metastore

    result = Recovered()
    if session.metastore_url is None and not session.db_path.exists():
        return result
    with registry_lock(session.home):
        every = holders(session.home)
        live = [h for h in every if h.alive and (lease is None or h.path != lease.info_path)]
        dead = [h for h in every if not h.alive]
        protected = {dag for h in live for dag in h.claims}
        dead_claims = [(dag, c.get("since", "")) for h in dead for dag, c in h.claims.items()
                       if dag not in protected]
        tries, runs = metastore.fail_interrupted(
            session.db_path, protected_dags=protected, dead_claims=dead_claims,
            metastore_url=session.metastore_url,
        )
        for h in dead:
            if h.path is not None:
                with contextlib.suppress(OSError):
                    h.path.unlink()
                    h.path.with_suffix(".lock").unlink()
    result.tries, result.runs = tries, runs
    result.skipped_dags = sorted(protected)
    parallel = {dag for h in dead for dag, c in h.claims.items()
                if PARALLEL_ACTION in str(c.get("action", ""))}
    result.in_workers = bool(runs) and all(dag in parallel for dag, _ in runs)
    for dag_id, run_id in runs:
        session.audit("run.interrupted", dag_id=dag_id, run_id=run_id, outcome="failed")
    return result
