"""The notebook's Kyte session: what the magics call.

One :class:`Notebook` per kernel. It attaches the kernel to its notebook's session home,
imports Airflow for it when first needed, owns the DAG registry and the runner, and answers
the reads the magics show (latest run, recent runs, XComs, stored logs). Errors a user can fix
are raised as IPython's ``UsageError`` with a message that says what to do.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .cellspec import DagCellOptions
from .session import HOME_ENV, Session, SessionError, SessionStore, code_hash

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from .registry import DefineResult, Registry, SyncResult
    from .runner import Runner

_state: dict[str, Any] = {}


def import_airflow() -> None:
    """Import Airflow (once) with the session's home, quieting the server-side chatter."""
    if "kyte_airflow_ready" in _state:
        return
    import warnings

    # The in-process execution API imports starlette's test client; its deprecation notice
    # is about Airflow's dependencies, not the user's code.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    import airflow  # noqa: F401  (reads AIRFLOW_HOME now)

    from . import bridge

    bridge.quiet_server_logs()
    bridge.tune_sqlite()
    bridge.cache_task_runner_schemas()
    _state["kyte_airflow_ready"] = True


@dataclass
class StoredLog:
    """One try's stored log."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    path: Path

    def text(self) -> str:
        """The log's text (undecodable bytes replaced; a worker's JSON records rendered)."""
        from .runner.logs import read_log_text

        return read_log_text(self.path)


@dataclass
class SessionInfo:
    """What ``%kyte`` shows."""

    session_id: str
    notebook_path: str
    home: Path
    airflow_version: str
    dags: list[str]
    runs: list[tuple[str, str, str]]
    warnings: list[str] = field(default_factory=list)
    #: What the session is keyed on when the kernel was not told its notebook's path (a
    #: working directory, under nbclient or nbconvert); ``None`` when ``notebook_path`` is
    #: the notebook file.
    keyed_on_folder: str | None = None


class Notebook:
    """The notebook's Kyte session, as seen from its kernel."""

    def __init__(self, session: Session, keyed_on_folder: bool = False) -> None:
        self.session = session
        #: True when the kernel did not know its notebook's path and the session is keyed on
        #: the working directory instead (``notebook_path`` is then that folder).
        self.keyed_on_folder = keyed_on_folder
        self.notice: str | None = None
        self._registry: Registry | None = None
        self._runner: Runner | None = None
        self._pending_cells: dict[str, str] | None = None

    @classmethod
    def attach(cls) -> Notebook:
        """Find or create this kernel's session and point Airflow at it (before it is imported).

        The session home comes from ``KYTE_HOME`` (set by the server's kernel manager), else
        from the notebook path (``JPY_SESSION_NAME``), else from the working directory.
        """
        home = os.environ.get(HOME_ENV)
        store = SessionStore()
        keyed_on_folder = False
        if home and os.path.isfile(os.path.join(home, "kyte-session.json")):
            session = store.load(Path(home))
        else:
            # nbclient and nbconvert start the kernel in the notebook's folder but do not
            # tell it the notebook's file: the session is then the folder's.
            notebook = os.environ.get("JPY_SESSION_NAME")
            keyed_on_folder = not notebook
            session = store.for_notebook(notebook or os.getcwd())
        current = os.environ.get("AIRFLOW_HOME")
        if "airflow" in sys.modules and current != str(session.home):
            raise UsageError(
                "Airflow was imported in this kernel before Kyte was loaded, so it uses another "
                f"Airflow home ({current or '~/airflow'}). Restart the kernel and run "
                "`%load_ext kyte_jupyter` before anything imports airflow."
            )
        os.environ.update(session.env())
        return cls(session, keyed_on_folder=keyed_on_folder)

    def take_notice(self) -> str | None:
        """What happened while the kernel was away, once (then ``None``)."""
        notice, self.notice = self.notice, None
        return notice

    # ---- Airflow, registry, runner ------------------------------------------------------
    def ensure_airflow(self) -> None:
        """Import Airflow for this session, and import its preload files the first time."""
        import_airflow()
        preload = self.session.extra.get("preload")
        if preload and not self.session.extra.get("preloaded"):
            from . import bridge

            n_conn, n_var = bridge.preload(
                str(self.session.home), preload.get("connections", []),
                preload.get("variables", []),
            )
            self.session.mark_preloaded()
            self.session.audit("session.preload", connections=n_conn, variables=n_var)

    @property
    def registry(self) -> Registry:
        """The DAGs this notebook's ``%%dag`` cells define (Airflow imported on first use)."""
        if self._registry is None:
            self.ensure_airflow()
            from .registry import Registry

            self._registry = Registry(self.session, self.session.notebook_path)
            if self._pending_cells is not None:
                self._registry.notebook_cells = self._pending_cells
        return self._registry

    @property
    def runner(self) -> Runner:
        """Runs tasks and DAGs against the session's metastore."""
        if self._runner is None:
            self.ensure_airflow()
            from .runner import Runner

            self._runner = Runner(self.session)
            self._runner.dag_source = self.dag_file
        return self._runner

    def dag_file(self, dag: DAG) -> str:
        """The DAG file export writes for ``dag`` (what a parallel run's workers import)."""
        from .runner.parallel import dag_file_source

        reg = self.registry
        return dag_file_source(self.session, dag, reg.notebook_cells,
                               reg.ran_sources(dag.dag_id), ran=reg.ran_cells(dag.dag_id))

    def defined_dags(self) -> list[str]:
        """Ids of the DAGs defined in this kernel so far (without importing Airflow)."""
        return sorted(self._registry.dags) if self._registry is not None else []

    def dag(self, dag_id: str) -> DAG:
        """A DAG defined in this notebook, or a ``UsageError`` listing the defined ones."""
        try:
            return self.registry.get(dag_id)
        except KeyError as e:
            raise UsageError(str(e.args[0])) from None

    @staticmethod
    def task(dag: DAG, task_id: str) -> Any:
        """A task of ``dag``, or a ``UsageError`` listing its tasks."""
        if task_id not in dag.task_dict:
            raise UsageError(
                f"DAG {dag.dag_id!r} has no task {task_id!r}. Its tasks: "
                f"{', '.join(sorted(dag.task_dict))}."
            )
        return dag.task_dict[task_id]

    def define(self, key: str, options: DagCellOptions, body: str, ns: dict[str, Any],
               filename: str, label: str = "") -> DefineResult:
        """Run one ``%%dag`` cell (identified by ``key``) and register what it defines.

        ``body`` is the cell without its ``%%dag`` line; ``filename`` is what tracebacks show.
        A definition error becomes a ``UsageError``; errors of the user's code propagate.
        """
        __tracebackhide__ = True
        registry = self.registry
        self.refresh_path()
        from .registry import DagDefinitionError

        try:
            if options.dag_id is None:
                return registry.define_file_cell(key, "\n" + body, ns, filename, label)
            return registry.define_grown_cell(key, options, "\n" + body, ns, filename, label)
        except DagDefinitionError as e:
            self.session.audit("dag.define", outcome="error", code_hash=code_hash(body),
                               error=str(e))
            raise UsageError(f"%%dag: {e}") from None
        except BaseException as e:
            self.session.audit("dag.define", outcome="error", code_hash=code_hash(body),
                               error=f"{type(e).__name__}: {e}", dag_id=options.dag_id)
            raise

    # ---- reads --------------------------------------------------------------------------
    def _read(self) -> sqlite3.Connection:
        con: sqlite3.Connection = self.session.connect_readonly(timeout=5)  # or PostgreSQL
        return con

    def latest_run_id(self, dag_id: str) -> str:
        """The id of the DAG's current run in this notebook (its newest run that was not set
        aside, as ``bridge.runs.latest_run``), or a ``UsageError``."""
        from .bridge.runs import SET_ASIDE_NOTE

        con = self._read()
        try:
            row = con.execute(
                "SELECT r.run_id FROM dag_run r LEFT JOIN dag_run_note n ON n.dag_run_id = r.id "
                "WHERE r.dag_id=? AND (n.content IS NULL OR n.content NOT LIKE ?) "
                "ORDER BY r.id DESC LIMIT 1", (dag_id, SET_ASIDE_NOTE + "%"),
            ).fetchone()
        finally:
            con.close()
        if row is None:
            raise UsageError(f"DAG {dag_id!r} has no runs in this notebook yet.")
        return str(row[0])

    def recent_runs(self, limit: int = 5) -> list[tuple[str, str, str]]:
        """The latest runs of any DAG as (dag_id, run_id, state), newest first."""
        try:
            con = self._read()
            try:
                rows = con.execute(
                    "SELECT dag_id, run_id, state FROM dag_run ORDER BY id DESC LIMIT ?",
                    (limit,),
                )
                return [(str(d), str(r), str(s)) for d, r, s in rows]
            finally:
                con.close()
        except sqlite3.Error:
            return []

    def known_dag_ids(self) -> list[str]:
        """DAG ids to offer: defined in this kernel, or known to the session's metastore."""
        ids = set(self.defined_dags())
        try:
            con = self._read()
            try:
                ids.update(str(r[0]) for r in con.execute(
                    "SELECT dag_id FROM dag WHERE NOT is_stale UNION SELECT dag_id FROM dag_run"))
            finally:
                con.close()
        except sqlite3.Error:
            pass
        return sorted(ids)

    def known_task_ids(self, dag_id: str) -> list[str]:
        """Task ids of a DAG: from its definition here, else from the runs it has had."""
        if self._registry is not None and dag_id in self._registry.dags:
            return sorted(self._registry.dags[dag_id].task_dict)
        try:
            con = self._read()
            try:
                rows = con.execute(
                    "SELECT DISTINCT task_id FROM task_instance WHERE dag_id=?", (dag_id,))
                return sorted(str(r[0]) for r in rows)
            finally:
                con.close()
        except sqlite3.Error:
            return []

    def run_task_ids(self, dag_id: str, run_id: str) -> list[str]:
        """Task ids with task instances in a run (read from the metastore only)."""
        con = self._read()
        try:
            rows = con.execute(
                "SELECT DISTINCT task_id FROM task_instance WHERE dag_id=? AND run_id=? "
                "ORDER BY task_id", (dag_id, run_id),
            ).fetchall()
        finally:
            con.close()
        return [str(r[0]) for r in rows]

    def xcom(self, dag_id: str, task_id: str, key: str, map_index: int | None,
             run_id: str | None) -> Any:
        """The XCom a task pushed in a run (default: the DAG's latest run).

        Reads the metastore only: after a kernel restart the DAG's cells need not run again.
        When the DAG is defined in this kernel, an unknown task id is named at once and the
        DAG says which tasks are mapped; otherwise the run's task instances say so.
        """
        from .runner import RunError, is_mapped
        from .runner.results import read_xcom

        registry = self.registry
        mapped: bool | None = None
        if dag_id in registry.dags:
            mapped = is_mapped(self.task(registry.dags[dag_id], task_id))
        from . import bridge

        try:
            value = read_xcom(dag_id, task_id, mapped=mapped, key=key, map_index=map_index,
                              run_id=run_id)
        except RunError as e:
            if mapped is None:
                self._name_unknown(dag_id, task_id, run_id)
            raise UsageError(str(e)) from None
        # The value reaches the cell's output: secrets masked there as in the stored log.
        return bridge.redact_value(value)

    def _name_unknown(self, dag_id: str, task_id: str, run_id: str | None) -> None:
        """For a DAG not defined in this kernel: a ``UsageError`` if the DAG or task is unknown."""
        con = self._read()
        try:
            known = con.execute(
                "SELECT 1 FROM dag_run WHERE dag_id=? LIMIT 1", (dag_id,)
            ).fetchone()
        finally:
            con.close()
        if known is None:
            self.dag(dag_id)  # says which DAGs there are
            return
        run = run_id or self.latest_run_id(dag_id)
        tasks = self.run_task_ids(dag_id, run)
        if tasks and task_id not in tasks:
            raise UsageError(
                f"Run {run} of DAG {dag_id!r} has no task {task_id!r}. Its tasks: "
                f"{', '.join(tasks)}."
            )

    def stored_log(self, dag_id: str, task_id: str, try_number: int | None, map_index: int,
                   run_id: str | None) -> StoredLog:
        """A try's stored log (default: the latest try of the DAG's latest run)."""
        from .runner import log_path

        run_id = run_id or self.latest_run_id(dag_id)
        base = log_path(self.session, dag_id, run_id, task_id, map_index, 1).parent
        tries = sorted(
            int(p.stem.split("=", 1)[1]) for p in base.glob("attempt=*.log")
        ) if base.is_dir() else []
        if not tries:
            raise UsageError(
                f"No log for {dag_id}.{task_id} in run {run_id}. Run it with "
                f"`%run_task {dag_id} {task_id}`."
            )
        number = try_number or tries[-1]
        if number not in tries:
            raise UsageError(f"No try {number}; tries with logs: {tries}.")
        return StoredLog(dag_id, task_id, run_id, number, base / f"attempt={number}.log")

    def refresh_path(self) -> str:
        """The notebook's path as the session records it now (the server updates it when the
        notebook is renamed or moved, while this kernel keeps running)."""
        try:
            fresh = SessionStore(self.session.home.parent).load(self.session.home)
        except (OSError, ValueError, SessionError):
            return self.session.notebook_path
        if fresh.notebook_path and fresh.notebook_path != self.session.notebook_path:
            self.session.notebook_path = fresh.notebook_path
            if self._registry is not None:
                self._registry.notebook_path = fresh.notebook_path
        return self.session.notebook_path

    def info(self) -> SessionInfo:
        """The session's home, notebook, DAGs and latest runs."""
        self.refresh_path()
        s = self.session
        return SessionInfo(
            session_id=s.id, notebook_path=s.notebook_path, home=s.home,
            airflow_version=s.airflow_version, dags=self.defined_dags(),
            runs=self.recent_runs(),
            warnings=self._registry.warnings() if self._registry is not None else [],
            keyed_on_folder=s.notebook_path if self.keyed_on_folder else None,
        )

    def sync_cells(self, cells: dict[str, str], ns: dict[str, Any]) -> SyncResult:
        """Take the notebook's ``%%dag`` cells (id -> source) from the front end; drop what
        cells that left the notebook contributed (see :meth:`Registry.sync_cells`)."""
        from .registry import SyncResult

        if self._registry is None:  # nothing defined yet: no need to import Airflow
            self._pending_cells = dict(cells)
            return SyncResult()
        return self._registry.sync_cells(cells, ns)

    # ---- writes -------------------------------------------------------------------------
    def reset(self) -> int:
        """Delete every run, task state, XCom and log (DAG definitions stay); runs deleted."""
        self.ensure_airflow()
        from . import bridge

        with bridge.db_session() as db:
            n = bridge.delete_runs(db)
        shutil.rmtree(self.session.logs_folder, ignore_errors=True)
        self.session.logs_folder.mkdir(parents=True, exist_ok=True)
        self.session.audit("session.reset", runs_deleted=n)
        return n


def install(notebook: Notebook) -> None:
    """Make ``notebook`` this kernel's notebook."""
    _state["notebook"] = notebook


def uninstall() -> Notebook | None:
    """Forget this kernel's notebook; returns it."""
    nb: Notebook | None = _state.pop("notebook", None)
    return nb


def current() -> Notebook:
    """This kernel's notebook, or a ``RuntimeError`` if Kyte is not loaded."""
    nb: Notebook | None = _state.get("notebook")
    if nb is None:
        raise RuntimeError("Kyte is not loaded in this kernel: run `%load_ext kyte_jupyter`.")
    return nb


def loaded() -> bool:
    """Whether Kyte is loaded in this kernel."""
    return "notebook" in _state


def current_registry() -> Registry:
    """The DAG registry of this kernel's notebook (``registry.dags`` maps ids to DAGs)."""
    return current().registry


def current_session() -> Session:
    """This kernel's Kyte session (its Airflow home)."""
    return current().session
