"""The execution API's hot routes, served without Airflow's FastAPI app around them.

``DAG.test()`` (and Kyte, which runs tries the same way) hands the Task SDK's task runner an
``httpx`` client whose transport is the whole FastAPI execution-API app: every call crosses
a2wsgi into an event loop in another thread, two ``BaseHTTPMiddleware`` layers, Cadwyn's
version routing, FastAPI's dependency resolution and, for each sync dependency and endpoint,
an AnyIO worker thread. For an in-process caller of the same Airflow version all of that only
costs time: about two thirds of a warm trivial try, plus ~3 s for Cadwyn to generate its
versioned routers when the first request arrives.

:class:`DirectTransport` serves the calls every try makes (``PATCH …/run``, ``PUT …/rtif``,
``PATCH …/state``, ``PUT …/heartbeat``) and the XCom reads, writes and deletes of TaskFlow
tasks (a re-run try deletes its earlier result first) by calling Airflow's own route
functions with a metastore session, in the calling thread — the same code and SQL as the
API, so states, XComs, rendered fields, retries and callbacks are Airflow's. Everything else
(variables, connections, asset events, …) goes to the stock in-process app, built on first
use. The status codes and bodies are the ones the app would send, including its error
handlers' (``HTTPException``, ``DataError`` → 422, unique-constraint ``IntegrityError`` → 409,
any other error → 500). Set ``KYTE_EXECUTION_API=http`` to send every call through the stock
app instead (to compare, or to rule this module out when debugging).

:class:`ExecutionApiFastLane` does the same over HTTP, for the workers of parallel runs
(``bridge.executors`` serves it): the same handlers, behind the checks Airflow's JWT
authentication makes, in front of the stock app.

Like the rest of ``kyte_jupyter.bridge``, this module reaches into Airflow's internals on
purpose; the route signatures it calls are those of the Airflow range pinned in pyproject.toml,
and the tests run Airflow's example DAGs through it and compare them with ``dag.test()``, and
send the same requests to it and to the app (``tests/test_execution_api.py``).
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

#: ``httpx.Request.extensions`` keys: the caller's validated ``TIToken`` and an ``svcs``
#: container of the app's services (set by :class:`ExecutionApiFastLane`).
TOKEN_EXTENSION = "kyte_ti_token"
SERVICES_EXTENSION = "kyte_services"

_TI = r"task-instances/(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
# An XCom of one task: /xcoms/{dag_id}/{run_id}/{task_id}/{key}. Keys may contain "/" in the
# API (``{key:path}``), which makes the item/slice routes ambiguous: those go to the app.
_XCOM = r"xcoms/(?P<dag_id>[^/]+)/(?P<run_id>[^/]+)/(?P<task_id>[^/]+)/(?P<key>[^/]+)"

# (methods, the whole path below the API's root, name of the DirectTransport method serving
# it: looked up per request, so that it can be instrumented)
_ROUTES: list[tuple[frozenset[str], re.Pattern[str], str]] = [
    (frozenset({"PATCH"}), re.compile(rf"/{_TI}/run"), "_ti_run"),
    (frozenset({"PUT"}), re.compile(rf"/{_TI}/rtif"), "_ti_put_rtif"),
    (frozenset({"PATCH"}), re.compile(rf"/{_TI}/state"), "_ti_update_state"),
    (frozenset({"PUT"}), re.compile(rf"/{_TI}/heartbeat"), "_ti_heartbeat"),
    (frozenset({"GET", "POST", "DELETE"}), re.compile(rf"/{_XCOM}"), "_xcom"),
]


def hot_route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """``(name of the DirectTransport method, path parameters)`` of a hot route, or None."""
    for methods, pattern, name in _ROUTES:
        match = pattern.fullmatch(path) if method in methods else None
        if match:
            return name, match.groupdict()
    return None


def enabled() -> bool:
    """Whether tries use the direct transport (``KYTE_EXECUTION_API`` is not ``http``)."""
    return os.environ.get("KYTE_EXECUTION_API", "direct").lower() != "http"


def _newest_version() -> str:
    """The execution API's newest version (what a Task SDK of this Airflow sends)."""
    from airflow.api_fastapi.execution_api.versions import bundle

    return str(bundle.versions[0].value)


