"""What-if experiments on the in-process execution API, applied inside a benchmark kernel.

NOT for production: these patch Airflow and AnyIO internals at run time to measure how much
each overhead of a task try could save, so the owners of ``kyte_jupyter/_airflow.py`` can
decide what to change. ``apply("reuse,onehop")`` turns variants on, ``restore()`` turns
everything off again. Variants:

* ``reuse``  — one execution-API client for all tries, with one ``DBDagBag`` (Airflow builds
  a new client and a new, empty ``DBDagBag`` for every try);
* ``onehop`` — a transport that hands each request to the API's event loop once, instead of
  a2wsgi's several hand-offs between the kernel thread and the loop thread (implies reuse);
* ``inline`` — FastAPI's sync dependencies and endpoints run on the API's loop thread instead
  of a new AnyIO worker thread each (about 7 thread hops per request);
* ``nomw``   — the execution API without its two ``BaseHTTPMiddleware`` layers (correlation
  id, JWT re-issue), which do nothing for an in-process caller;
* ``noflush`` — Kyte's ``_Tee.flush`` stops forwarding flushes to ipykernel's stream while a
  try runs (each forwarded flush waits for ipykernel's IOPub thread; structlog flushes after
  every log line, and ipykernel sends buffered output every 0.2 s anyway);
* ``setupmemo`` — Kyte's scheduler DAG answers ``get_upstreams_only_setups()`` without walking
  every ancestor of the task again on each scheduling round (a DAG without setup tasks has
  none to find). Affects ``%run_dag``, not a single ``%run_task``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from uuid import UUID

import httpx

_undo: list[Any] = []
_clients: dict[str, Any] = {}


class OneHopTransport(httpx.BaseTransport):
    """Run one request through the ASGI app on its event loop with a single hand-off."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.app, self.loop = app, loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to the app and wait for its whole response."""
        body = request.read()
        future = asyncio.run_coroutine_threadsafe(self._call(request, body), self.loop)
        status, headers, content = future.result()
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def _call(self, request: httpx.Request, body: bytes) -> tuple[int, list[Any], bytes]:
        url = request.url
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": request.method, "scheme": url.scheme, "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0], "query_string": url.query,
            "root_path": "", "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": ("127.0.0.1", 0), "server": (url.host, url.port or 80),
        }
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # a disconnect never comes in-process
            raise AssertionError("unreachable")

        status, headers, chunks = 500, [], []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, headers, b"".join(chunks)


def _client(kind: str) -> Any:
    client = _clients.get(kind)
    if client is None:
        from airflow.api_fastapi.common.dagbag import dag_bag_from_app
        from airflow.models.dagbag import DBDagBag
        from airflow.sdk.execution_time.supervisor import (
            InProcessTestSupervisor,
            in_process_api_server,
        )

        api = in_process_api_server()
        bag = DBDagBag()
        api.app.dependency_overrides[dag_bag_from_app] = lambda: bag
        transport = (api.transport if kind == "a2wsgi"
                     else OneHopTransport(api.app, api.transport.app.loop))
        client = InProcessTestSupervisor._Client(base_url=None, token="", dry_run=True,
                                                 transport=transport)
        client.base_url = "http://in-process.invalid./"
        _clients[kind] = client
    return client


def _use_client(kind: str) -> None:
    from airflow.sdk.api.datamodels._generated import TaskInstance as SDKTaskInstance
    from airflow.sdk.execution_time.supervisor import run_task_in_process

    from kyte_jupyter import _airflow

    original = _airflow.run_try

    def run_try(ti: Any, task: Any) -> Any:
        sdk_ti = SDKTaskInstance(
            id=UUID(str(ti.id)), task_id=ti.task_id, dag_id=ti.dag_id, run_id=ti.run_id,
            try_number=ti.try_number, map_index=ti.map_index,
            dag_version_id=UUID(str(ti.dag_version_id)),
        )
        return run_task_in_process(ti=sdk_ti, task=task, client=_client(kind))

    _airflow.run_try = run_try
    _undo.append(lambda: setattr(_airflow, "run_try", original))


def _inline_threads() -> None:
    import anyio.to_thread

    original = anyio.to_thread.run_sync

    async def run_sync(func: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "InProcessExecutionAPI-loop":
            return func(*args)
        return await original(func, *args, **kwargs)

    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]
    _undo.append(lambda: setattr(anyio.to_thread, "run_sync", original))


def _no_middlewares() -> None:
    from airflow.sdk.execution_time.supervisor import in_process_api_server

    app = in_process_api_server().app
    kept = list(app.user_middleware)
    app.user_middleware = [m for m in kept if m.cls.__name__ not in
                           ("CorrelationIdMiddleware", "JWTReissueMiddleware")]
    app.middleware_stack = app.build_middleware_stack()

    def undo() -> None:
        app.user_middleware = kept
        app.middleware_stack = app.build_middleware_stack()

    _undo.append(undo)


def _no_flush() -> None:
    from kyte_jupyter import runner

    original = runner._Tee.flush

    def flush(self: Any) -> None:
        if runner._Capture.log is not None:
            runner._Capture.log.flush()
        else:
            original(self)

    runner._Tee.flush = flush  # type: ignore[method-assign]
    _undo.append(lambda: setattr(runner._Tee, "flush", original))


def _setup_memo() -> None:
    import functools

    from kyte_jupyter import _airflow

    original = _airflow.scheduler_dag
    touched: list[Any] = []

    def scheduler_dag(dag: Any) -> Any:
        sdag = original(dag)
        if "get_upstreams_only_setups" not in vars(sdag.tasks[0]):
            has_setups = any(t.is_setup for t in sdag.tasks)
            for t in sdag.tasks:
                if has_setups:
                    walk = t.get_upstreams_only_setups
                    t.get_upstreams_only_setups = functools.cache(lambda w=walk: tuple(w()))
                else:
                    t.get_upstreams_only_setups = tuple
            touched.append(sdag)
        return sdag

    def undo() -> None:
        _airflow.scheduler_dag = original
        for sdag in touched:
            for t in sdag.tasks:
                vars(t).pop("get_upstreams_only_setups", None)

    _airflow.scheduler_dag = scheduler_dag
    _undo.append(undo)


def apply(variants: str) -> None:
    """Turn on a comma-separated set of variants (after turning everything off)."""
    restore()
    names = {v.strip() for v in variants.split(",") if v.strip()}
    unknown = names - {"reuse", "onehop", "inline", "nomw", "noflush", "setupmemo"}
    if unknown:
        raise ValueError(f"unknown what-if variants: {sorted(unknown)}")
    if "onehop" in names:
        _use_client("onehop")
    elif "reuse" in names:
        _use_client("a2wsgi")
    if "inline" in names:
        _inline_threads()
    if "nomw" in names:
        _no_middlewares()
    if "noflush" in names:
        _no_flush()
    if "setupmemo" in names:
        _setup_memo()


def restore() -> None:
    """Turn every variant off."""
    while _undo:
        _undo.pop()()
