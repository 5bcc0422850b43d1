"""Airflow's executors for parallel runs: the execution API served over HTTP, the executor,
and the scheduler's own queueing decision.

Why internal: running task instances concurrently without a scheduler process has no public
API. ``DAG.test(use_executor=True)`` shows the pieces (``ExecutorLoader``, ``ExecuteTask``
workloads, ``SchedulerJobRunner.process_executor_events``); it queues every scheduled task
instance at once, so pools and ``max_active_tasks`` would be ignored. Kyte therefore asks the
scheduler's critical section (``SchedulerJobRunner._executable_task_instances_to_queued``)
which scheduled task instances may be queued now: pools, ``max_active_tasks``,
``max_active_tis_per_dag(run)``, priority weights and executor slots are Airflow's decision.

* :class:`ExecutionApiServer` — Airflow's execution-API app under uvicorn in a thread of the
  kernel, bound to 127.0.0.1 (workers reach the session's metastore only through it; tokens
  are JWTs signed with a per-session secret);
* :class:`ExecutorRun` — one run's executor: schedule, queue, heartbeat, events, stop.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import worker_parse

log = logging.getLogger(__name__)

URL_ENV = "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"
SECRET_ENV = "AIRFLOW__API_AUTH__JWT_SECRET"
BIND_ENV = "KYTE_EXECUTION_API_BIND"
"""Address the session's execution API binds to (default 127.0.0.1; a remote worker needs
another, e.g. 0.0.0.0, together with ``AIRFLOW__CORE__EXECUTION_API_SERVER_URL``)."""


class ExecutorError(Exception):
    """An executor could not be used; the message says what to do."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ensure_jwt_secret() -> None:
    """Give this session a JWT signing secret of its own, unless one is configured.

    Workers never need it: the session signs each workload's token, and its execution API
    checks them.
    """
    import configparser

    if SECRET_ENV in os.environ:
        return
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(os.environ.get("AIRFLOW_CONFIG", ""))
    if cfg.get("api_auth", "jwt_secret", fallback=""):
        return  # the operator configured one for this home
    # Airflow's default is a random key per process; a key of the session's own, long
    # enough for HS512, set before any executor or API reads it.
    os.environ[SECRET_ENV] = secrets.token_urlsafe(64)


TIMEOUT_ENV = "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT"
THREADS_ENV = "KYTE_EXECUTION_API_THREADS"
"""Worker threads of the session's execution API (default 4: SQLite has one write lock)."""


def worker_api_timeout(seconds: float = 60.0) -> None:
    """Give workers' execution-API calls ``seconds`` (unless configured): the session's API
    shares the kernel's CPU and a SQLite metastore, so a call may wait longer than Airflow's
    default 5 s allows on a busy machine."""
    if TIMEOUT_ENV in os.environ:
        return
    os.environ[TIMEOUT_ENV] = str(seconds)
    import sys

    client = sys.modules.get("airflow.sdk.api.client")
    if client is not None:  # read once, at import: forked workers inherit the module
        client.API_TIMEOUT = seconds  # type: ignore[attr-defined]


WORKER_HEARTBEAT_S = 1
"""Seconds between a running try's heartbeats, for workers this kernel forks, where Linux
cannot wake a supervisor when its task process exits (no ``pidfd_open``; see
:func:`_wake_on_task_exit`).

Why: Airflow's supervisor waits for its task process in ``select`` calls of up to
``[workers] min_heartbeat_interval`` (5 s). When the task process closes its sockets a moment
before it has exited, the next wait has nothing left to wake it and lasts the full interval, so
the worker sits idle for up to 5 s after the try ended (measured: most 0 s tries of a 64-task
run held their worker 5-6 s). 1 s bounds that gap. A value the operator configured is kept.
"""


HEARTBEAT_TIMEOUT_S = 30
"""Seconds without a heartbeat after which a running try counts as lost (its worker died),
unless ``[scheduler] task_instance_heartbeat_timeout`` is configured. Airflow's default (300 s)
suits a scheduler nobody watches; a notebook cell should not wait five minutes to say so."""


def _configured(section: str, key: str) -> bool:
    """Whether the operator set ``[section] key`` (environment or the session's config)."""
    import configparser

    if f"AIRFLOW__{section.upper()}__{key.upper()}" in os.environ:
        return True
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(os.environ.get("AIRFLOW_CONFIG", ""))
    return cfg.has_option(section, key)


