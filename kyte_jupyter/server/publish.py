"""Publishing from JupyterLab: ``GET /kyte/publish/targets`` and ``POST /kyte/publish``.

The "Publish…" dialog lists the operator's targets, asks for a dry run, shows each file's
diff, then publishes exactly what the user reviewed (``expect``: file -> SHA-256). The work
is done by ``jupyter kyte publish … --format json`` in a subprocess (export, checks, git), so
the server imports neither Airflow nor the exporter, its event loop never waits, and the
dialog and the command line cannot disagree. The request may name only a configured target:
a REST caller cannot make the server write to a folder or repository of its choosing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jupyter_server.auth.decorator import authorized
from pydantic import ValidationError
from tornado import web

from ..contracts.publish import (
    FILENAME_PATTERN,
    SHA256_PATTERN,
    PublishReply,
    PublishRequest,
    PublishTarget,
)
from ..publish.targets import GIT_PREFIX, PublishError, Target, configured_targets
from ..session import ROOT_ENV
from ..state import BadRequestError, NotFoundError, StateError, check_ids
from .handlers import MAX_BODY_SIZE, ExportHandler, KyteHandler
from .service import KyteService

#: How long a publish (export, checks, reading or pushing a repository) may take, in seconds.
PUBLISH_TIMEOUT = 300.0

#: The settings key under which the extension puts ``KyteExtensionApp.publish_targets``.
TARGETS_SETTING = "kyte_publish_targets"


class PublishFailed(StateError):
    """``jupyter kyte publish`` refused or failed; the message says why (nothing written)."""

    status = 400


def redact_url(url: str) -> str:
    """``url`` without credentials: no user info (a token is often put there), no query."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url  # a path, or scp-like user@host:path (no secret in it)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _secrets(targets: Mapping[str, str]) -> dict[str, str]:
    """Each configured location that holds credentials -> the same without them."""
    out = {}
    for spec in targets.values():
        url = spec[len(GIT_PREFIX) :].partition("#")[0] if spec.startswith(GIT_PREFIX) else spec
        clean = redact_url(url)
        if clean != url:
            out[url] = clean
    return out


def redact(text: str, targets: Mapping[str, str]) -> str:
    """``text`` with every configured URL's credentials left out."""
    for secret, clean in sorted(_secrets(targets).items(), key=lambda kv: -len(kv[0])):
        text = text.replace(secret, clean)
    return text


def list_targets(targets: Mapping[str, str]) -> list[PublishTarget]:
    """The configured targets, by name, as the dialog lists them (credentials left out)."""
    out = []
    for name in sorted(targets):
        try:
            target = Target.parse(name, targets)
        except PublishError:
            continue  # a malformed entry: the CLI explains it when someone picks it
        out.append(
            PublishTarget(
                name=name, kind=target.kind, description=redact(target.describe(), targets)
            )
        )
    return out


def _command(notebook: str, request: PublishRequest) -> list[str]:
    """The ``jupyter kyte publish`` command line of a request (``--opt=value``: no value
    can be taken for an option)."""
    cmd = [sys.executable, "-m", "kyte_jupyter.cli", "publish", f"--target={request.target}"]
    if request.dag_id:
        cmd.append(f"--dag={request.dag_id}")
    if request.dry_run:
        cmd.append("--dry-run")
    else:
        cmd.append("--yes")
        cmd += [f"--expect={name}={sha}" for name, sha in sorted((request.expect or {}).items())]
    return [*cmd, "--format=json", "--", notebook]


def check_request(request: PublishRequest, targets: Mapping[str, str]) -> None:
    """Refuse what the command line must never be asked (raises :class:`BadRequestError`)."""
    if request.target not in targets:
        known = ", ".join(sorted(targets)) or "none are configured"
        raise BadRequestError(
            f"There is no publish target named {request.target!r} (known targets: {known})."
        )
    if request.dag_id is not None:
        # An Airflow id never starts with "-", so it cannot be taken for an option either.
        check_ids(dag_id=request.dag_id)
    if request.dry_run:
        return
    if not request.expect:
        raise BadRequestError(
            "'expect' (file -> SHA-256 of what was reviewed) is required to publish: "
            "run a dry run first and send the hashes it showed."
        )
    for name, sha in request.expect.items():
        if not re.match(FILENAME_PATTERN, name) or not re.match(SHA256_PATTERN, sha):
            raise BadRequestError(
                f"'expect' maps DAG file names to SHA-256 hashes; {name!r}: {sha!r} is not one."
            )


