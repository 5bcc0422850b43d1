"""The server extension's service: sessions, their state, export, kernel environments.

Handlers stay thin and call this. Replies are :mod:`kyte_jupyter.contracts.rest` models
(the handlers serialize them). Everything that touches the disk runs in a small thread
pool of its own, so the event loop never waits on SQLite or the file system, and a slow
metastore cannot starve the server's other uses of the default executor.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import posixpath
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from ..contracts import rest
from ..contracts.ids import valid_session_id
from ..session import ROOT_ENV, Session, SessionError, SessionStore
from ..session.metastore import METASTORE_ENV
from ..state import (
    DEFAULT_LOG_LIMIT,
    DEFAULT_RUNS_LIMIT,
    ForbiddenError,
    NotFoundError,
    SessionState,
    StateError,
    check_ids,
)

if TYPE_CHECKING:
    from .kernels import KyteKernelManager

T = TypeVar("T")

#: The jupyter_events schema the contents manager emits file actions on (rename, delete...).
CONTENTS_SCHEMA_ID = "https://events.jupyter.org/jupyter_server/contents_service/v1"

#: The export folder next to a notebook when the request names none (the exporter's default).
DEFAULT_EXPORT_DIR = "dags"

#: Added to the command of Python (ipykernel) kernels so the magics are loaded at start.
AUTOLOAD_ARGUMENT = "--IPKernelApp.extra_extensions=kyte_jupyter"


class PathError(StateError):
    """A client path that is malformed or leads outside the server's root directory."""

    status = 400


class ExportProblems(StateError):
    """The notebook cannot be exported; ``problems`` lists why (nothing was written)."""

    status = 400

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class ConflictError(StateError):
    """The request conflicts with the current state (a session still in use, say)."""

    status = 409


