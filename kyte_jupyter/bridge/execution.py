"""The execution API, served to the Task SDK's in-process task runner without HTTP.

``DAG.test()`` (and Kyte, which runs tries the same way) hands the Task SDK's task runner an
``httpx`` client whose transport is the whole FastAPI execution-API app: every call crosses
a2wsgi into an event loop in another thread, two ``BaseHTTPMiddleware`` layers, Cadwyn's
version routing, FastAPI's dependency resolution and, for each sync dependency and endpoint,
an AnyIO worker thread. For an in-process caller of the same Airflow version all of that only
costs time: about two thirds of a warm trivial try, plus ~3 s for Cadwyn to generate its
versioned routers when the first request arrives.

:class:`DirectTransport` serves the calls every try makes (``PATCH …/run``, ``PUT …/rtif``,
``PATCH …/state``) and the XCom reads, writes and deletes of TaskFlow tasks (a re-run try
deletes its earlier result first) by calling Airflow's own route functions with a metastore
session, in the calling thread — the same code and SQL as the API, so states, XComs, rendered
fields, retries and callbacks are Airflow's. Everything else
(variables, connections, asset events, …) goes to the stock in-process app, built on first
use. The status codes and bodies are the ones the app would send, including its error
handlers' (``HTTPException``, ``DataError`` → 422, unique-constraint ``IntegrityError`` → 409,
any other error → 500). Set ``KYTE_EXECUTION_API=http`` to send every call through the stock
app instead (to compare, or to rule this module out when debugging).

Like the rest of ``kyte_jupyter.bridge``, this module reaches into Airflow's internals on
purpose; the route signatures it calls are those of the Airflow range pinned in pyproject.toml,
and the tests
run Airflow's example DAGs through it and compare them with ``dag.test()``.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote
from uuid import UUID

import httpx

log = logging.getLogger(__name__)

_TI = r"task-instances/(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
# An XCom of one task: /xcoms/{dag_id}/{run_id}/{task_id}/{key}. Keys may contain "/" in the
# API (``{key:path}``), which makes the item/slice routes ambiguous: those go to the app.
_XCOM = r"xcoms/(?P<dag_id>[^/]+)/(?P<run_id>[^/]+)/(?P<task_id>[^/]+)/(?P<key>[^/]+)"

# (methods, path, name of the DirectTransport method serving it: looked up per request, so
# that it can be instrumented)
_ROUTES: list[tuple[frozenset[str], re.Pattern[str], str]] = [
    (frozenset({"PATCH"}), re.compile(rf"/{_TI}/run$"), "_ti_run"),
    (frozenset({"PUT"}), re.compile(rf"/{_TI}/rtif$"), "_ti_put_rtif"),
    (frozenset({"PATCH"}), re.compile(rf"/{_TI}/state$"), "_ti_update_state"),
    (frozenset({"GET", "POST", "DELETE"}), re.compile(rf"/{_XCOM}$"), "_xcom"),
]


def enabled() -> bool:
    """Whether tries use the direct transport (``KYTE_EXECUTION_API`` is not ``http``)."""
    return os.environ.get("KYTE_EXECUTION_API", "direct").lower() != "http"


def _versions_match() -> bool:
    """The Task SDK speaks the API's newest version, so Cadwyn would migrate nothing."""
    from airflow.api_fastapi.execution_api.versions import bundle
    from airflow.sdk.api.datamodels._generated import API_VERSION

    return bool(bundle.versions[0].value == API_VERSION)