def heartbeat_timeout() -> float:
    """Seconds a running try may go without a heartbeat (see :data:`HEARTBEAT_TIMEOUT_S`)."""
    if _configured("scheduler", "task_instance_heartbeat_timeout"):
        from airflow.configuration import conf

        return conf.getfloat("scheduler", "task_instance_heartbeat_timeout")
    return float(HEARTBEAT_TIMEOUT_S)


class _Silent:
    """A logger that logs nothing."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


_SILENT = _Silent()


def prepare_forked_workers() -> None:
    """Before this process forks executor workers: settings they read, and work each of them
    would otherwise repeat.

    * without ``pidfd_open``, the supervisor's heartbeat interval (:data:`WORKER_HEARTBEAT_S`)
      unless configured;
    * the execution-API client's TLS context, built once here (loading the CA bundle takes
      ~0.1-0.3 s of CPU, which every forked worker paid on its first call; forks inherit the
      ``lru_cache`` that holds it);
    * the task runner's pydantic adapters, which each task process built again
      (:func:`~.startup.warm_task_runner_schemas`).
    """
    from airflow.sdk.api import client
    from airflow.sdk.execution_time import supervisor

    from .startup import warm_task_runner_schemas

    warm_task_runner_schemas()

    if not _pidfd_works() and not _configured("workers", "min_heartbeat_interval"):
        # Read once, at import: set on the module the forked workers inherit.
        supervisor.MIN_HEARTBEAT_INTERVAL = WORKER_HEARTBEAT_S
    # It logs "Using Public CAs from certifi" at info: a worker's line, not the cell's.
    logger = client.log
    client.log = _SILENT
    try:
        client.Client._get_ssl_context_cached(client.API_SSL_CA_FILE_PATH,
                                              client.API_SSL_CERT_PATH)
    finally:
        client.log = logger


class ExecutionApiServer:
    """Airflow's execution API app (the one ``airflow api-server`` mounts at ``/execution``),
    served by uvicorn in a daemon thread of this process."""

    def __init__(self) -> None:
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        #: The ASGI app served: Kyte's fast lane in front of Airflow's app (once started).
        self.lane: Any = None

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 60.0) -> str:
        """Start serving (once); returns the URL workers use (``…/execution/``)."""
        if self.running:
            return self.url
        import uvicorn
        from airflow.api_fastapi.common.dagbag import create_dag_bag
        from airflow.api_fastapi.execution_api.app import create_task_execution_api_app
        from fastapi import FastAPI

        ensure_jwt_secret()
        worker_api_timeout()
        configured = os.environ.get(URL_ENV)
        if configured:
            parts = urlsplit(configured)
            port = parts.port or 80
            url = configured
        else:
            port = free_port()
            url = f"http://127.0.0.1:{port}/execution/"
        host = os.environ.get(BIND_ENV, "127.0.0.1")
        app = create_task_execution_api_app()
        app.state.dag_bag = create_dag_bag()
        # Cadwyn builds its versioned routers on the app's first request: seconds of CPU and
        # tens of MB. The fast lane serves the calls every try makes without it, so most runs
        # never build them. The first call that needs the app builds them, once per kernel,
        # in the server's event loop: every call waits those seconds then (workers' calls
        # may take worker_api_timeout(); heartbeats have 30 s).

        threads = int(os.environ.get(THREADS_ENV, "4"))

        @contextlib.asynccontextmanager
        async def lifespan(_root: Any) -> AsyncIterator[None]:
            import anyio.to_thread

            # Routes run in AnyIO's worker threads (40 by default). With SQLite every write
            # takes the one database lock: many threads only wait on it (and time out on a
            # busy machine); a few keep it moving while other requests wait in the loop.
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
            # A mounted app's lifespan does not run by itself; the execution API registers
            # its JWT services in it.
            async with app.router.lifespan_context(app):
                yield

        root = FastAPI(title="Kyte session execution API", lifespan=lifespan)
        root.mount("/execution", app)
        from .execution import ExecutionApiFastLane

        self.lane = lane = ExecutionApiFastLane(root, app, "/execution", app.state.dag_bag)
        config = uvicorn.Config(lane, host=host, port=port, log_level="warning",
                                access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="kyte-execution-api", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                raise ExecutorError(
                    f"The session's execution API could not listen on {host}:{port}. Free the "
                    f"port, or set {URL_ENV} to another address."
                )
            if time.monotonic() > deadline:
                raise ExecutorError("The session's execution API did not start in time.")
            time.sleep(0.02)
        self._server, self._thread, self.url = server, thread, url
        os.environ[URL_ENV] = url  # what LocalExecutor workers (children) read
        return url

    def stop(self) -> None:
        """Stop serving (waits for the thread)."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None


