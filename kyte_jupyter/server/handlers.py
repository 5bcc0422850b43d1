"""REST handlers of the Kyte server extension (``{base_url}kyte/...``, see docs/openapi.yaml).

Thin on purpose: parse the request, call :class:`~kyte_jupyter.server.service.KyteService`,
write JSON. :class:`KyteHandler` turns every failure into ``{"message": ...}`` with a fitting
status; every verb is authenticated and authorized on the ``kyte`` resource.
"""

from __future__ import annotations

import json
import re
from http.client import responses
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..state import StateError
from .service import KyteService

#: The resource name Kyte's handlers are authorized on (for custom Authorizers).
AUTH_RESOURCE = "kyte"

#: Largest request body accepted (the export request is a few hundred bytes).
MAX_BODY_SIZE = 1024 * 1024


class KyteHandler(APIHandler):
    """Base of Kyte's handlers: the service from settings, JSON replies and JSON errors."""

    auth_resource = AUTH_RESOURCE

    @property
    def kyte(self) -> KyteService:
        """The service the extension put into the web app's settings."""
        service: KyteService = self.settings["kyte_service"]
        return service

    def reply(self, data: Any, status: int = 200) -> None:
        """Finish with ``data`` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error is ``{"message": ...}`` (plus ``problems`` for export), never HTML."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        body: dict[str, Any]
        if isinstance(exc, StateError):
            status_code = exc.status
            body = {"message": str(exc)}
            problems = getattr(exc, "problems", None)
            if problems is not None:
                body["problems"] = list(problems)
        elif isinstance(exc, web.HTTPError):
            status_code = exc.status_code
            body = {"message": exc.log_message or responses.get(status_code, "Error")}
        elif exc is not None:
            status_code = 500
            body = {"message": "Kyte hit an unexpected error; the Jupyter server log has details."}
        else:
            body = {"message": responses.get(status_code, "Error")}
        self.set_status(status_code)
        if status_code == 503:
            self.set_header("Retry-After", "1")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Expected failures (404s, locked metastore...) are logged in one line."""
        if isinstance(value, StateError):
            self.log.warning("Kyte %s %s: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)

    def int_argument(
        self, name: str, default: int | None, *, minimum: int | None = None
    ) -> int | None:
        """An integer query argument (400 if malformed or below ``minimum``)."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise web.HTTPError(400, f"{name} must be an integer, not {raw!r}.") from None
        if minimum is not None and value < minimum:
            raise web.HTTPError(400, f"{name} must be {minimum} or more.")
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
        limit = self.int_argument("limit", 100, minimum=1)
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
        """Read part of a log (``?try=N&offset=BYTES&limit=BYTES&map_index=M``)."""
        map_index = self.int_argument("map_index", -1, minimum=-1)
        offset = self.int_argument("offset", 0)
        limit = self.int_argument("limit", 1024 * 1024, minimum=1)
        assert map_index is not None and offset is not None and limit is not None
        self.reply(
            await self.kyte.log(
                session_id,
                dag_id,
                run_id,
                task_id,
                try_number=self.int_argument("try", None, minimum=1),
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
        self.reply(await self.kyte.audit(session_id, self.int_argument("limit", 1000, minimum=1)))


@web.stream_request_body
class ExportHandler(KyteHandler):
    """``/kyte/export``: write a notebook's DAGs as DAG files."""

    _body: bytearray

    async def prepare(self) -> None:  # type: ignore[override]
        """Refuse bodies over :data:`MAX_BODY_SIZE` before reading them."""
        self._body = bytearray()
        await super().prepare()
        declared = self.request.headers.get("Content-Length")
        if declared is not None:
            if not declared.isdigit():
                raise web.HTTPError(400, "Content-Length is not a number.")
            if int(declared) > MAX_BODY_SIZE:
                raise web.HTTPError(413, f"The request body is limited to {MAX_BODY_SIZE} bytes.")
        connection = self.request.connection
        if connection is not None and hasattr(connection, "set_max_body_size"):
            connection.set_max_body_size(MAX_BODY_SIZE)

    def data_received(self, chunk: bytes) -> None:
        """Collect the body, keeping at most one byte more than the limit."""
        room = MAX_BODY_SIZE + 1 - len(self._body)
        if room > 0:
            self._body.extend(chunk[:room])

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Export: ``{path, dag_id?, output?, force?}`` -> ``{files: [...]}``."""
        if len(self._body) > MAX_BODY_SIZE:
            raise web.HTTPError(413, f"The request body is limited to {MAX_BODY_SIZE} bytes.")
        try:
            body = json.loads(self._body or b"null")
        except ValueError as e:
            raise web.HTTPError(400, f"The request body is not valid JSON: {e}.") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, 'The request body must be a JSON object: {"path": ...}.')
        path, dag_id, output = body.get("path"), body.get("dag_id"), body.get("output")
        force = body.get("force", False)
        if not isinstance(path, str) or not path:
            raise web.HTTPError(400, "'path' (the notebook, relative to the root) is required.")
        for name, value in (("dag_id", dag_id), ("output", output)):
            if value is not None and not isinstance(value, str):
                raise web.HTTPError(400, f"'{name}' must be a string.")
        if not isinstance(force, bool):
            raise web.HTTPError(400, "'force' must be true or false.")
        files = await self.kyte.export(
            path, dag_id=dag_id or None, output=output or None, force=force
        )
        self.reply({"files": files})


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


def handlers() -> list[tuple[str, type[KyteHandler]]]:
    """Handlers for :class:`~kyte_jupyter.server.app.KyteExtensionApp` (base_url added there)."""
    from . import publish, versions  # their handlers build on KyteHandler

    routes = [*ROUTES, *versions.ROUTES, *publish.ROUTES]
    return [(route_pattern(template), handler) for template, handler in routes]