def _replay(body: bytes, receive: Any) -> Any:
    """An ASGI ``receive`` that gives ``body`` (already read) first, then what follows."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        message: dict[str, Any] = await receive()
        return message

    return replay


def _versions_match() -> bool:
    """The Task SDK speaks the API's newest version, so Cadwyn would migrate nothing."""
    from airflow.sdk.api.datamodels._generated import API_VERSION

    return _newest_version() == API_VERSION


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
            route = hot_route(request.method, request.url.path)
            if route:
                name, params = route
                params = {k: unquote(v) for k, v in params.items()}
                # Routes bind structlog context variables (ti_id); keep them out of the
                # kernel's own context, as the app's worker threads do.
                return contextvars.copy_context().run(
                    self._serve, getattr(self, name), request, params)
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
            # FastAPI's answer to a request body (or query string) that does not validate.
            where = "query" if e.title == _QUERY_ERROR else "body"
            errors = json.loads(e.json(include_url=False))
            for error in errors:
                error["loc"] = [where, *error["loc"]]
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
        # The caller's validated token (served over HTTP: see ExecutionApiFastLane), or what
        # the in-process app's auth override hands the route: an execution-scoped token.
        token = request.extensions.get(TOKEN_EXTENSION) or TIToken(
            id=ti_id, claims=TIClaims(scope="execution"))
        out = Response()
        # A workload token's run swaps it for an execution token: the route reads Airflow's
        # JWTGenerator from the app's services.
        services = request.extensions.get(SERVICES_EXTENSION)
        context = routes.ti_run(ti_id, payload, out, session, self.dag_bag, services, token)
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

    def _ti_heartbeat(self, request: httpx.Request, session: Any, id: str) -> httpx.Response:
        from airflow.api_fastapi.execution_api.datamodels.taskinstance import TIHeartbeatInfo
        from airflow.api_fastapi.execution_api.routes import task_instances as routes

        payload = TIHeartbeatInfo.model_validate_json(request.read())
        routes.ti_heartbeat(UUID(id), payload, session)
        return httpx.Response(204)

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
        params = _in_query(lambda: routes.GetXcomFilterParams.model_validate(
            dict(request.url.params)))
        found = routes.get_xcom(dag_id, run_id, task_id, key, session, params)
        return httpx.Response(
            200,
            content=found.model_dump_json(by_alias=True).encode(),
            headers={"content-type": "application/json"},
        )


#: Token scopes each hot route takes, and whether the token's subject must be the task
#: instance in the path — what Airflow's ``require_auth`` enforces on these routes (a route's
#: ``token:*`` security scopes, else execution only; ``ti:self`` on the task-instance router).
_ROUTE_AUTH: dict[str, tuple[frozenset[str], bool]] = {
    "_ti_run": (frozenset({"execution", "workload"}), True),
    "_ti_put_rtif": (frozenset({"execution"}), True),
    "_ti_update_state": (frozenset({"execution"}), True),
    "_ti_heartbeat": (frozenset({"execution"}), True),
    "_xcom": (frozenset({"execution"}), False),
}