_server = ExecutionApiServer()


def execution_api() -> ExecutionApiServer:
    """This process's execution-API server (started on first parallel run)."""
    return _server


# ---- worker processes ----------------------------------------------------------------------
_forking: list[int] = []  # [kernel pid] while this process forks executor workers
_in_worker: list[int] = []  # [worker pid] in a LocalExecutor worker this kernel forked


def _die_with_parent(parent: int, sig: int) -> None:
    """Ask Linux to send this process ``sig`` when its parent process ends.

    A kernel that is killed or crashes never runs ``executor.end()``, and a worker that is
    killed never stops its task process: without this, both would live on as orphans that
    nothing can report to (the session's execution API lived in the kernel; a try's only
    way to it is its worker's supervisor).
    """
    import sys

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, sig, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent ended before the request took effect
        os.kill(os.getpid(), sig)


@functools.cache
def _pidfd_works() -> bool:
    """Whether Linux gives this process pidfds (5.3 and later); asked once in the kernel,
    whose forked workers inherit the answer."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


class _ExitFd:
    """A pidfd in a supervisor's selector: readable once the task process has exited."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:  # the supervisor closed its selector before the exit
        self.close()


def _wake_on_task_exit() -> None:
    """In a worker: its supervisor's wait ends as soon as the task process exits.

    Airflow's supervisor learns of the exit by polling after each ``select`` (see
    :data:`WORKER_HEARTBEAT_S` for the gap that leaves). A pidfd of the task process among
    the selector's files makes that ``select`` return at the exit, so the worker takes its
    next try at once, and tries heartbeat at Airflow's own interval.
    """
    if not _pidfd_works():
        return
    import selectors

    from airflow.sdk.execution_time import supervisor

    register = supervisor.WatchedSubprocess._register_pipe_readers

    def register_with_exit(self: Any, *args: Any, **kwargs: Any) -> None:
        register(self, *args, **kwargs)
        try:
            exit_fd = _ExitFd(os.pidfd_open(self.pid))
        except OSError:
            return

        def exited(f: _ExitFd) -> bool:
            return False  # done: the supervisor calls closed(), then f.close()

        def closed(f: _ExitFd) -> None:
            self.selector.unregister(f)

        self.selector.register(exit_fd, selectors.EVENT_READ, (exited, closed))

    supervisor.WatchedSubprocess._register_pipe_readers = register_with_exit  # type: ignore[method-assign]


def _keep_fatal_signals_default() -> None:
    """In a worker and its task processes (its forks, which inherit this): Python handlers
    for SIGSEGV/SIGBUS/SIGFPE/SIGILL are not installed (with ``KYTE_PARSE_ONCE=1`` the worker
    parses DAG files itself).

    Why: Airflow's DAG importer (``PythonDagImporter``) installs a Python SIGSEGV handler
    while it parses the DAG file and never restores the default. A Python handler only sets
    a flag, so a task that then segfaults (a C extension, ``ctypes``) re-runs the faulting
    instruction forever: the try stays ``running`` and heartbeats, and the run never ends.
    With the default action the task process dies, and Airflow's supervisor ends the try as
    it ends any try whose process was killed by a signal.
    """
    fatal = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}
    install = signal.signal

    def guarded(signum: Any, handler: Any) -> Any:
        if signum in fatal and callable(handler):
            return signal.getsignal(signum)  # refused: the default action stays
        return install(signum, handler)

    signal.signal = guarded  # type: ignore[assignment]  # this process only