class KyteService:
    """What the Kyte REST API and kernel manager do, over one :class:`SessionStore`."""

    def __init__(
        self,
        store: SessionStore,
        root_dir: str,
        *,
        extra_env: Mapping[str, str] | None = None,
        notebook_extensions: tuple[str, ...] = (".ipynb",),
        autoload_magics: bool = True,
        log: logging.Logger | None = None,
        max_workers: int = 4,
    ) -> None:
        self.store = store
        self.root_dir = os.path.normpath(os.path.abspath(root_dir))
        self.extra_env = dict(extra_env or {})
        self.notebook_extensions = tuple(e.lower() for e in notebook_extensions)
        self.autoload_magics = autoload_magics
        self.logger = log or logging.getLogger(__name__)
        self.kernel_manager: KyteKernelManager | None = None
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kyte")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking ``fn`` in Kyte's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        """Stop the thread pool (pending jobs are dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---- paths ---------------------------------------------------------------------------
    def os_path(self, api_path: str, *, follow_links: bool = False) -> str:
        """The absolute OS path of an API path (relative to the server root, ``/``-separated).

        Raises :class:`PathError` for absolute paths, ``..`` segments or anything else that
        leads outside the root; with ``follow_links`` also for a symbolic link leading out.
        """
        if not isinstance(api_path, str) or "\0" in api_path or "\\" in api_path:
            raise PathError("Paths are '/'-separated and relative to the Jupyter root directory.")
        if api_path.startswith("/") or os.path.isabs(api_path):
            raise PathError(
                f"{api_path!r} is absolute; give the path relative to the Jupyter root directory."
            )
        if ".." in api_path.split("/"):
            raise PathError(f"{api_path!r} must not contain '..'.")
        full = os.path.normpath(os.path.join(self.root_dir, api_path))
        if not _inside(full, self.root_dir):
            raise PathError(f"{api_path!r} is outside the Jupyter root directory.")
        if follow_links and not _inside(os.path.realpath(full), os.path.realpath(self.root_dir)):
            raise ForbiddenError(
                f"{api_path!r} leads outside the Jupyter root directory through a symbolic link."
            )
        return full

    def api_path(self, os_path: str | Path) -> str | None:
        """The API path of an OS path inside the server root, else ``None``."""
        full = os.path.normpath(os.path.abspath(os_path))
        if not _inside(full, self.root_dir):
            return None
        rel = os.path.relpath(full, self.root_dir)
        return "" if rel == "." else rel.replace(os.sep, "/")

    # ---- sessions ------------------------------------------------------------------------
    def session_json(self, session: Session) -> rest.Session:
        """The REST shape of a session: ``Session.to_json()`` plus its notebook's API path."""
        return rest.Session.model_validate(
            {**session.to_json(), "path": self.api_path(session.notebook_path)}
        )

    def _get(self, session_id: str) -> Session:
        if not valid_session_id(session_id):
            raise NotFoundError(f"There is no Kyte session {session_id!r}.")
        try:
            return self.store.get(session_id)
        except (KeyError, SessionError) as e:
            raise NotFoundError(f"There is no Kyte session {session_id!r}.") from e

    async def list_sessions(self, api_path: str | None = None) -> list[rest.Session]:
        """All sessions, or the one of the notebook at ``api_path`` (a list of zero or one)."""
        if api_path is None:
            sessions = await self.run(self.store.list)
        else:
            found = await self.run(self.store.find, self.os_path(api_path))
            sessions = [] if found is None else [found]
        return [self.session_json(s) for s in sessions]

    async def get_session(self, session_id: str) -> rest.Session:
        """One session by id (404 if unknown)."""
        return self.session_json(await self.run(self._get, session_id))

    async def delete_session(self, session_id: str) -> None:
        """Remove a session's home, unless a running kernel still uses it."""
        session = await self.run(self._get, session_id)
        km = self.kernel_manager
        kernels = km.kernels_for_session(session.id) if km is not None else []
        if kernels:
            raise ConflictError(
                f"Session {session_id!r} is in use by running kernel(s) {', '.join(kernels)}. "
                "Shut down the notebook's kernel, then delete the session."
            )
        try:
            await self.run(self.store.delete, session.id)
        except KeyError as e:  # deleted meanwhile
            raise NotFoundError(f"There is no Kyte session {session_id!r}.") from e

    async def audit(self, session_id: str, limit: int | None) -> list[rest.AuditEntry]:
        """The last ``limit`` audit entries of a session, oldest first.

        Lines that are not audit entries (written by hand, say) are left out.
        """
        session = await self.run(self._get, session_id)
        entries: list[rest.AuditEntry] = []
        for raw in await self.run(session.read_audit, limit):
            try:
                entries.append(rest.AuditEntry.model_validate(raw))
            except ValidationError:
                continue
        return entries

    # ---- session state -------------------------------------------------------------------
    async def _state(self, session_id: str) -> SessionState:
        return SessionState(await self.run(self._get, session_id))

    async def dags(self, session_id: str) -> list[rest.DagView]:
        """The session's DAGs with graphs and latest-run states."""
        return await self.run((await self._state(session_id)).dags)

    async def runs(
        self, session_id: str, dag_id: str, limit: int = DEFAULT_RUNS_LIMIT
    ) -> list[rest.DagRun]:
        """Runs of one DAG, newest first."""
        return await self.run((await self._state(session_id)).runs, dag_id, limit)

    async def tasks(self, session_id: str, dag_id: str, run_id: str) -> list[rest.TaskInstance]:
        """Task instances of one run."""
        return await self.run((await self._state(session_id)).tasks, dag_id, run_id)

    async def log(
        self,
        session_id: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        *,
        try_number: int | None = None,
        map_index: int = -1,
        offset: int = 0,
        limit: int = DEFAULT_LOG_LIMIT,
    ) -> rest.LogRange:
        """A byte range of a task try's log."""
        state = await self._state(session_id)
        return await self.run(
            functools.partial(
                state.log,
                dag_id,
                run_id,
                task_id,
                try_number=try_number,
                map_index=map_index,
                offset=offset,
                limit=limit,
            )
        )

    async def search_log(
        self,
        session_id: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        query: str,
        *,
        try_number: int | None = None,
        map_index: int = -1,
    ) -> rest.LogSearch:
        """The lines of a task try's whole log that contain ``query`` (in a worker thread)."""
        state = await self._state(session_id)
        return await self.run(
            functools.partial(
                state.search_log,
                dag_id,
                run_id,
                task_id,
                query,
                try_number=try_number,
                map_index=map_index,
            )
        )

    # ---- export --------------------------------------------------------------------------
    async def export(
        self,
        api_path: str,
        *,
        dag_id: str | None,
        output: str | None,
        force: bool,
        tests: bool = False,
    ) -> rest.ExportReply:
        """Export a notebook to DAG files; the reply lists their API paths.

        With ``tests``, the notebook's ``%%scenario`` cells are also written as
        ``test_<dag_id>.py`` next to the DAG files (``jupyter kyte export --tests``), in a
        subprocess: that imports the exported files, so Airflow, which the server never does.

        The output folder, given or the default ``dags/`` next to the notebook, passes the
        same check as the notebook (:meth:`os_path` with ``follow_links``): a folder that
        leads outside the root through a symbolic link is refused (403) before anything is
        written. The notebook's session, if it has one, records the export in its audit log.
        """
        if dag_id is not None:
            check_ids(dag_id=dag_id)
        notebook = self.os_path(api_path, follow_links=True)
        if not output:
            output = posixpath.join(posixpath.dirname(api_path), DEFAULT_EXPORT_DIR)
        out_dir = self.os_path(output, follow_links=True)
        if not await self.run(os.path.isfile, notebook):
            raise NotFoundError(f"There is no notebook {api_path!r}.")
        session = await self.run(self.store.find, notebook)
        try:
            files = await self.run(_export, notebook, dag_id, out_dir, force, self.root_dir)
        except ExportProblems as e:
            if session is not None:
                await self.run(
                    session.audit, "export", outcome="error", dag_id=dag_id, problems=e.problems
                )
            raise
        paths = [self.api_path(f) or str(f) for f in files]
        outside = [p for p in paths if p.startswith("/")]
        if outside:  # cannot happen after the checks above; never report it as success
            raise ForbiddenError(f"Export wrote outside the Jupyter root directory: {outside}.")
        test_paths: list[str] = []
        if tests:
            test_paths = [self.api_path(f) or f for f in await _write_tests(notebook, files)]
        if session is not None:
            await self.run(
                session.audit, "export", dag_id=dag_id, files=paths, via="server",
                tests=test_paths or None,
            )  # fmt: skip
        return rest.ExportReply(files=paths, tests=test_paths)

    # ---- kernels -------------------------------------------------------------------------
    def kernel_notebook(self, session_name: str | None) -> str | None:
        """The notebook a kernel is started for, from its ``JPY_SESSION_NAME``, or ``None``.

        Only notebooks (``notebook_extensions``) get a session, not consoles or scripts. A
        relative name (clients that send no session name get the API path) is taken as
        relative to the server root, not to the server's working directory.
        """
        if not session_name or not session_name.lower().endswith(self.notebook_extensions):
            return None
        return os.path.normpath(os.path.join(self.root_dir, session_name))

    async def session_for_notebook(self, notebook_path: str) -> Session:
        """The notebook's session, created on first use (may migrate the template once)."""
        return await self.run(self.store.for_notebook, notebook_path)

    def kernel_env(self, session: Session) -> dict[str, str]:
        """Environment entries a kernel of this session needs before it imports Airflow."""
        env = session.env(self.extra_env)
        env[ROOT_ENV] = str(self.store.root)
        if self.store.metastore_url:  # a session the kernel makes itself goes there too
            env[METASTORE_ENV] = self.store.metastore_url
        return env

    # ---- contents events -----------------------------------------------------------------
    async def on_contents_event(self, logger: Any, schema_id: str, data: Mapping[str, Any]) -> None:
        """jupyter_events listener: a renamed notebook (or folder) takes its session along."""
        if data.get("action") != "rename" or not data.get("source_path"):
            return
        old = os.path.normpath(os.path.join(self.root_dir, str(data["source_path"]).strip("/")))
        new = os.path.normpath(os.path.join(self.root_dir, str(data["path"]).strip("/")))
        try:
            moved = await self.run(self.move_sessions, old, new)
        except Exception:
            self.logger.exception("Kyte: could not move the sessions of %s to %s", old, new)
            return
        for sid in moved:
            self.logger.info("Kyte: session %s follows its notebook to %s", sid, new)

    def move_sessions(self, old: str, new: str) -> list[str]:
        """Re-key the sessions of notebook ``old`` (or of every notebook under folder ``old``)."""
        moved = []
        for session in self.store.list():
            path = session.notebook_path
            if path != old and not path.startswith(old + os.sep):
                continue
            target = new + path[len(old) :]
            stale = self.store.find(target)
            if stale is not None and stale.id != session.id:
                # The target's old session belongs to a notebook that no longer exists there;
                # keep its data, but under a key no notebook has, so lookups find this one.
                self.store.rename(target, f"{target}.detached-{stale.id}")
            self.store.rename(path, target)
            moved.append(session.id)
        return moved

    # ---- start-up ------------------------------------------------------------------------
    def start_background(self, retention_days: float, prepare_template: bool = True) -> None:
        """Prune old homes and prepare the template metastore, off the event loop."""
        if retention_days > 0:
            self._executor.submit(self._prune, retention_days)
        if prepare_template:
            self._executor.submit(self._prepare_template)

    def _prune(self, days: float) -> None:
        try:
            removed = self.store.prune(days)
        except Exception:
            self.logger.exception("Kyte: pruning sessions older than %s days failed", days)
            return
        if removed:
            self.logger.info(
                "Kyte: removed %d session(s) unused for %s days: %s",
                len(removed),
                days,
                ", ".join(removed),
            )

    def _prepare_template(self) -> None:
        start = time.monotonic()
        try:
            self.store.prepare_template()
        except Exception:
            self.logger.exception("Kyte: could not prepare the template metastore")
            return
        self.logger.debug("Kyte: template metastore ready in %.1fs", time.monotonic() - start)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(os.path.join(root, ""))


def _export(notebook: str, dag_id: str | None, output: str, force: bool, root: str) -> list[Path]:
    # Imported when used: nbconvert and friends stay out of the server until someone exports.
    from ..export import ExportError, OutputPathError, export_notebook

    # The export package checks every file it writes against ``root`` (issue 13.3), symbolic
    # links followed; KyteService.export has already checked the folder the same way.
    try:
        return list(
            export_notebook(notebook, dag_id=dag_id, output_dir=output, force=force, root=root)
        )
    except ExportError as e:
        if isinstance(e, OutputPathError):
            raise ForbiddenError("; ".join(e.problems) or str(e)) from e
        raise ExportProblems(str(e), list(e.problems)) from e
    except OSError as e:  # the output folder cannot be made or written
        raise _os_error(e, output) from e


#: Writes the scenario tests of exported DAG files (``kyte_jupyter.whatif.export``) in a
#: subprocess: ``argv`` is the notebook then the DAG files; prints one written path a line.
_WRITE_TESTS = (
    "import sys\n"
    "from pathlib import Path\n"
    "from kyte_jupyter.whatif import WhatIfError\n"
    "from kyte_jupyter.whatif.export import write_tests\n"
    "try:\n"
    "    written = write_tests(sys.argv[1], [Path(p) for p in sys.argv[2:]])\n"
    "except WhatIfError as e:\n"
    "    sys.exit(str(e))\n"
    "print('\\n'.join(map(str, written)))\n"
)

#: Longest a scenario-test export may take (it imports Airflow and the DAG files).
WRITE_TESTS_TIMEOUT = 300.0


async def _write_tests(notebook: str, dag_files: list[Path]) -> list[str]:
    """Write ``test_<dag_id>.py`` next to each DAG file with scenarios; their OS paths."""
    if not dag_files:
        return []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WRITE_TESTS, notebook, *map(str, dag_files),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), WRITE_TESTS_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise StateError(
            f"Writing the scenario tests took more than {WRITE_TESTS_TIMEOUT:.0f} s; "
            "the DAG files were written. Try `jupyter kyte export --tests` in a terminal."
        ) from None
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        problem = lines[-1] if lines else f"exit status {proc.returncode}"
        raise ExportProblems(
            "The DAG files were written, but their scenario tests could not be.", [problem]
        )
    return [line for line in out.decode(errors="replace").splitlines() if line.strip()]


def _os_error(e: OSError, path: str) -> StateError:
    """The client's share of an ``OSError``: bad names are 400, permissions 403, else 500."""
    what = f"Cannot write to {path}: {e.strerror or e}."
    if e.errno in (errno.ENAMETOOLONG, errno.EINVAL, errno.ENOTDIR, errno.EEXIST, errno.ELOOP):
        return PathError(what)
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ForbiddenError(what)
    return StateError(what)