async def publish(
    service: KyteService,
    request: PublishRequest,
    targets: Mapping[str, str],
    *,
    timeout: float = PUBLISH_TIMEOUT,
) -> PublishReply:
    """Run ``jupyter kyte publish`` for ``request`` and return what it reported.

    Raises :class:`PublishFailed` (400) when it refused or failed, with its message.
    """
    check_request(request, targets)
    notebook = service.os_path(request.path, follow_links=True)
    if not await service.run(os.path.isfile, notebook):
        raise NotFoundError(f"There is no notebook {request.path!r}.")
    env = dict(os.environ)
    env["KYTE_PUBLISH_TARGETS"] = json.dumps(dict(targets))
    env[ROOT_ENV] = str(service.store.root)
    env.pop("AIRFLOW_HOME", None)
    proc = await asyncio.create_subprocess_exec(
        *_command(notebook, request),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=os.path.dirname(notebook),
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise PublishFailed(
            f"Publishing took longer than {timeout:.0f} s and was stopped; nothing may have "
            "been written. Try again, or publish from a terminal with jupyter kyte publish."
        ) from None
    doc = _document(out)
    if doc is None:
        service.logger.error(
            "Kyte: jupyter kyte publish exited %s without a report: %s",
            proc.returncode,
            redact(err.decode("utf-8", "replace")[-4000:], targets),
        )
        raise StateError("Publishing failed unexpectedly; the Jupyter server log has details.")
    if doc.get("error"):
        raise PublishFailed(redact(str(doc["error"]), targets))
    try:
        reply = PublishReply.model_validate(
            {k: doc.get(k) for k in ("target", "changes", "published", "commit")}
            | {"target_description": redact(str(doc.get("target_description") or ""), targets)}
        )
    except ValidationError as e:
        service.logger.error("Kyte: jupyter kyte publish reported an unknown shape: %s", e)
        raise StateError("Publishing reported something Kyte cannot read.") from e
    return reply


def _document(out: bytes) -> dict[str, Any] | None:
    """The JSON document ``--format json`` prints last, or ``None``."""
    for line in reversed(out.decode("utf-8", "replace").splitlines()):
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                return None
            return doc if isinstance(doc, dict) else None
    return None


def _targets(settings: Mapping[str, Any]) -> Callable[[], dict[str, str]]:
    """How the handlers read the targets: ``KYTE_PUBLISH_TARGETS`` (tests, CI) wins over the
    extension's ``publish_targets`` trait, else the server config files are read."""

    def read() -> dict[str, str]:
        configured = settings.get(TARGETS_SETTING)
        if configured and not os.environ.get("KYTE_PUBLISH_TARGETS"):
            return {str(k): str(v) for k, v in dict(configured).items()}
        return configured_targets()

    return read


class PublishTargetsHandler(KyteHandler):
    """``/kyte/publish/targets``: the targets a notebook can be published to."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List the configured targets."""
        try:
            targets = await self.kyte.run(_targets(self.settings))
        except PublishError as e:
            raise PublishFailed(str(e)) from e
        self.reply(list_targets(targets))


class PublishHandler(ExportHandler):
    """``/kyte/publish``: review (dry run) or publish a notebook's DAG files.

    Reads its body as the export handler does (size limit, refusals after the body is read).
    """

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """``{path, target, dag_id?, dry_run, expect?}`` -> the publish report."""
        refusal = getattr(self, "_refusal", None)
        if refusal is not None:
            raise refusal
        if len(self._body) > MAX_BODY_SIZE:
            raise web.HTTPError(413, f"The request body is limited to {MAX_BODY_SIZE} bytes.")
        try:
            body = json.loads(self._body or b"null")
        except ValueError as e:
            raise web.HTTPError(400, f"The request body is not valid JSON: {e}.") from None
        if not isinstance(body, dict):
            raise web.HTTPError(
                400, 'The request body must be a JSON object: {"path": ..., "target": ...}.'
            )
        try:
            request = PublishRequest.model_validate(body, strict=True)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in e.errors()
            )
            raise web.HTTPError(400, f"The publish request is malformed: {problems}.") from None
        try:
            targets = await self.kyte.run(_targets(self.settings))
        except PublishError as e:
            raise PublishFailed(str(e)) from e
        reply = await publish(self.kyte, request, targets)
        self.reply(reply)


#: Routes relative to ``base_url``, as OpenAPI path templates (docs/openapi.yaml).
ROUTES: list[tuple[str, type[KyteHandler]]] = [
    ("/kyte/publish/targets", PublishTargetsHandler),
    ("/kyte/publish", PublishHandler),
]