def _silence_kernel_streams(target: int) -> None:
    """In a forked worker: output for the kernel's streams goes to ``target`` instead.

    The kernel's ``sys.stdout`` sends to the notebook over ZMQ, and loggers configured in
    the kernel (Airflow's structlog) hold that object: from a worker, ipykernel would forward
    their lines into the cell. Every stream object of the kernel writes to ``target`` here.
    """
    import sys

    out = open(target, "w", buffering=1, closefd=False)  # noqa: SIM115 (lives with the process)
    sys.stdout = sys.stderr = out
    sys.__stdout__ = sys.__stderr__ = out  # type: ignore[misc]
    stream = sys.modules.get("ipykernel.iostream")
    if stream is not None:
        def write(self: Any, text: str) -> int:
            return out.write(text)

        def drop(self: Any) -> None:
            self._flush_pending = self._subprocess_flush_pending = False
            for _ in self._flush_buffers():
                pass

        stream.OutStream.write = write
        stream.OutStream.flush = lambda self: None
        # Loggers configured in the kernel (structlog's WriteLogger, after a serial run) hold
        # the kernel stream's original ``write``, bound before this fork: it buffers, then
        # sends the buffer to the notebook from ``_flush``. Here that drops it.
        stream.OutStream._flush = drop


def _after_fork_in_child() -> None:
    if _in_worker and _in_worker[0] != os.getpid():
        # A task process forked by a worker's supervisor ends with its worker. SIGKILL, as
        # an interrupted run's tries end: Airflow's task runner only calls on_kill() on
        # SIGTERM and leaves the ending to its supervisor, which is gone.
        parent = _in_worker[0]
        _in_worker.clear()
        _die_with_parent(parent, signal.SIGKILL)
        worker_parse.serve_parsed_bags()  # fatal signals: the worker's guard is inherited
        return
    if not _forking:
        return
    parent = _forking[0]
    _forking.clear()
    _in_worker[:] = [os.getpid()]
    # A worker is only a supervisor: it ends with the kernel, and its task process with it.
    _die_with_parent(parent, signal.SIGKILL)
    from airflow import settings

    # The kernel's pooled metastore connections are the kernel's: never use them here.
    if settings.engine is not None:
        settings.engine.dispose(close=False)
    # A worker's own output is not kept: each try's log (written by its task process, with
    # Airflow's secret masking) is the record of the try. LocalExecutor's supervisors also
    # echo every try's log lines to stdout, unmasked where the worker cannot know a try's
    # secrets; kept, that would be a second, unmasked copy of every log.
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    _silence_kernel_streams(1)
    restore_scheduler_logs()  # for the tries' logs; the worker's own output is dropped
    _wake_on_task_exit()
    _keep_fatal_signals_default()
    if worker_parse.enabled():
        worker_parse.parse_before_fork()


_hook_installed: list[bool] = []


@contextlib.contextmanager
def forking_workers() -> Iterator[None]:
    """Processes forked inside the block are executor workers: they end with this process,
    write nothing to the cell, and their task processes keep fatal signals' default action."""
    if not _hook_installed:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _hook_installed.append(True)
    _forking[:] = [os.getpid()]
    try:
        yield
    finally:
        _forking.clear()


