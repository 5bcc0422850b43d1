"""REST handlers of the Kyte server extension (``{base_url}kyte/...``, see docs/openapi.yaml).

Thin on purpose: parse the request, call :class:`~kyte_jupyter.server.service.KyteService`,
write JSON. :class:`KyteHandler` turns every failure into ``{"message": ...}`` with a fitting
status; every verb is authenticated and authorized on the ``kyte`` resource.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from http.client import responses
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError
from tornado import web

from ..contracts import rest
from ..state import MAX_INT32, StateError
from .service import KyteService

#: The resource name Kyte's handlers are authorized on (for custom Authorizers).
AUTH_RESOURCE = "kyte"

#: Largest request body accepted (the export request is a few hundred bytes).
MAX_BODY_SIZE = 1024 * 1024

#: Bounds of integer query arguments: what SQLite (and ``os.pread``) take without overflow.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class KyteHandler(APIHandler):
    """Base of Kyte's handlers: the service from settings, JSON replies and JSON errors."""

    auth_resource = AUTH_RESOURCE

    #: Set when the reply is sent before the request body is read: tornado then closes the
    #: connection, and ``Connection: close`` tells the client so (RFC 9112, section 9.6).
    close_connection = False

    @property
    def kyte(self) -> KyteService:
        """The service the extension put into the web app's settings."""
        service: KyteService = self.settings["kyte_service"]
        return service

    def reply(self, data: BaseModel | Sequence[BaseModel], status: int = 200) -> None:
        """Finish with a contract model (or a list of them) as JSON."""
        if isinstance(data, BaseModel):
            body = data.model_dump_json()
        else:
            body = "[" + ",".join(item.model_dump_json() for item in data) + "]"
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error is ``{"message": ...}`` (plus ``problems`` for export), never HTML."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        body: rest.Error
        if isinstance(exc, StateError):
            status_code = exc.status
            problems = getattr(exc, "problems", None)
            body = rest.ExportError(
                message=str(exc), problems=None if problems is None else list(problems)
            )
        elif isinstance(exc, web.HTTPError):
            status_code = exc.status_code
            body = rest.Error(message=exc.log_message or responses.get(status_code, "Error"))
        elif exc is not None:
            status_code = 500
            body = rest.Error(
                message="Kyte hit an unexpected error; the Jupyter server log has details."
            )
        else:
            body = rest.Error(message=responses.get(status_code, "Error"))
        self.set_status(status_code)
        if self.close_connection:
            self.set_header("Connection", "close")
        if status_code == 503:
            self.set_header("Retry-After", "1")
        if status_code == 405:  # RFC 9110 section 15.5.6: say which methods there are
            verbs = [
                v.upper()
                for v in ("get", "post", "put", "patch", "delete")
                if v in vars(type(self))
            ]
            self.set_header("Allow", ", ".join(verbs))
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(body.model_dump_json())

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Expected failures (404s, locked metastore...) are logged in one line."""
        if isinstance(value, StateError):
            self.log.warning("Kyte %s %s: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)

    def int_argument(
        self,
        name: str,
        default: int | None,
        *,
        minimum: int = INT64_MIN,
        maximum: int = INT64_MAX,
    ) -> int | None:
        """An integer query argument (400 if malformed or outside ``minimum..maximum``)."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        # int() would take "1_000", " 7" or "٣" (and spend quadratic time on 10,000 digits).
        if len(raw) > 20 or not re.fullmatch(r"-?[0-9]+", raw):
            raise web.HTTPError(400, f"{name} must be an integer, not {shown!r}.")
        value = int(raw)
        if not minimum <= value <= maximum:
            raise web.HTTPError(400, f"{name} must be from {minimum} to {maximum}.")
        return value


class SessionsHandler(KyteHandler):
    """``/kyte/sessions``: every session, or the one of ``?path=<notebook>``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List sessions."""
        self.reply(await self.kyte.list_sessions(self.get_query_argument("path", None)))


class SessionHandler(KyteHandler):
    """``/kyte/sessions/{session_id}``: one session."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        """Describe one session."""
        self.reply(await self.kyte.get_session(session_id))

    @web.authenticated
    @authorized
    async def delete(self, session_id: str) -> None:
        """Delete a session's home (its runs, logs and metastore)."""
        await self.kyte.delete_session(session_id)
        self.set_status(204)
        self.finish()


class DagsHandler(KyteHandler):
    """``/kyte/sessions/{session_id}/dags``: graphs and latest-run states."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        """List the session's DAGs."""
        self.reply(await self.kyte.dags(session_id))


class RunsHandler(KyteHandler):
    """``/kyte/sessions/{session_id}/dags/{dag_id}/runs``: runs, newest first."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str, dag_id: str) -> None:
        """List runs of a DAG."""
        limit = self.int_argument("limit", 100, minimum=1, maximum=MAX_INT32)
        assert limit is not None
        self.reply(await self.kyte.runs(session_id, dag_id, limit))


class TasksHandler(KyteHandler):
    """``/kyte/sessions/{session_id}/dags/{dag_id}/runs/{run_id}/tasks``."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str, dag_id: str, run_id: str) -> None:
        """List the task instances of a run."""
        self.reply(await self.kyte.tasks(session_id, dag_id, run_id))