class DirectTransport(httpx.BaseTransport):
    """An ``httpx`` transport answering the execution API's hot routes in the calling thread."""

    def __init__(self, dag_bag: Any) -> None:
        self.dag_bag = dag_bag
        self._app_transport: httpx.BaseTransport | None = None
        self._direct = _versions_match()

    # ---- dispatch ---------------------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request``: with a route function when it is a hot route, else the app."""
        if self._direct:
            path = request.url.path
            for methods, pattern, name in _ROUTES:
                match = pattern.search(path) if request.method in methods else None
                if match:
                    params = {k: unquote(v) for k, v in match.groupdict().items()}
                    handler = getattr(self, name)
                    # Routes bind structlog context variables (ti_id); keep them out of the
                    # kernel's own context, as the app's worker threads do.
                    return contextvars.copy_context().run(self._serve, handler, request, params)
        return self.app_transport.handle_request(request)

    @property
    def app_transport(self) -> httpx.BaseTransport:
        """The stock in-process app (built on first use: Cadwyn takes seconds to set up)."""
        if self._app_transport is None:
            from airflow.api_fastapi.common.dagbag import dag_bag_from_app
            from airflow.sdk.execution_time.supervisor import in_process_api_server

            api = in_process_api_server()
            bag = self.dag_bag
            api.app.dependency_overrides[dag_bag_from_app] = lambda: bag
            self._app_transport = api.transport
        return self._app_transport

    def _serve(
        self, handler: Callable[..., httpx.Response], request: httpx.Request, params: dict[str, str]
    ) -> httpx.Response:
        from airflow.utils.session import create_session
        from fastapi import HTTPException
        from pydantic import ValidationError
        from sqlalchemy.exc import DataError, IntegrityError

        try:
            # The API's SessionDep: one session per request, committed after the route.
            with create_session(scoped=False) as session:
                response = handler(request, session, **params)
        except HTTPException as e:
            response = _json(e.status_code, {"detail": e.detail})
        except ValidationError as e:
            # FastAPI's answer to a request body that does not validate.
            errors = json.loads(e.json(include_url=False))
            for error in errors:
                error["loc"] = ["body", *error["loc"]]
            response = _json(422, {"detail": errors})
        except DataError as e:
            response = _json(422, {"detail": {"reason": "data_error", "message": str(e.orig)}})
        except IntegrityError as e:
            unique = "unique" in str(e.orig).lower() or "duplicate" in str(e.orig).lower()
            status = 409 if unique else 500
            response = _json(status, {"detail": {"reason": "integrity", "message": str(e.orig)}})
        except Exception as e:  # the app's catch-all handler: logged, then a 500
            log.exception("The execution API failed on %s %s", request.method, request.url.path)
            response = _json(500, {"message": f"Internal server error: {e!r}"})
        response.request = request
        return response

    # ---- task instances ---------------------------------------------------------------------
    def _ti_run(self, request: httpx.Request, session: Any, id: str) -> httpx.Response:
        from airflow.api_fastapi.execution_api.datamodels.taskinstance import (
            TIEnterRunningPayload,
            TIRunContext,
        )
        from airflow.api_fastapi.execution_api.datamodels.token import TIClaims, TIToken
        from airflow.api_fastapi.execution_api.routes import task_instances as routes
        from fastapi import Response

        ti_id = UUID(id)
        payload = TIEnterRunningPayload.model_validate_json(request.read())
        # What the in-process app's auth override hands the route: an execution-scoped token.
        token = TIToken(id=ti_id, claims=TIClaims(scope="execution"))
        out = Response()
        context = routes.ti_run(ti_id, payload, out, session, self.dag_bag, None, token)
        # FastAPI validates the return value against the response model, then dumps it by
        # alias without the fields left unset (``response_model_exclude_unset=True``).
        body = TIRunContext.model_validate(context).model_dump_json(
            by_alias=True, exclude_unset=True
        )
        headers = {"content-type": "application/json", **dict(out.headers)}
        headers.pop("content-length", None)
        return httpx.Response(200, content=body.encode(), headers=headers)

    def _ti_put_rtif(self, request: httpx.Request, session: Any, id: str) -> httpx.Response:
        from airflow.api_fastapi.execution_api.routes import task_instances as routes
        from pydantic import JsonValue

        fields = _adapter(dict[str, JsonValue]).validate_json(request.read())
        return _json(201, routes.ti_put_rtif(UUID(id), fields, session))

    def _ti_update_state(self, request: httpx.Request, session: Any, id: str) -> httpx.Response:
        from airflow.api_fastapi.execution_api.routes import task_instances as routes

        payload = _state_union().validate_json(request.read())
        result = routes.ti_update_state(UUID(id), payload, session, self.dag_bag)
        # None is the route's 204; it returns a bare 200 when the TI already had the state.
        status = int(getattr(result, "status_code", 204))
        return httpx.Response(status)

    # ---- XComs ------------------------------------------------------------------------------
    def _xcom(
        self, request: httpx.Request, session: Any, dag_id: str, run_id: str, task_id: str, key: str
    ) -> httpx.Response:
        """``POST`` sets an XCom (``set_xcom``), ``GET`` reads one (``get_xcom``), ``DELETE``
        deletes one (``delete_xcom``: every re-run try of a TaskFlow task does)."""
        from airflow.api_fastapi.execution_api.routes import xcoms as routes
        from pydantic import JsonValue

        if request.method == "POST":
            raw = request.read()
            value = _adapter(JsonValue).validate_json(raw) if raw else None
            query = _query(
                request,
                map_index=(int, -1),
                dag_result=(bool, False),
                mapped_length=(int | None, None),
            )
            result = routes.set_xcom(dag_id, run_id, task_id, key, session, value, **query)
            return _json(201, result)
        if request.method == "DELETE":
            query = _query(request, map_index=(int, -1))
            return _json(200, routes.delete_xcom(session, dag_id, run_id, task_id, key, **query))
        params = routes.GetXcomFilterParams.model_validate(dict(request.url.params))
        found = routes.get_xcom(dag_id, run_id, task_id, key, session, params)
        return httpx.Response(
            200,
            content=found.model_dump_json(by_alias=True).encode(),
            headers={"content-type": "application/json"},
        )


@functools.cache
def _state_union() -> Any:
    """The union a state change validates as, exactly as FastAPI builds it for the route.

    ``TIStateUpdate`` names a function as its discriminator, but the route's ``Body()``
    replaces that field info, so FastAPI validates the bare union in pydantic's smart mode
    (members labelled by their ``Tag``s in errors). Doing the same keeps the payload class
    the route sees — and so its behaviour — identical.
    """
    from typing import get_args

    from airflow.api_fastapi.execution_api.datamodels.taskinstance import TIStateUpdate

    return _adapter(get_args(TIStateUpdate)[0])


@functools.cache
def _adapter(kind: Any) -> Any:
    """A pydantic ``TypeAdapter`` (building one compiles a schema: keep them)."""
    from pydantic import TypeAdapter

    return TypeAdapter(kind)


def _query(request: httpx.Request, **spec: tuple[Any, Any]) -> dict[str, Any]:
    """Query parameters validated as FastAPI would (``"true"`` → True, ``"3"`` → 3)."""
    out: dict[str, Any] = {}
    for name, (kind, default) in spec.items():
        raw = request.url.params.get(name)
        out[name] = default if raw is None else _adapter(kind).validate_python(raw)
    return out


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)