# ---- one run's executor --------------------------------------------------------------------
class ExecutorRun:
    """One run's executor, fed the way Airflow's scheduler feeds it.

    * :meth:`schedule` — ready task instances become ``scheduled`` with a new try
      (``DagRun.schedule_tis``, as the scheduler does);
    * :meth:`queue` — the scheduler's critical section picks which scheduled task instances
      may be queued now (pools, ``max_active_tasks``, priority, executor slots), and each
      becomes an ``ExecuteTask`` workload naming the DAG file in its bundle;
    * :meth:`heartbeat` — the executor's heartbeat, then the scheduler's handling of executor
      events (a worker that died leaves its try to Airflow's failure handling);
    * :meth:`stop` — end the executor, or terminate its workers (interrupt).
    """

    def __init__(self, name: str | None, parallelism: int, *, dag_rel_path: str,
                 bundle_name: str) -> None:
        from airflow.executors.executor_loader import ExecutorLoader
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from airflow.models.dagbag import DBDagBag

        quiet_scheduler_logs()
        ensure_jwt_secret()  # before anything signs or checks a workload's token
        try:
            executor = ExecutorLoader.load_executor(name or "LocalExecutor")
        except Exception as e:
            from airflow.configuration import conf

            configured = conf.get("core", "executor", fallback="") or "LocalExecutor"
            raise ExecutorError(
                f"Executor {name!r} is not configured for this session ({e}). This session "
                f"has: {configured}. Use one of those, or add it to the session's [core] "
                "executor setting (e.g. AIRFLOW__CORE__EXECUTOR=LocalExecutor,CeleryExecutor)."
            ) from None
        executor.parallelism = parallelism
        self.executor = executor
        self.parallelism = parallelism
        self.dag_rel_path = dag_rel_path
        self.bundle_name = bundle_name
        self.runner = SchedulerJobRunner(job=Job(), executors=[executor])
        self.dag_bag = DBDagBag()
        self.started = False
        #: seconds a running try may go without a heartbeat (read once per run)
        self.heartbeat_timeout = heartbeat_timeout()

    @property
    def is_local(self) -> bool:
        """Whether the executor's workers are this process's children (LocalExecutor)."""
        return bool(getattr(self.executor, "is_local", False))

    def start(self) -> None:
        """Start the executor (LocalExecutor forks its workers now)."""
        if self.is_local:
            prepare_forked_workers()
        with forking_workers():
            self.executor.start()
        self.started = True

    def schedule(self, dr: Any, tis: list[Any], session: Any) -> None:
        """Ready task instances become ``scheduled`` with a new try, as the scheduler does."""
        dr.schedule_tis(tis, session=session)
        session.commit()

    def queue(self) -> list[Any]:
        """Queue what the scheduler's critical section allows now; the queued task instances.

        In a session of its own: the critical section detaches the task instances it returns.
        """
        from airflow.executors import workloads
        from airflow.executors.workloads import BundleInfo
        from airflow.utils.session import create_session

        free = self.parallelism - self.executor.slots_occupied
        if free <= 0:
            return []
        with create_session(scoped=False) as session:
            tis = self.runner._executable_task_instances_to_queued(free, session=session)
            session.commit()
            generator = self.executor.jwt_generator
            for ti in tis:
                workload = workloads.ExecuteTask.make(
                    ti,
                    dag_rel_path=Path(self.dag_rel_path),
                    generator=generator,
                    bundle_info=BundleInfo(name=self.bundle_name),
                )
                self.executor.queue_workload(workload, session=session)
        return list(tis)

    def heartbeat(self) -> list[tuple[str, str, str, int, int]]:
        """The executor's heartbeat, then the scheduler's handling of its events (in a session
        of its own, so that it reads the states the workers wrote).

        Returns the tries the events reported on, as ``(dag_id, task_id, run_id, map_index,
        try_number)``: their workers are done with them (their logs are complete).
        """
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from airflow.utils.session import create_session

        with forking_workers():
            self.executor.heartbeat()
        if not self.executor.event_buffer:
            return []
        from airflow.models.taskinstancekey import TaskInstanceKey

        # LocalExecutor also reports a try starting ("running"): only the end of one counts.
        done = [(k.dag_id, k.task_id, k.run_id, k.map_index, k.try_number)
                for k, (state, _info) in self.executor.event_buffer.items()
                if isinstance(k, TaskInstanceKey)
                and str(getattr(state, "value", state)) not in ("running", "queued")]
        # A lost try's failure is logged by the task instance as a "state mismatch" error
        # (for a scheduler's log); the run's summary says it in the cell ("its worker
        # stopped"), so the task instances' own logger stays quiet meanwhile.
        with create_session(scoped=False) as session, _logger_level("airflow.task",
                                                                      logging.CRITICAL):
            SchedulerJobRunner.process_executor_events(
                executor=self.executor, job_id=None, scheduler_dag_bag=self.dag_bag,
                session=session,
            )
        return done

    def fail_lost_tries(self, dr: Any, session: Any) -> list[tuple[str, int]]:
        """Running tries of ``dr`` without a heartbeat for :attr:`heartbeat_timeout` seconds
        (their worker died) are reported failed to the executor, as Airflow's scheduler does
        (``_find_and_purge_task_instances_without_heartbeats``); the next :meth:`heartbeat`
        hands them to Airflow's failure handling (retry or fail). Their
        ``(task_id, map_index)``.
        """
        from datetime import timedelta

        from airflow.models.log import Log
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.sdk import timezone
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        limit = timezone.utcnow() - timedelta(seconds=self.heartbeat_timeout)
        lost = session.scalars(select(TI).where(
            TI.dag_id == dr.dag_id, TI.run_id == dr.run_id,
            TI.state.in_((TaskInstanceState.RUNNING, TaskInstanceState.RESTARTING)),
            TI.last_heartbeat_at < limit,
        )).all()
        names: list[tuple[str, int]] = []
        for ti in lost:
            session.add(Log(event="heartbeat timeout", task_instance=ti.key, extra=(
                f"Task did not emit heartbeat within time limit ({self.heartbeat_timeout:g} "
                "seconds): its worker stopped.")))
            self.executor.change_state(ti.key, TaskInstanceState.FAILED, remove_running=True)
            names.append((ti.task_id, ti.map_index))
        session.commit()
        return names

    def busy(self) -> bool:
        """Workloads are queued in, or running on, the executor."""
        return bool(self.executor.queued_tasks) or bool(self.executor.running)

    def stop(self, *, kill: bool = False) -> None:
        """End the executor: wait for its workers, or (``kill``) terminate them first."""
        if not self.started:
            return
        if kill:
            self.kill_workers()
        try:
            self.executor.end()
        except Exception:  # the queues of killed workers may be broken
            log.debug("executor.end() after kill", exc_info=True)
        self.started = False

    def kill_workers(self) -> None:
        """Terminate the executor's worker processes and everything they started."""
        import psutil

        workers = getattr(self.executor, "workers", None) or {}
        procs: list[Any] = []
        for pid in list(workers):
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(pid)
                procs.extend(parent.children(recursive=True))
                procs.append(parent)
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)
        if hasattr(self.executor, "workers"):
            for proc in list(workers.values()):
                with contextlib.suppress(Exception):
                    proc.join(timeout=1)
            self.executor.workers = {}
        if not self.is_local:
            with contextlib.suppress(Exception):
                self.executor.terminate()