class LogHandler(KyteHandler):
    """``.../runs/{run_id}/tasks/{task_id}/logs``: a byte range of one try's log."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str, dag_id: str, run_id: str, task_id: str) -> None:
        """Read part of a log (``?try=N&offset=BYTES&limit=BYTES&map_index=M``), or search
        the whole of it (``?search=TEXT``)."""
        map_index = self.int_argument("map_index", -1, minimum=-1, maximum=MAX_INT32)
        try_number = self.int_argument("try", None, minimum=1, maximum=MAX_INT32)
        offset = self.int_argument("offset", 0)
        limit = self.int_argument("limit", 1024 * 1024, minimum=1, maximum=MAX_INT32)
        assert map_index is not None and offset is not None and limit is not None
        search = self.get_query_argument("search", None)
        if search is not None:
            self.reply(
                await self.kyte.search_log(
                    session_id,
                    dag_id,
                    run_id,
                    task_id,
                    search,
                    try_number=try_number,
                    map_index=map_index,
                )
            )
            return
        self.reply(
            await self.kyte.log(
                session_id,
                dag_id,
                run_id,
                task_id,
                try_number=try_number,
                map_index=map_index,
                offset=offset,
                limit=limit,
            )
        )


class AuditHandler(KyteHandler):
    """``/kyte/sessions/{session_id}/audit``: the audit log, oldest first."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        """The last ``?limit=N`` entries (default 1000)."""
        limit = self.int_argument("limit", 1000, minimum=1, maximum=MAX_INT32)
        self.reply(await self.kyte.audit(session_id, limit))


@web.stream_request_body
class ExportHandler(KyteHandler):
    """``/kyte/export``: write a notebook's DAGs as DAG files."""

    _body: bytearray
    _refusal: web.HTTPError | None

    async def prepare(self) -> None:  # type: ignore[override]
        """Refuse bodies over :data:`MAX_BODY_SIZE` before reading them; read the others.

        A refusal answered before the body is read forces tornado to close the connection
        (the unread body would be taken for the next request), which a keep-alive client
        only learns when its next request is reset (issue 13.6). So a refusal of a request
        whose body is within the limit (authentication, XSRF) waits until the body has been
        read, and the connection stays usable; a body over the limit is refused at once with
        ``Connection: close``, so the client knows to open a new connection.
        """
        self._body = bytearray()
        self._refusal = None
        declared = self.request.headers.get("Content-Length")
        if declared is not None:
            if not declared.isdigit():
                self.close_connection = True
                raise web.HTTPError(400, "Content-Length is not a number.")
            if int(declared) > MAX_BODY_SIZE:
                self.close_connection = True
                raise web.HTTPError(413, f"The request body is limited to {MAX_BODY_SIZE} bytes.")
        connection = self.request.connection
        if connection is not None and hasattr(connection, "set_max_body_size"):
            connection.set_max_body_size(MAX_BODY_SIZE)
        try:
            await super().prepare()
        except web.HTTPError as e:
            self._refusal = e  # answered by post(), once the body is read

    def data_received(self, chunk: bytes) -> None:
        """Collect the body, keeping at most one byte more than the limit."""
        room = MAX_BODY_SIZE + 1 - len(self._body)
        if room > 0:
            self._body.extend(chunk[:room])

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Export: ``{path, dag_id?, output?, force?, tests?}`` -> ``{files, tests}``."""
        if self._refusal is not None:
            raise self._refusal
        if len(self._body) > MAX_BODY_SIZE:
            raise web.HTTPError(413, f"The request body is limited to {MAX_BODY_SIZE} bytes.")
        try:
            body = json.loads(self._body or b"null")
        except ValueError as e:
            raise web.HTTPError(400, f"The request body is not valid JSON: {e}.") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, 'The request body must be a JSON object: {"path": ...}.')
        path, dag_id, output = body.get("path"), body.get("dag_id"), body.get("output")
        force, tests = body.get("force", False), body.get("tests", False)
        if not isinstance(path, str) or not path:
            raise web.HTTPError(400, "'path' (the notebook, relative to the root) is required.")
        for name, value in (("dag_id", dag_id), ("output", output)):
            if value is not None and not isinstance(value, str):
                raise web.HTTPError(400, f"'{name}' must be a string.")
        for name, flag in (("force", force), ("tests", tests)):
            if not isinstance(flag, bool):
                raise web.HTTPError(400, f"'{name}' must be true or false.")
        try:
            request = rest.ExportRequest.model_validate(body, strict=True)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in e.errors()
            )
            raise web.HTTPError(400, f"The export request is malformed: {problems}.") from None
        reply = await self.kyte.export(
            request.path,
            dag_id=request.dag_id or None,
            output=request.output or None,
            force=request.force,
            tests=request.tests,
        )
        self.reply(reply)


#: Routes relative to ``base_url``, as OpenAPI path templates (docs/openapi.yaml).
ROUTES: list[tuple[str, type[KyteHandler]]] = [
    ("/kyte/sessions", SessionsHandler),
    ("/kyte/sessions/{session_id}", SessionHandler),
    ("/kyte/sessions/{session_id}/dags", DagsHandler),
    ("/kyte/sessions/{session_id}/dags/{dag_id}/runs", RunsHandler),
    ("/kyte/sessions/{session_id}/dags/{dag_id}/runs/{run_id}/tasks", TasksHandler),
    ("/kyte/sessions/{session_id}/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs", LogHandler),
    ("/kyte/sessions/{session_id}/audit", AuditHandler),
    ("/kyte/export", ExportHandler),
]


def route_pattern(template: str) -> str:
    """The tornado URL pattern of an OpenAPI path template (``{name}`` -> one path segment)."""
    return re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)


def all_routes() -> list[tuple[str, type[KyteHandler]]]:
    """:data:`ROUTES` and the routes of the versions and publish modules."""
    from . import publish, versions  # their handlers build on the ones here

    return [*ROUTES, *versions.ROUTES, *publish.ROUTES]


def handlers() -> list[tuple[str, type[KyteHandler]]]:
    """Handlers for :class:`~kyte_jupyter.server.app.KyteExtensionApp` (base_url added there)."""
    return [(route_pattern(template), handler) for template, handler in all_routes()]