class ExecutionApiFastLane:
    """An ASGI app in front of Airflow's execution-API app, for the session's workers.

    The routes every try of a parallel run calls (``run``, ``rtif``, ``heartbeat``, ``state``
    and a TaskFlow task's XCom) are served by :class:`DirectTransport`'s handlers — Airflow's
    route functions with a metastore session, in one of the app's worker threads — once the
    request's JWT has passed the checks Airflow's ``JWTBearer`` and ``require_auth`` make
    (Airflow's own ``JWTValidator`` from the app's services, the route's token scopes,
    ``ti:self``). What the app adds on top of those calls is framework: two
    ``BaseHTTPMiddleware`` layers, Cadwyn's version routing and FastAPI's dependency
    resolution, about two thirds of the kernel's CPU per request; the kernel's CPU also runs
    the run's loop and, on a small machine, the workers.

    Anything the lane does not positively authenticate and authorise goes to the app
    unchanged, so its answers and error bodies stay Airflow's: other routes, a missing or
    invalid token, a scope the route does not take, another task instance's id, an
    execution token due for reissue (``JWTReissueMiddleware`` renews it), Cadwyn versions
    that differ, multi-team mode (XCom access checks), or ``KYTE_EXECUTION_API=http``.
    """

    def __init__(self, app: Any, execution_app: Any, prefix: str, dag_bag: Any) -> None:
        from airflow.configuration import conf

        self.app = app
        self.execution_app = execution_app
        self.prefix = prefix.rstrip("/")
        self.direct = DirectTransport(dag_bag)
        #: Whether the lane serves at all (else every request goes to the app).
        self.on = enabled() and self.direct._direct and not conf.getboolean("core", "multi_team")
        #: Requests the lane answered (the rest went to the app).
        self.served = 0
        #: The API version the lane serves (the newest; requests for others go to Cadwyn).
        self.version = _newest_version()
        self._validator: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not (self.on and scope["type"] == "http" and await self._answer(scope, receive, send)):
            await self.app(scope, receive, send)

    async def _answer(self, scope: dict[str, Any], receive: Any, send: Any) -> bool:
        """Serve a hot route, or hand the request to the app; False: not a hot route (the
        request is untouched)."""
        path: str = scope["path"]
        if not path.startswith(self.prefix + "/"):
            return False
        method: str = scope["method"]
        route = hot_route(method, path[len(self.prefix):])
        if route is None:
            return False
        name, params = route
        headers: dict[str, str] = {}
        names: list[str] = []
        for k, v in scope["headers"]:
            key = k.decode("latin-1").lower()
            names.append(key)
            headers.setdefault(key, v.decode("latin-1"))  # the first, as Starlette reads them
        if (names.count("authorization") > 1 or names.count("content-type") > 1
                or headers.get("airflow-api-version") != self.version):
            return False  # Airflow's app decides (Cadwyn migrates other API versions)
        token = await self._authorise(headers.get("authorization", ""), name, params)
        if token is None:
            return False

        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return True
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query: bytes = scope.get("query_string") or b""
        request = self._request(method, scope, headers, body, query)
        if request is None:  # FastAPI's own parsing and errors for anything unusual
            await self.app(scope, _replay(body, receive), send)
            return True
        response = await self._serve(request, name, params, token)
        out = [(k.encode("latin-1"), v.encode("latin-1"))
               for k, v in response.headers.multi_items()]
        out.append((b"airflow-api-version", self.version.encode()))  # as Cadwyn answers
        if "correlation-id" in headers:  # CorrelationIdMiddleware echoes it
            out.append((b"correlation-id", headers["correlation-id"].encode("latin-1")))
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": out})
        await send({"type": "http.response.body", "body": response.content})
        self.served += 1
        return True

    @staticmethod
    def _request(method: str, scope: dict[str, Any], headers: dict[str, str], body: bytes,
                 query: bytes) -> httpx.Request | None:
        """The request for DirectTransport's handlers, or None when the request is one the
        lane leaves to FastAPI: a body that is not JSON (or not sent as JSON), a repeated
        query parameter, a target httpx cannot represent."""
        from urllib.parse import parse_qsl

        if method in ("PATCH", "PUT", "POST"):
            kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if kind != "application/json":
                return None
            try:
                json.loads(body)
            except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
                return None
        try:
            keys = [k for k, _ in parse_qsl(query.decode("ascii"), keep_blank_values=True)]
            raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("ascii")
            url = httpx.URL("http://127.0.0.1" + raw_path
                            + ("?" + query.decode("ascii") if query else ""))
        except (UnicodeDecodeError, httpx.InvalidURL):
            return None
        if len(keys) != len(set(keys)):
            return None
        try:
            return httpx.Request(method, url, headers=headers, content=body)
        except UnicodeEncodeError:  # a header httpx will not send (not ASCII)
            return None

    async def _serve(self, request: httpx.Request, name: str, params: dict[str, str],
                     token: Any) -> httpx.Response:
        """Run the handler in one of the app's worker threads (AnyIO's, as FastAPI would)."""
        import anyio.to_thread
        import svcs

        registry = self.execution_app.state.svcs_registry

        def serve() -> httpx.Response:
            with svcs.Container(registry) as services:
                request.extensions = {**request.extensions, TOKEN_EXTENSION: token,
                                      SERVICES_EXTENSION: services}
                # Path parameters as Starlette gives them: percent-decoded once (ASGI's path).
                return self.direct._serve(getattr(self.direct, name), request, params)

        response: httpx.Response = await anyio.to_thread.run_sync(
            contextvars.copy_context().run, serve)
        return response

    async def _authorise(self, authorization: str, name: str, params: dict[str, str]) -> Any:
        """The request's ``TIToken`` when the route may be served here, else None."""
        import time

        from airflow.api_fastapi.auth.tokens import JWTValidator
        from airflow.api_fastapi.execution_api.datamodels.token import TIClaims, TIToken

        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials:
            return None
        registry = getattr(self.execution_app.state, "svcs_registry", None)
        if registry is None:
            return None
        try:
            if self._validator is None:
                import svcs

                async with svcs.Container(registry) as services:
                    self._validator = await services.aget(JWTValidator)
            claims = await self._validator.avalidated_claims(credentials, {})
            claims.setdefault("scope", "execution")
            token = TIToken(id=claims["sub"], claims=TIClaims(**claims))
        except Exception:  # the app answers (403) and logs why
            return None
        scopes, ti_self = _ROUTE_AUTH[name]
        if token.claims.scope not in scopes or (ti_self and str(token.id) != params["id"]):
            return None
        if token.claims.scope == "execution":
            # JWTReissueMiddleware's rule: renew in the last fifth of the lifetime (≥ 30 s).
            exp, iat = int(claims.get("exp", 0)), int(claims.get("iat", 0))
            if exp - int(time.time()) <= max(int((exp - iat) * 0.20), 30):
                return None
        return token


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
        out[name] = default if raw is None else _in_query(
            functools.partial(_adapter(kind).validate_python, raw), name)
    return out


#: The title of a ``ValidationError`` about the query string (see :func:`_in_query`).
_QUERY_ERROR = "query"


def _in_query(validate: Callable[[], Any], *loc: str) -> Any:
    """``validate()``; a ``ValidationError`` it raises is re-raised as one about the query
    string (titled :data:`_QUERY_ERROR`, its errors under ``loc``), which FastAPI locates
    there."""
    from pydantic import ValidationError
    from pydantic_core import InitErrorDetails

    try:
        return validate()
    except ValidationError as e:
        details: list[InitErrorDetails] = []
        for err in e.errors():
            detail = InitErrorDetails(type=err["type"], loc=(*loc, *err["loc"]),
                                      input=err["input"])
            if err.get("ctx"):
                detail["ctx"] = err["ctx"]
            details.append(detail)
        raise ValidationError.from_exception_data(_QUERY_ERROR, details) from None


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)
