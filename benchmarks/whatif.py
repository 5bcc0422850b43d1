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
  every log line, and ipykernel sends buffered output every 0.2 s anyway). Kyte does this
  itself since commit 9f73109, so it only matters when profiling older commits;
* ``direct`` — the three calls of every try (``PATCH …/run``, ``PUT …/rtif``, ``PATCH
  …/state``) go straight to Airflow's own route functions (``ti_run``, ``ti_put_rtif``,
  ``ti_update_state``) with a metastore session, in the kernel thread: the same code and
  SQL as the API, without HTTP, a2wsgi, FastAPI, Cadwyn or thread hops; every other
  request still goes through the stock transport (implies reuse);
* ``setupmemo`` — Kyte's scheduler DAG answers ``get_upstreams_only_setups()`` without walking
  every ancestor of the task again on each scheduling round (a DAG without setup tasks has
  none to find). Affects ``%run_dag``, not a single ``%run_task``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
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


class DirectTransport(httpx.BaseTransport):
    """Serve a try's three execution-API calls by calling Airflow's route functions."""

    _ROUTES = [
        ("PATCH", re.compile(r"task-instances/(?P<id>[0-9a-f-]{36})/run$"), "run"),
        ("PUT", re.compile(r"task-instances/(?P<id>[0-9a-f-]{36})/rtif$"), "rtif"),
        ("PATCH", re.compile(r"task-instances/(?P<id>[0-9a-f-]{36})/state$"), "state"),
    ]

    def __init__(self, fallback: httpx.BaseTransport, bag: Any) -> None:
        self.fallback, self.bag = fallback, bag

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Dispatch one request: a route function when it is one of the three, else HTTP."""
        for method, pattern, kind in self._ROUTES:
            match = pattern.search(request.url.path)
            if request.method == method and match:
                return self._call(kind, UUID(match["id"]), request)
        return self.fallback.handle_request(request)

    def _call(self, kind: str, ti_id: UUID, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.read() or b"null")
        # The routes bind structlog context variables (ti_id); keep them out of the kernel's.
        return contextvars.copy_context().run(self._route, kind, ti_id, body, request)

    def _route(self, kind: str, ti_id: UUID, body: Any, request: httpx.Request) -> httpx.Response:
        from airflow.api_fastapi.execution_api.datamodels.taskinstance import (
            TIEnterRunningPayload,
        )
        from airflow.api_fastapi.execution_api.datamodels.token import TIClaims, TIToken
        from airflow.api_fastapi.execution_api.routes import task_instances as routes
        from airflow.utils.session import create_session
        from fastapi import HTTPException, Response

        try:
            with create_session(scoped=False) as session:
                if kind == "run":
                    token = TIToken(id=ti_id, claims=TIClaims(scope="execution"))
                    context = routes.ti_run(ti_id, TIEnterRunningPayload.model_validate(body),
                                            Response(), session, self.bag, None, token)
                    content = context.model_dump_json(exclude_unset=True, by_alias=True)
                    return httpx.Response(200, content=content.encode(), request=request,
                                          headers={"content-type": "application/json"})
                if kind == "rtif":
                    result = routes.ti_put_rtif(ti_id, body, session)
                    return httpx.Response(201, json=result, request=request)
                payload = _state_payload(body)
                result = routes.ti_update_state(ti_id, payload, session, self.bag)
                status = getattr(result, "status_code", 204)
                return httpx.Response(status, request=request)
        except HTTPException as e:
            return httpx.Response(e.status_code, json={"detail": e.detail}, request=request)


def _state_payload(body: Any) -> Any:
    """The ``TIStateUpdate`` member a state-change body validates as (FastAPI's choice)."""
    from typing import get_args

    from airflow.api_fastapi.execution_api.datamodels import taskinstance as models
    from pydantic import Tag

    union = get_args(models.TIStateUpdate)[0]
    by_tag = {}
    for member in get_args(union):
        model, *meta = get_args(member)
        for m in meta:
            if isinstance(m, Tag):
                by_tag[m.tag] = model
    return by_tag[models.ti_state_discriminator(body)].model_validate(body)


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
        transport: httpx.BaseTransport
        if kind == "a2wsgi":
            transport = api.transport
        elif kind == "direct":
            transport = DirectTransport(api.transport, bag)
        else:
            transport = OneHopTransport(api.app, api.transport.app.loop)
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
    unknown = names - {"reuse", "onehop", "inline", "nomw", "noflush", "setupmemo", "direct"}
    if unknown:
        raise ValueError(f"unknown what-if variants: {sorted(unknown)}")
    if "direct" in names:
        _use_client("direct")
    elif "onehop" in names:
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
