"""Wall-clock accounting of where a Kyte run spends its time, installed inside the kernel.

``install()`` wraps the functions a ``%run_task`` / ``%run_dag`` goes through — Kyte's runner
steps, the Task SDK's in-process supervisor and task runner, every execution-API request (by
method and route) — and hooks SQLAlchemy to time SQL statements and commits, split by thread
(the kernel's main thread, or the execution API's worker threads). Times are inclusive, so
nested phases add up inside their parents; ``snapshot()`` returns them and ``reset()`` starts
over. Used by ``python -m benchmarks.profiling``; it changes nothing about what runs.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections import defaultdict
from typing import Any

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
_lock = threading.Lock()
_installed: list[tuple[Any, str, Any]] = []
_local = threading.local()
_INHERITED = object()  # marks a wrapper set on a subclass over an inherited method


def _thread_kind() -> str:
    return "main" if threading.current_thread() is threading.main_thread() else "api"


def _add(label: str, took: float) -> None:
    with _lock:
        entry = _totals[label]
        entry[0] += 1
        entry[1] += took


def _wrap(owner: Any, attr: str, label: str | None = None, *, static: bool = False,
          per_thread: bool = False) -> None:
    """Replace ``owner.attr`` with a timing wrapper (undone by :func:`uninstall`)."""
    if isinstance(owner, type):  # the raw attribute (a staticmethod stays one), from the MRO
        original = next(c.__dict__[attr] for c in owner.__mro__ if attr in c.__dict__)
    else:
        original = getattr(owner, attr)
    func = original.__func__ if static else original
    name = label or f"{getattr(owner, '__name__', owner)}.{attr}"

    @functools.wraps(func)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            key = f"{name} [{_thread_kind()}]" if per_thread else name
            _add(key, time.perf_counter() - t0)

    owned = not isinstance(owner, type) or attr in owner.__dict__
    setattr(owner, attr, staticmethod(timed) if static else timed)
    _installed.append((owner, attr, original if owned else _INHERITED))


def _request_label(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    method = str(args[1] if len(args) > 1 else kwargs.get("method", "?")).upper()
    url = str(args[2] if len(args) > 2 else kwargs.get("url", "?"))
    return f"api {method} {_UUID.sub('{id}', url).split('?')[0]}"


def install() -> None:
    """Wrap everything worth timing (idempotent)."""
    if _installed:
        return
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.sdk.execution_time import supervisor, task_runner
    from sqlalchemy import event

    from kyte_jupyter import bridge, session
    from kyte_jupyter.bridge import runs
    from kyte_jupyter.runner import plan, run, tries

    for attr in ("run_tasks", "run_dag", "_execute"):
        _wrap(run.Runner, attr, f"kyte Runner.{attr}")
    _wrap(tries.InProcessTries, "run", "kyte InProcessTries.run")
    for attr in ("scheduler_dag", "attach", "run_try"):
        _wrap(bridge.Bridge, attr, f"kyte Bridge.{attr}")
    for attr in ("latest_run", "task_instances", "expand_mapped", "prepare_try", "create_run",
                 "set_state"):
        _wrap(runs, attr, f"kyte runs.{attr}")
    for attr in ("ready", "task_instances", "settle"):
        _wrap(plan.Frontier, attr, f"kyte Frontier.{attr}")
    _wrap(session.Session, "audit", "kyte Session.audit")
    _wrap(DagRun, "update_state", "airflow DagRun.update_state", per_thread=True)
    _wrap(supervisor, "run_task_in_process", "sdk run_task_in_process")
    _wrap(supervisor.InProcessTestSupervisor, "_api_client",
          "sdk InProcessTestSupervisor._api_client (new API client + DBDagBag)", static=True)
    _wrap(supervisor.InProcessTestSupervisor, "update_task_state_if_needed",
          "sdk supervisor.update_task_state_if_needed")
    for attr in ("run", "finalize", "_execute_task", "_push_xcom_if_needed"):
        _wrap(task_runner, attr, f"sdk task_runner.{attr}")
    _wrap(task_runner.RuntimeTaskInstance, "get_template_context",
          "sdk RuntimeTaskInstance.get_template_context")

    client_cls = supervisor.InProcessTestSupervisor._Client
    original_request = client_cls.__dict__["request"]

    @functools.wraps(original_request)
    def request(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original_request(*args, **kwargs)
        finally:
            _add(_request_label(args, kwargs), time.perf_counter() - t0)

    client_cls.request = request  # type: ignore[method-assign]
    _installed.append((client_cls, "request", original_request))

    from kyte_jupyter.bridge import execution as _execution

    _wrap(_execution.DirectTransport, "_serve", "direct: serve (route + session + commit)")
    for attr in ("_ti_run", "_ti_put_rtif", "_ti_update_state", "_xcom"):
        _wrap(_execution.DirectTransport, attr, f"direct: route {attr.lstrip('_')}")
    if not _execution.enabled():  # the stock FastAPI app serves every call
        _install_api_server(supervisor)

    engine = settings.engine
    assert engine is not None

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
               executemany: bool) -> None:
        _local.t0 = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
              executemany: bool) -> None:
        t0 = getattr(_local, "t0", None)
        if t0 is not None:
            verb = statement.lstrip().split(None, 1)[0].upper()
            _add(f"sql {verb} [{_thread_kind()}]", time.perf_counter() - t0)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    _installed.append((engine, "__events__", (before, after)))
    dialect = engine.dialect
    original_commit = dialect.do_commit

    def do_commit(dbapi_connection: Any) -> None:
        t0 = time.perf_counter()
        try:
            original_commit(dbapi_connection)
        finally:
            _add(f"sql COMMIT (sqlite3 commit) [{_thread_kind()}]", time.perf_counter() - t0)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    _installed.append((dialect, "do_commit", original_commit))


def _install_api_server(supervisor: Any) -> None:
    """Time the in-process execution API from the inside: the ASGI app on its event-loop
    thread, FastAPI's dependency solving and response serialisation, and each hop to an AnyIO
    worker thread (sync dependencies and endpoints), split into the wait for the worker to
    start, the function itself, and the hop back to the loop."""
    import anyio.to_thread
    import fastapi.routing

    middleware = supervisor.in_process_api_server().transport.app  # a2wsgi's ASGIMiddleware
    app = middleware.app

    async def timed_app(scope: Any, receive: Any, send: Any) -> None:
        t0 = time.perf_counter()
        try:
            await app(scope, receive, send)
        finally:
            _add("api server: whole ASGI app (middlewares, Cadwyn, FastAPI) [loop]",
                 time.perf_counter() - t0)

    middleware.app = timed_app
    _installed.append((middleware, "app", app))

    for attr, label in (("solve_dependencies", "api server: FastAPI solve_dependencies"),
                        ("serialize_response", "api server: FastAPI serialize_response"),
                        ("run_endpoint_function", "api server: FastAPI run_endpoint_function")):
        original = getattr(fastapi.routing, attr)

        def make(original: Any = original, label: str = label) -> Any:
            @functools.wraps(original)
            async def timed(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    _add(label, time.perf_counter() - t0)
            return timed

        setattr(fastapi.routing, attr, make())
        _installed.append((fastapi.routing, attr, original))

    run_sync = anyio.to_thread.run_sync

    @functools.wraps(run_sync)
    async def timed_run_sync(func: Any, *args: Any, **kwargs: Any) -> Any:
        marks: dict[str, float] = {}

        def body(*a: Any) -> Any:
            marks["start"] = time.perf_counter()
            try:
                return func(*a)
            finally:
                marks["end"] = time.perf_counter()

        t0 = time.perf_counter()
        try:
            return await run_sync(body, *args, **kwargs)
        finally:
            done = time.perf_counter()
            inner = getattr(func, "func", func)  # run_in_threadpool passes a partial
            name = getattr(inner, "__qualname__", None) or type(inner).__name__
            if "start" in marks and "end" in marks:
                _add("api worker hop: wait for an AnyIO worker thread to start",
                     marks["start"] - t0)
                _add(f"api worker: {name}", marks["end"] - marks["start"])
                _add("api worker hop: back to the event loop", done - marks["end"])

    anyio.to_thread.run_sync = timed_run_sync  # type: ignore[assignment]
    _installed.append((anyio.to_thread, "run_sync", run_sync))

    thread_start = threading.Thread.start

    def counted_start(self: threading.Thread) -> None:
        t0 = time.perf_counter()
        try:
            thread_start(self)
        finally:
            _add(f"threads started ({type(self).__name__}) [{_thread_kind()}]",
                 time.perf_counter() - t0)

    threading.Thread.start = counted_start  # type: ignore[method-assign]
    _installed.append((threading.Thread, "start", thread_start))


def uninstall() -> None:
    """Put every wrapped function back."""
    from sqlalchemy import event

    while _installed:
        owner, attr, original = _installed.pop()
        if attr == "__events__":
            event.remove(owner, "before_cursor_execute", original[0])
            event.remove(owner, "after_cursor_execute", original[1])
        elif attr == "do_commit":
            del owner.do_commit
        elif original is _INHERITED:
            delattr(owner, attr)
        else:
            setattr(owner, attr, original)


def reset() -> None:
    """Forget the times recorded so far."""
    with _lock:
        _totals.clear()


def snapshot() -> dict[str, tuple[int, float]]:
    """``{label: (calls, total seconds)}`` recorded since the last reset."""
    with _lock:
        return {k: (int(v[0]), float(v[1])) for k, v in _totals.items()}
