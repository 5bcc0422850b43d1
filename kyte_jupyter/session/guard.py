"""A kernel's guard over its session: its lease, its watch on the metastore, its repairs.

The notebook facade makes one :class:`Guard` when Kyte loads in a kernel and wraps what the
magics do in it:

* ``run(dag_id, action)`` around a run: claims the DAG (refused, naming the other kernel,
  if another live kernel of this notebook runs it), checks the metastore before (nothing
  runs on a damaged, missing or locked file) and after (a run whose results did not reach
  the file is never reported as a success), and turns database errors into the paragraph
  that says what happened and what to do;
* ``write()`` / ``read()`` around other metastore use (``%%dag``, ``%kyte reset``, ``%xcom``);
* ``repair()`` for ``%kyte repair``.

Kernel-side only (it raises IPython's ``UsageError``); imports no Airflow itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from IPython.core.error import UsageError

from . import health
from .health import MetastoreError, Watch
from .lease import BusyError, Lease, recover
from .store import Session


@contextlib.contextmanager
def _as_usage() -> Iterator[None]:
    """Faults of the session reach the cell as a ``UsageError``: the message, no traceback
    (IPython shows a traceback for any other class, subclasses of ``UsageError`` included)."""
    try:
        yield
    except (MetastoreError, BusyError) as e:
        raise UsageError(str(e)) from None


class Guard:
    """See the module docstring."""

    def __init__(self, session: Session, lease: Lease, watch: Watch) -> None:
        self.session = session
        self.lease = lease
        self.watch = watch
        self.notice: str | None = None
        #: Registers the notebook's DAGs again (set by the notebook; used after a repair).
        self.resync: Callable[[], None] | None = None
        self._needs_resync = False

    @classmethod
    def start(cls, session: Session) -> Guard:
        """Take this kernel's lease, check the metastore, repair what dead kernels left.

        What the user should know (interrupted runs, a damaged file) goes to ``notice``.
        """
        guard = cls(session, Lease.acquire(session), Watch(session))
        status = guard.watch.check(deep=True)
        if not status.ok:
            guard.notice = "Kyte: " + health.explain(status, session)
            session.audit("metastore.check", outcome=status.kind, detail=status.detail)
            return guard
        recovered = recover(session, guard.lease)
        notes = []
        if recovered.tries or recovered.runs:
            what = ", ".join(recovered.tries) or ", ".join(r for _, r in recovered.runs)
            advice = (
                "Their tries ran in the executor's workers, which stopped with that kernel; "
                "run them again when you are ready." if recovered.in_workers else
                "If a task crashes its process, run it with --isolated.")
            notes.append(
                f"Kyte: a kernel stopped while {what} ran; marked failed (the rest of those "
                f"runs is kept). {advice}"
            )
        if recovered.skipped_dags:
            notes.append(
                "Kyte: another kernel of this notebook is running "
                f"{', '.join(recovered.skipped_dags)}; its runs were left alone."
            )
        guard.notice = "\n".join(notes) or None
        return guard

    def close(self) -> None:
        """Give the lease back (Kyte unloaded or the kernel shutting down)."""
        self.lease.release()

    # ---- around the magics ------------------------------------------------------------
    @contextlib.contextmanager
    def run(self, dag_id: str, action: str) -> Iterator[None]:
        """Own ``dag_id``'s runs and check the metastore before and after the block."""
        with _as_usage(), self.lease.claim(dag_id, action):
            self.watch.ensure(write=True)
            self._resync_if_needed()
            with self.watch.guard():
                yield
            self.watch.ensure(write=True, after=True)

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """Check the metastore (write lock included) before a block that writes to it."""
        with _as_usage():
            self.watch.ensure(write=True)
            self._resync_if_needed()
            with self.watch.guard():
                yield

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """Check the metastore before a block that only reads it."""
        with _as_usage():
            self.watch.ensure(write=False)
            with self.watch.guard():
                yield

    def _resync_if_needed(self) -> None:
        if self._needs_resync and self.resync is not None:
            self._needs_resync = False
            self.resync()

    # ---- %kyte ------------------------------------------------------------------------
    def status_lines(self) -> list[str]:
        """``%kyte``'s lines about the metastore and the other kernels of this notebook."""
        status = self.watch.check(deep=True)
        lines = [f"  metastore: {'ok' if status.ok else status.kind}"]
        if not status.ok:
            lines.append("  " + health.explain(status, self.session))
        for other in self.lease.others():
            doing = f", running {', '.join(sorted(other.claims))}" if other.claims else ""
            lines.append(f"  also open: {other.describe()}{doing}")
        return lines

    def reset_allowed(self) -> None:
        """Refuse ``%kyte reset`` while another live kernel is running something."""
        with _as_usage():
            self.lease.refuse_if_others("%kyte reset", running_only=True)

    def repair(self, confirmed: bool, on_replaced: Callable[[], None] | None = None) -> str:
        """``%kyte repair``: keep the damaged metastore aside, start a fresh one.

        ``on_replaced`` runs once the old file is closed by Kyte (this process's engine and
        caches forget it); by default the engine's connections are disposed."""
        status = self.watch.check(deep=True, write=True, timeout=1.0)
        if not confirmed:
            state = ("looks sound" if status.ok
                     else f"is not usable ({status.kind}: {status.detail})")
            raise UsageError(
                f"The metastore {state}. %kyte repair moves it aside as "
                "airflow.db.damaged-<time> and starts a fresh, empty one: every run, task "
                "state and XCom recorded in it leaves this notebook's Airflow (logs, the audit "
                "trail and your DAGs stay). Run `%kyte repair --yes` to do it."
            )
        if status.kind == "locked":
            raise UsageError(health.explain(status, self.session)
                             + " %kyte repair does not take a file another process writes to.")
        with _as_usage():
            self.lease.refuse_if_others("%kyte repair", running_only=False)
        if on_replaced is None:
            from ..bridge import metastore

            on_replaced = metastore.dispose_engine
        on_replaced()  # the engine's connections point at the old file
        done = health.repair(self.session, status)
        self.watch.reset()
        self.watch.check(deep=True)
        self._needs_resync = True
        kept = ", ".join(done.kept_as) or "nothing (the file was gone)"
        return (f"Repaired: kept {kept} in {self.session.home}; a fresh metastore is in "
                "place. Logs and the audit trail are kept; this notebook's DAGs are "
                "registered again on next use. Runs from before are not in it.")
