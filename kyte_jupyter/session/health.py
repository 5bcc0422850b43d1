"""Is the session's metastore sound? Checks of ``airflow.db``, the messages, and the repair.

A kernel keeps one :class:`Watch` on its session's metastore. It checks the file when the
kernel starts, before and after every run and whenever a write fails:

* **identity** — the path still names the file this kernel opened (not deleted, not
  replaced): a ``stat``;
* **header** — the 100-byte SQLite header is there and says a size the file has (catches a
  truncated file, an overwritten header, an emptied file): one small read;
* **quick check** — ``PRAGMA quick_check`` on a fresh connection (catches damaged pages that
  this kernel's page cache would hide), run at start and whenever the file changed on disk
  since the last good check (the kernel's own writes go to the WAL file, so that is rare).
  Measured here: 12-29 ms for a 0.7 MB metastore; skipped above :data:`DEEP_CHECK_MAX_BYTES`;
* **write lock** — ``BEGIN IMMEDIATE`` with a bounded wait (``KYTE_METASTORE_LOCK_TIMEOUT``,
  default 10 s); on time-out it names who holds the lock (a kernel's lease, or the pid and
  command ``/proc/locks`` shows).

:func:`repair` moves a damaged file aside (``airflow.db.damaged-<UTC time>``, with its WAL),
starts a fresh metastore from the template and keeps logs, the audit trail and graph
snapshots. Nothing here imports Airflow.

A session whose metastore is a PostgreSQL database (``metastore_url``) has no file to check:
the server guards its own storage, locks wait for ``lock_timeout`` and a lost connection is
an ordinary database error. :class:`Watch` reports it ``ok`` without looking, and
:func:`repair` refuses (drop the session instead).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import sqlite3
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .store import Session, SessionError, SessionStore

LOCK_TIMEOUT_ENV = "KYTE_METASTORE_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 10.0
#: Above this size the quick check is skipped (≈ 1 s of reading at the rates measured here).
DEEP_CHECK_MAX_BYTES = 256 * 1024 * 1024
_MAGIC = b"SQLite format 3\x00"

#: The kinds of trouble, as ``Status.kind``.
KINDS = ("ok", "missing", "replaced", "empty", "truncated", "not_sqlite", "corrupt",
         "not_airflow", "locked", "unreadable")


def lock_timeout() -> float:
    """How long to wait for another process's write lock (``$KYTE_METASTORE_LOCK_TIMEOUT``)."""
    try:
        return max(0.0, float(os.environ.get(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT)))
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT


@dataclass(frozen=True)
class Status:
    """The outcome of a check: ``kind`` is one of :data:`KINDS`; ``detail`` says more (for
    ``locked``: the seconds waited); ``holder`` names who holds a lock."""

    kind: str
    detail: str = ""
    holder: str | None = None

    @property
    def ok(self) -> bool:
        """True if nothing is wrong."""
        return self.kind == "ok"


OK = Status("ok")


class MetastoreError(SessionError):
    """The metastore is damaged, gone or locked; ``str()`` is the paragraph for the user."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status


def header_status(path: Path) -> Status:
    """Check the file's existence and its SQLite header against its size (cheap).

    Opens and closes the file: only for processes with no SQLite connection to it (closing
    any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
    included). A kernel uses :class:`Watch`, which keeps one descriptor open instead.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return Status("missing", "the file does not exist")
    except OSError as e:
        return Status("unreadable", str(e))
    try:
        return _header_of(fd)
    finally:
        os.close(fd)