QUIET_LOGGERS = {
    "airflow.executors": logging.WARNING, "airflow.jobs": logging.WARNING,
    "airflow.jobs.scheduler_job_runner": logging.ERROR,
    "airflow.models.taskinstance": logging.WARNING, "airflow.task": logging.WARNING,
    "airflow.sdk.api.client": logging.WARNING,
    "py.warnings": logging.WARNING, "celery": logging.WARNING, "kombu": logging.WARNING,
}


def _level_tables() -> list[Any]:
    """Airflow's per-name structlog level tables, in both copies of its shared logging code
    (those imported so far)."""
    import sys

    tables = [getattr(sys.modules.get(m), "PER_LOGGER_LEVELS", None)
              for m in ("airflow._shared.logging.structlog",
                        "airflow.sdk._shared.logging.structlog")]
    return [t for t in tables if t is not None]


@contextlib.contextmanager
def _logger_level(name: str, level: int) -> Iterator[None]:
    """``name``'s level (stdlib and Airflow's structlog table, see
    :func:`quiet_scheduler_logs`) is ``level`` inside the block, for loggers made there."""
    std = logging.getLogger(name)
    before_std = std.level
    before = [(t, t.get(name)) for t in _level_tables()]
    std.setLevel(level)
    for table, _ in before:
        table[name] = level
    try:
        yield
    finally:
        std.setLevel(before_std)
        for table, old in before:
            if old is None:
                del table[name]
            else:
                table[name] = old


#: (logger name, its stdlib level, [(structlog level table, its entry)]) before quieting
_quieted: list[tuple[str, int, list[tuple[Any, Any]]]] = []


def quiet_scheduler_logs() -> None:
    """The scheduler's and executor's bookkeeping (queued, shutting down) stays out of cells,
    until :func:`restore_scheduler_logs`.

    Why internal: Airflow's structlog loggers take their level from a per-name table filled
    from ``[logging] namespace_levels`` when logging is configured, which happened before this
    kernel ran a parallel run; stdlib levels alone do not reach them. The table is updated
    here (only for names nobody configured), in both copies of Airflow's shared logging code.
    """
    if _quieted:
        return
    for name, level in QUIET_LOGGERS.items():
        std = logging.getLogger(name)
        tables = [(t, t.get(name)) for t in _level_tables()]
        _quieted.append((name, std.level, tables))
        std.setLevel(level)
        for table, old in tables:
            if old is None:
                table[name] = level


def restore_scheduler_logs() -> None:
    """Undo :func:`quiet_scheduler_logs`: after a parallel run (the kernel's own tries log
    ``airflow.task`` at info), and in each worker (its tries' logs are complete)."""
    while _quieted:
        name, std_level, tables = _quieted.pop()
        logging.getLogger(name).setLevel(std_level)
        for table, old in tables:
            if old is None:
                table.pop(name, None)


def set_paused(dag_id: str, paused: bool, session: Any) -> None:
    """Pause or unpause a DAG (the scheduler's critical section only queues unpaused DAGs)."""
    from airflow.models.dag import DagModel
    from sqlalchemy import update

    session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=paused))
    session.commit()

