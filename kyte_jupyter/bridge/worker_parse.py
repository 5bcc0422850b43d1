"""In LocalExecutor workers forked from the kernel, with ``KYTE_PARSE_ONCE=1``: each DAG file
is parsed once per worker, not once per try.

Why: Airflow's task runner parses the try's DAG file in every task process
(``task_runner.parse`` builds a ``BundleDagBag``). That is Airflow's price for a fresh
process per try, and it grows with the DAG: measured here (one warm process, 2 CPUs),
parsing the benchmark's 64-task DAG takes ~32 ms of CPU, its 200-task DAG ~90 ms, a
1,000-task DAG ~0.8 s — per try. A worker's task processes are forks of the worker, so a
parse the worker made before forking is already in each of them, copied on write.

Why opt-in: a parse shared by a worker's tries is not a parse per try. The file's top-level
code runs once per worker, in the worker: it sees no parsing context
(``get_parsing_context()`` is empty), no ORM block, and its output, ``atexit`` handlers and
other process state are the worker's, not each try's. Airflow's per-try parse stays the
default, so a parallel run behaves as a deployment does.

How:

* in a worker, :func:`parse_before_fork` wraps ``ActivitySubprocess.start``: before it forks
  a try's task process, the worker builds the ``BundleDagBag`` exactly as ``parse`` would
  (same bundle, path and arguments), once per DAG file version;
* in the task process, :func:`serve_parsed_bags` makes ``BundleDagBag(...)`` return that bag
  when the arguments are the same and the file is unchanged (inode, size, mtime). Everything
  else in ``parse`` runs as before: bundle checks, the task lookup, the startup log line.

A DAG file is still parsed per try when its parse in the worker:

* used the task runner's channel to its supervisor (top-level ``Variable.get``,
  ``Connection`` or XCom reads: those answers belong to the try);
* left a file descriptor open, a thread running (a connection or client opened at the top
  level: every forked try would share its socket, and threads do not survive a fork) or an
  ``atexit`` handler registered (tries never run the worker's);
* raised (even ``SystemExit``), had import errors, or did not define the try's DAG.

A DAG file whose top-level code crashes the process (a segfault, ``os._exit``) takes the
worker with it, and its try stays queued until the run is interrupted.
"""

from __future__ import annotations

import os
import threading
from typing import Any

ONCE_ENV = "KYTE_PARSE_ONCE"

#: (dag file, bundle path, bundle name) -> (file stamp, the parsed bag or None when the file
#: must be parsed per try)
_bags: dict[tuple[str, str, str | None], tuple[tuple[int, int, int], Any]] = {}


def enabled() -> bool:
    """Whether workers parse each DAG file once (``KYTE_PARSE_ONCE=1``; default: per try)."""
    return os.environ.get(ONCE_ENV, "").lower() in ("1", "true", "yes")


def _open_fds() -> set[str] | None:
    try:
        return set(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _os_threads() -> set[str] | None:
    """This process's threads, as the OS lists them (also those ``threading`` never saw)."""
    try:
        return set(os.listdir("/proc/self/task"))
    except OSError:
        return None


def _process_state() -> tuple[Any, ...]:
    import atexit

    return (_open_fds(), _os_threads(), frozenset(threading.enumerate()),
            atexit._ncallbacks())


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _key(dag_folder: Any, bundle_path: Any, bundle_name: Any) -> tuple[str, str, str | None]:
    return (os.fspath(dag_folder or ""), os.fspath(bundle_path or ""), bundle_name)


class _SupervisorUsed(Exception):
    """The DAG file's top-level code asked the task runner's supervisor for something."""


class _NoSupervisor:
    """Stands in for ``task_runner.SUPERVISOR_COMMS`` while a worker parses: any use marks
    the file as one to parse per try (even when the DAG file catches the error)."""

    def __init__(self) -> None:
        self.used = False

    def __getattr__(self, name: str) -> Any:
        self.used = True
        raise _SupervisorUsed(name)


_MISSING = object()


def _parse(dag_rel_path: Any, bundle_info: Any) -> None:
    """In a worker: parse the try's DAG file as ``task_runner.parse`` would, once."""
    from pathlib import Path

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.sdk.execution_time import task_runner

    bundle = DagBundlesManager().get_bundle(name=bundle_info.name, version=bundle_info.version)
    bundle.initialize()
    dag_folder = os.fspath(Path(bundle.path, dag_rel_path))
    key = _key(dag_folder, bundle.path, bundle_info.name)
    stamp = _stamp(dag_folder)
    if stamp is None or (key in _bags and _bags[key][0] == stamp):
        return
    guard = _NoSupervisor()
    before = vars(task_runner).get("SUPERVISOR_COMMS", _MISSING)
    state = _process_state()
    task_runner.SUPERVISOR_COMMS = guard  # type: ignore[assignment]
    try:
        bag = BundleDagBag(dag_folder=dag_folder, safe_mode=False, load_op_links=False,
                           bundle_path=bundle.path, bundle_name=bundle_info.name)
    except BaseException:  # noqa: BLE001 - SystemExit at import too: the try parses it
        bag = None
    finally:
        if before is _MISSING:
            del task_runner.SUPERVISOR_COMMS
        else:
            task_runner.SUPERVISOR_COMMS = before
    changed = None in state or _process_state() != state
    if bag is not None and (guard.used or changed or bag.import_errors
                            or not bag.dags or _stamp(dag_folder) != stamp):
        bag = None
    _bags[key] = (stamp, bag)


def parse_before_fork() -> None:
    """In a worker: parse each try's DAG file before forking its task process."""
    from airflow.sdk.execution_time import supervisor

    start = supervisor.ActivitySubprocess.start.__func__  # type: ignore[attr-defined]

    def start_parsed(cls: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            _parse(kwargs["dag_rel_path"], kwargs["bundle_info"])
        except BaseException:  # noqa: BLE001 - the task process parses it, and reports errors
            pass
        return start(cls, *args, **kwargs)

    supervisor.ActivitySubprocess.start = classmethod(start_parsed)  # type: ignore[method-assign,assignment]


def serve_parsed_bags() -> None:
    """In a task process: ``BundleDagBag(...)`` with the worker's arguments is the worker's
    bag while the file is unchanged."""
    if all(bag is None for _, bag in _bags.values()):
        return
    from airflow.dag_processing import dagbag

    real = dagbag.BundleDagBag

    class ParsedInWorker(real):  # type: ignore[misc,valid-type]
        """``BundleDagBag`` that is the worker's parse for the same file and arguments."""

        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            if not args and kwargs.get("safe_mode") is False \
                    and kwargs.get("load_op_links") is False:
                key = _key(kwargs.get("dag_folder"), kwargs.get("bundle_path"),
                           kwargs.get("bundle_name"))
                stamp, bag = _bags.get(key, (None, None))
                if bag is not None and _stamp(key[0]) == stamp:
                    return bag
            return real(*args, **kwargs)  # not a ParsedInWorker: __init__ is not re-run

    dagbag.BundleDagBag = ParsedInWorker  # type: ignore[misc]