def _header_of(fd: int) -> Status:
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, 100, 0)
    except OSError as e:
        return Status("unreadable", str(e))
    if size == 0:
        return Status("empty", "the file is empty (0 bytes)")
    if len(head) < 100:
        return Status("truncated", f"the file is {size} bytes, shorter than a SQLite header")
    if head[:16] != _MAGIC:
        return Status("not_sqlite", "its first bytes are not a SQLite header")
    page_size = struct.unpack(">H", head[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return Status("not_sqlite", f"its header gives an impossible page size ({page_size})")
    change, pages, valid_for = (struct.unpack(">I", head[o:o + 4])[0] for o in (24, 28, 92))
    if pages and change == valid_for and size < pages * page_size:
        return Status("truncated", f"the file is {size} bytes but its header says "
                                   f"{pages * page_size} ({pages} pages)")
    return OK


def quick_check(path: Path, timeout: float = 5.0) -> Status:
    """``PRAGMA quick_check`` and a look for Airflow's tables, on a fresh read-only connection."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    except sqlite3.Error as e:
        return Status("unreadable", str(e))
    try:
        rows = [r[0] for r in con.execute("PRAGMA quick_check(5)")]
        if rows != ["ok"]:
            return Status("corrupt", "SQLite's check found: " + "; ".join(map(str, rows[:3])))
        if con.execute("SELECT 1 FROM sqlite_master WHERE name='dag_run'").fetchone() is None:
            return Status("not_airflow", "it holds no Airflow tables")
    except sqlite3.OperationalError as e:
        if "locked" in str(e):
            return OK  # a reader only waits for an exclusive (non-WAL) writer; the probe tells
        return Status("corrupt", str(e))
    except sqlite3.DatabaseError as e:
        return Status("corrupt", str(e))
    finally:
        con.close()
    return OK


def write_probe(path: Path, timeout: float | None = None) -> Status:
    """Take the write lock (``BEGIN IMMEDIATE``) within ``timeout`` s and let it go again."""
    wait = lock_timeout() if timeout is None else timeout
    try:
        con = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=wait)
    except sqlite3.Error as e:
        return Status("unreadable", str(e))
    try:
        con.execute("BEGIN IMMEDIATE")
        con.rollback()
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            return Status("locked", f"{wait:g}", holder=lock_holder(path))
        if "readonly" in str(e):
            return Status("unreadable", str(e))
        return Status("corrupt", str(e))
    except sqlite3.DatabaseError as e:
        return Status("corrupt", str(e))
    finally:
        con.close()
    return OK


def _lock_pids(path: Path) -> list[int]:
    """Pids with a POSIX write lock on the database or its WAL index (``/proc/locks``)."""
    inodes = set()
    for p in (path, path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):
            st = p.stat()
            inodes.add((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
    pids: list[int] = []
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return pids
    for line in lines:
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        try:
            kind, mode, pid, dev = parts[1], parts[3], int(parts[4]), parts[5]
            major, minor, ino = dev.split(":")
            key = (int(major, 16), int(minor, 16), int(ino))
        except (IndexError, ValueError):
            continue
        if kind == "POSIX" and mode == "WRITE" and key in inodes and pid != os.getpid():
            if pid not in pids:
                pids.append(pid)
    return pids


def lock_holder(path: Path) -> str | None:
    """Who holds a write lock on the metastore, as a user can act on it, if it can be told."""
    from .lease import _command, holders

    home = path.parent
    leases = {h.pid: h for h in holders(home) if h.alive}
    names = []
    for pid in _lock_pids(path):
        holder = leases.get(pid)
        if holder is not None:
            names.append(f"{holder.describe()} of this notebook")
        else:
            names.append(f"process {pid} (`{_command(pid)[:80]}`)")
    return ", ".join(names) or None


class Watch:
    """One kernel's watch on its session's metastore (see the module docstring).

    It keeps one read-only descriptor of ``airflow.db`` open for the kernel's life and reads
    the header through it: opening and closing the file again would drop the POSIX locks
    SQLite holds on it in this process, and another process would then checkpoint and
    delete the WAL under this kernel's feet.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._checked: tuple[int, int] | None = None  # (size, mtime_ns) at the last deep check
        self.last: Status = OK

    def _open(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(self.session.db_path, os.O_RDONLY)
            except OSError:
                return None
            st = os.fstat(self._fd)
            self._identity = (st.st_dev, st.st_ino)
        return self._fd

    def reset(self) -> None:
        """Watch the file now at the path (after a repair, with no connection open to it)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self._identity = self._checked = None

    def check(self, *, write: bool = False, deep: bool | None = None,
              timeout: float | None = None) -> Status:
        """Check the metastore now; ``deep`` None means "if the file changed on disk"."""
        if self.session.metastore_url is not None:
            return self._set(OK)  # PostgreSQL: no file to check (see the module docstring)
        path = self.session.db_path
        try:
            st: os.stat_result | None = path.stat()
        except FileNotFoundError:
            st = None
        except OSError as e:
            return self._set(Status("unreadable", str(e)))
        if st is None:
            opened = self._identity is not None
            return self._set(Status("missing", "the file was deleted while this kernel had it "
                                               "open" if opened else "the file does not exist"))
        fd = self._open()
        if fd is None:
            return self._set(Status("unreadable", f"{path} cannot be opened"))
        if (st.st_dev, st.st_ino) != self._identity:
            return self._set(Status("replaced", "the file was replaced by another one while "
                                                "this kernel had it open"))
        status = _header_of(fd)
        if status.ok:
            seen = (st.st_size, st.st_mtime_ns)
            if deep is None:
                deep = seen != self._checked
            if deep and st.st_size <= DEEP_CHECK_MAX_BYTES:
                status = quick_check(path)
                if status.ok:
                    self._checked = seen
        if status.ok and write:
            status = write_probe(path, timeout)
        return self._set(status)

    def _set(self, status: Status) -> Status:
        self.last = status
        return status

    def ensure(self, *, write: bool = True, after: bool = False) -> None:
        """Raise :class:`MetastoreError` (with the paragraph) unless the metastore is sound."""
        status = self.check(write=write)
        if not status.ok:
            raise MetastoreError(status, explain(status, self.session, after=after))

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Turn a database error raised inside the block into the paragraph, if the metastore
        is what failed (else the error goes up unchanged)."""
        try:
            yield
        except MetastoreError:
            raise
        except Exception as e:
            if not _is_db_error(e):
                raise
            status = self.check(write=False, deep=True)
            if status.ok and "locked" in str(e):
                status = Status("locked", f"{lock_timeout():g}",
                                holder=lock_holder(self.session.db_path))
            if status.ok:
                raise
            raise MetastoreError(status, explain(status, self.session, after=True)) from e


def _is_db_error(error: BaseException) -> bool:
    """True for sqlite3 / SQLAlchemy database errors, wherever in the chain they are."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        for cls in type(e).__mro__:
            if cls.__module__.startswith(("sqlite3", "sqlalchemy.exc")) and cls.__name__ in (
                "DatabaseError", "OperationalError", "DBAPIError", "IntegrityError",
            ):
                return True
        e = e.__cause__ or e.__context__
    return False


_WHAT = {
    "missing": "has been deleted",
    "replaced": "was replaced by another file while this kernel had it open",
    "empty": "has been emptied",
    "truncated": "has been cut short",
    "not_sqlite": "is no longer a SQLite database",
    "corrupt": "is damaged",
    "not_airflow": "holds no Airflow tables",
    "unreadable": "cannot be opened",
}


def explain(status: Status, session: Session, *, after: bool = False) -> str:
    """One paragraph for the user: what happened to the metastore and what to do."""
    db = session.db_path
    if status.kind == "locked":
        who = status.holder or "another process (its pid could not be told)"
        return (
            f"This notebook's Airflow metastore ({db}) is locked for writing by {who}. "
            f"Kyte waited {status.detail or lock_timeout()} s for it and "
            + ("could not record the run's end: do not trust this run's states. "
               if after else "ran nothing. ")
            + "Wait for that process to finish (or stop it), then run the cell again; set "
            f"{LOCK_TIMEOUT_ENV} (seconds) to wait longer."
        )
    happened = _WHAT.get(status.kind, "is not usable")
    detail = f" ({status.detail})" if status.detail else ""
    lost = ("The run may not have been recorded: do not trust its states. "
            if after else "Kyte ran nothing. ")
    return (
        f"This notebook's Airflow metastore ({db}) {happened}{detail}. {lost}"
        "Runs, task states and XComs in it may be lost; task logs "
        f"({session.logs_folder}) and the audit trail are kept. Run `%kyte repair --yes` to "
        "keep the damaged file aside (renamed with the time), start a fresh metastore and "
        "register this notebook's DAGs again; then run your tasks again."
    )


@dataclass
class Repaired:
    """What :func:`repair` did."""

    kind: str
    kept_as: list[str]


def repair(session: Session, status: Status) -> Repaired:
    """Keep the damaged metastore aside and start a fresh one from the template.

    ``airflow.db`` (and its ``-wal``/``-shm``/``-journal`` files) become
    ``airflow.db.damaged-<UTC time>[-wal…]`` next to it, so SQLite still pairs them (e.g.
    for ``sqlite3 airflow.db.damaged-… .recover``). Logs, graph snapshots and the audit
    trail stay. ``status`` is what the last check found (recorded in the audit trail).
    Callers make sure no other live kernel uses the session (``lease``) and close this
    process's connections to the file first.
    """
    if session.metastore_url is not None:
        raise SessionError(
            "This notebook's metastore is a PostgreSQL database, which Kyte does not repair: "
            "delete the session (its runs go with it) to start from a fresh database."
        )
    db = session.db_path
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    kept: list[str] = []
    for suffix in ("", "-wal", "-shm", "-journal"):
        src = db.with_name(db.name + suffix)
        if src.exists():
            dest = db.with_name(f"{db.name}.damaged-{stamp}{suffix}")
            os.replace(src, dest)
            kept.append(dest.name)
    template = SessionStore(session.home.parent).template_db()
    tmp = db.with_name(f".{db.name}.{os.getpid()}.{time.monotonic_ns()}")
    shutil.copyfile(template, tmp)
    os.replace(tmp, db)
    session.audit("session.repair", kind=status.kind, detail=status.detail or None,
                  kept_as=kept)
    return Repaired(status.kind, kept)
