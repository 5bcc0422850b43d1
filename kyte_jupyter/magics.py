"""The IPython magics: ``%%dag``, ``%run_task``, ``%run_dag``, ``%xcom``, ``%task_log``, ``%kyte``.

Thin by design: parse arguments, call the registry or the runner, display the result.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import sqlite3
import sys
import time
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import HTML, display

from . import cellspec
from .cellspec import DagCellOptions
from .session import HOME_ENV, Session, SessionError, SessionStore, code_hash
from .whatif.options import whatif_args

_state: dict[str, Any] = {}


def attach(ipython: Any) -> Session:
    """Find or create this kernel's session and point Airflow at it (before it is imported)."""
    home = os.environ.get(HOME_ENV)
    store = SessionStore()
    if home and os.path.isfile(os.path.join(home, "kyte-session.json")):
        session = store.load(__import__("pathlib").Path(home))
    else:
        notebook = os.environ.get("JPY_SESSION_NAME") or os.getcwd()
        session = store.for_notebook(notebook)
    current = os.environ.get("AIRFLOW_HOME")
    if "airflow" in sys.modules and current != str(session.home):
        raise UsageError(
            "Airflow was imported in this kernel before Kyte was loaded, so it uses another "
            f"Airflow home ({current or '~/airflow'}). Restart the kernel and run "
            "`%load_ext kyte_jupyter` before anything imports airflow."
        )
    os.environ.update(session.env())
    return session


def recover_interrupted(session: Session) -> list[str]:
    """Mark tries left running by a kernel that died as failed; keep everything else.

    Plain sqlite3 on purpose: it runs at kernel start, before Airflow is imported.
    """
    if not session.db_path.exists():
        return []
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    con = sqlite3.connect(session.db_path, timeout=10)
    try:
        rows = con.execute(
            "SELECT dag_id, run_id, task_id, map_index FROM task_instance "
            "WHERE state IN ('running', 'queued', 'scheduled', 'restarting')"
        ).fetchall()
        if not rows:
            return []
        con.execute(
            "UPDATE task_instance SET state='failed', end_date=? "
            "WHERE state IN ('running', 'queued', 'scheduled', 'restarting')", (now,)
        )
        runs = {(d, r) for d, r, _, _ in rows}
        for dag_id, run_id in runs:
            con.execute(
                "UPDATE dag_run SET state='failed', end_date=? WHERE dag_id=? AND run_id=?",
                (now, dag_id, run_id),
            )
        con.commit()
    except sqlite3.Error:
        return []  # an unmigrated or foreign database: leave it to Airflow to complain
    finally:
        con.close()
    interrupted = [f"{d}.{t}" + (f"[{m}]" if m >= 0 else "") for d, _, t, m in rows]
    for dag_id, run_id in runs:
        session.audit("run.interrupted", dag_id=dag_id, run_id=run_id, outcome="failed")
    return interrupted


def current_registry() -> Any:
    """The DAG registry of this kernel's notebook (``registry.dags`` maps ids to DAGs)."""
    magics = _state.get("magics")
    if magics is None:
        raise RuntimeError("Kyte is not loaded in this kernel: run `%load_ext kyte_jupyter`.")
    return magics.registry


def current_session() -> Session:
    """This kernel's Kyte session (its Airflow home)."""
    magics = _state.get("magics")
    if magics is None:
        raise RuntimeError("Kyte is not loaded in this kernel: run `%load_ext kyte_jupyter`.")
    return magics.session  # type: ignore[no-any-return]


def load(ipython: Any) -> None:
    """Register the magics and attach the kernel to its session."""
    if "magics" in _state:
        return
    session = attach(ipython)
    interrupted = recover_interrupted(session)
    magics = KyteMagics(ipython, session)
    if interrupted:
        magics.notice = (
            f"Kyte: the kernel stopped while {', '.join(interrupted)} ran; marked failed. "
            "If a task crashes its process, run it with --isolated."
        )
    ipython.register_magics(magics)
    ipython.events.register("pre_run_cell", magics._pre_run_cell)
    _state["magics"] = magics


def unload(ipython: Any) -> None:
    """Forget the magics' state (the session home stays)."""
    magics = _state.pop("magics", None)
    if magics is not None:
        ipython.events.unregister("pre_run_cell", magics._pre_run_cell)


@magics_class
class KyteMagics(Magics):
    """Define, run and inspect Airflow DAGs in this notebook's private Airflow."""

    def __init__(self, shell: Any, session: Session) -> None:
        super().__init__(shell)
        self.session = session
        self._cell_id: str | None = None
        self._raw_cell: str = ""
        self._registry: Any = None
        self._runner: Any = None
        self.notice: str | None = None

    def _announce(self) -> None:
        """Say once, in the first Kyte cell, what happened while the kernel was away."""
        if self.notice:
            print(self.notice, file=sys.stderr)
            self.notice = None

    # ---- plumbing -------------------------------------------------------------------------
    def _pre_run_cell(self, info: Any) -> None:
        self._cell_id = getattr(info, "cell_id", None)
        self._raw_cell = getattr(info, "raw_cell", "") or ""

    @property
    def _shell(self) -> Any:
        assert self.shell is not None, "magics are always bound to a shell"
        return self.shell

    def _airflow(self) -> None:
        """Import Airflow for this session, and import its preload files the first time."""
        import_airflow()
        preload = self.session.extra.get("preload")
        if preload and not self.session.extra.get("preloaded"):
            from . import _airflow

            n_conn, n_var = _airflow.preload(
                str(self.session.home), preload.get("connections", []),
                preload.get("variables", []),
            )
            self.session.mark_preloaded()
            self.session.audit("session.preload", connections=n_conn, variables=n_var)

    @property
    def registry(self) -> Any:
        if self._registry is None:
            self._airflow()
            from .registry import Registry

            self._registry = Registry(self.session, self.session.notebook_path)
        return self._registry

    @property
    def runner(self) -> Any:
        if self._runner is None:
            self._airflow()
            from .runner import Runner

            self._runner = Runner(self.session)
        return self._runner

    def _dag(self, dag_id: str) -> Any:
        try:
            return self.registry.get(dag_id)
        except KeyError as e:
            raise UsageError(str(e.args[0])) from None

    def _task(self, dag: Any, task_id: str) -> Any:
        if task_id not in dag.task_dict:
            raise UsageError(
                f"DAG {dag.dag_id!r} has no task {task_id!r}. Its tasks: "
                f"{', '.join(sorted(dag.task_dict))}."
            )
        return dag.task_dict[task_id]

    def _filename(self, body: str) -> str:
        """Register the cell for tracebacks so errors point at the cell's own lines."""
        # The body starts on the cell's second line (the first is `%%dag ...`).
        source = "\n" + body
        number = self._shell.execution_count
        return str(self._shell.compile.cache(source, number))

    # ---- %%dag ----------------------------------------------------------------------------
    @cell_magic
    def dag(self, line: str, cell: str) -> None:
        """Define DAGs in this cell.

        ``%%dag`` alone: the cell is an ordinary DAG file (``with DAG(...)``, ``@dag``
        functions called, operators, ``@task`` functions); every DAG it creates is registered.
        Paste any existing DAG file here.

        ``%%dag DAG_ID [options]``: the cell body runs inside ``with DAG(DAG_ID):``. Several
        cells may name the same DAG id; the DAG is the union of its cells, in the order they
        were first run. Re-running a cell replaces what that cell contributed before.

        The cell runs in the notebook's namespace: it can use names defined earlier, and the
        names it defines stay visible. The cell shows the DAG's graph. On any error the cell
        fails and the DAG keeps its last valid definition.

        Examples
        --------
        A whole DAG file in one cell::

            %%dag
            from airflow.sdk import DAG, task
            with DAG("hello", schedule=None):
                @task
                def say(): print("hi")
                say()

        A DAG grown cell by cell::

            %%dag etl --schedule @daily --start-date 2026-01-01 --tags demo
            @task
            def extract(): return [1, 2, 3]
            rows = extract()

            %%dag etl
            @task
            def load(rows): print(len(rows))
            load(rows)
        """
        __tracebackhide__ = True
        self._announce()
        opts = cellspec.parse_dag_line(line)
        if not cell.strip():
            raise UsageError("%%dag: the cell is empty. Write DAG code below the %%dag line.")
        key = self._cell_id or "src:" + hashlib.sha256(self._raw_cell.encode()).hexdigest()
        registry = self.registry
        filename = self._filename(cell)
        from .registry import DagDefinitionError

        try:
            if opts.dag_id is None:
                result = registry.define_file_cell(key, "\n" + cell, self._shell.user_ns, filename)
            else:
                result = registry.define_grown_cell(
                    key, opts, "\n" + cell, self._shell.user_ns, filename
                )
        except DagDefinitionError as e:
            self.session.audit("dag.define", outcome="error", code_hash=code_hash(cell),
                               error=str(e))
            raise UsageError(f"%%dag: {e}") from None
        except BaseException as e:
            self.session.audit("dag.define", outcome="error", code_hash=code_hash(cell),
                               error=f"{type(e).__name__}: {e}", dag_id=opts.dag_id)
            raise
        from .display import DagGraph
        from .registry import graph_of

        for name in result.removed:
            print(f"DAG {name!r} is no longer defined by this cell and was removed.")
        for dag in result.dags:
            display(DagGraph(graph_of(dag), notes=result.warnings))

    # ---- running --------------------------------------------------------------------------
    @magic_arguments.magic_arguments()
    @magic_arguments.argument("dag_id", help="The DAG the task belongs to.")
    @magic_arguments.argument("task_id", help="The task to run.")
    @magic_arguments.argument("--upstream", action="store_true",
                              help="Also run everything upstream of the task, in order.")
    @magic_arguments.argument("--downstream", action="store_true",
                              help="Also run everything downstream of the task, in order.")
    @magic_arguments.argument("--map-index", type=int, default=None,
                              help="Run only this instance of a mapped task.")
    @magic_arguments.argument("--logical-date", default=None,
                              help="Run in the notebook's run of this logical date "
                                   "(YYYY-MM-DD[THH:MM]), created if there is none.")
    @magic_arguments.argument("--conf", default=None,
                              help="JSON conf: the task runs in a new run with this conf.")
    @magic_arguments.argument("--quiet", "-q", action="store_true",
                              help="Do not stream the task's log into the cell.")
    @magic_arguments.argument("--isolated", action="store_true",
                              help="Run in a separate (forked) process: a task that crashes "
                                   "its process fails instead of killing the kernel; "
                                   "%%debug is not available then.")
    @whatif_args
    @line_magic
    def run_task(self, line: str) -> Any:
        """Run one task through Airflow's task runner in this notebook's Airflow.

        The task runs in the notebook's current run of the DAG (created on first use), so it
        pulls XComs of upstream tasks already run there; templates are rendered, and
        connections and variables come from this session. Its log streams into the cell and
        is kept per try. A failed task fails the cell with the task's own traceback; use
        ``%debug`` to inspect it. Returns a run summary (``.state``, ``.task_states``).

        Examples
        --------
        ::

            %run_task etl extract
            %run_task etl load --upstream
            %run_task etl transform --downstream
            %run_task etl square --map-index 2
            %run_task etl flaky_c_extension --isolated
            r = %run_task etl extract -q
            r.task_states

        What-if: force outcomes of tasks in the part that runs (see ``%run_dag?``)::

            %run_task etl extract --downstream --fail load
            %run_task etl extract --downstream --xcom extract='[]' --succeed notify
        """
        __tracebackhide__ = True
        self._announce()
        args = _parse(self.run_task, line, "%run_task DAG_ID TASK_ID")
        dag = self._dag(args.dag_id)
        task = self._task(dag, args.task_id)
        if args.map_index is not None and not getattr(task, "is_mapped", False):
            raise UsageError(f"Task {args.task_id!r} is not mapped, so --map-index does not apply.")
        logical = _parse_when(args.logical_date)
        conf = cellspec.parse_json_object(args.conf, "--conf") if args.conf else None
        from .runner import RunError

        whatif = _whatif(dag, args)
        try:
            summary = self.runner.run_tasks(
                dag, args.task_id, upstream=args.upstream, downstream=args.downstream,
                map_index=args.map_index, logical_date=logical, conf=conf,
                echo_logs=not args.quiet, isolated=args.isolated, whatif=whatif,
            )
        except RunError as e:
            raise UsageError(str(e)) from None
        self._shell.user_ns["_kyte_last_run"] = summary
        failed = [k for k in summary.failed if k in summary.errors]
        if failed:
            display(summary)
            error = summary.errors[failed[0]]
            self._remember_error(error)
            raise error
        if summary.failed:
            display(summary)
            raise UsageError(
                f"{', '.join(summary.failed)} did not succeed in run {summary.run_id}."
            )
        return summary

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("dag_id", help="The DAG to run.")
    @magic_arguments.argument("--conf", default=None, help="JSON conf for the run.")
    @magic_arguments.argument("--logical-date", default=None,
                              help="Logical date of the run (YYYY-MM-DD[THH:MM]); like "
                                   "dag.test(), it replaces an earlier run of that date.")
    @magic_arguments.argument("--logs", action="store_true",
                              help="Stream every task's log into the cell.")
    @magic_arguments.argument("--isolated", action="store_true",
                              help="Run each task in a separate (forked) process, so a task "
                                   "that crashes its process cannot kill the kernel.")
    @whatif_args
    @line_magic
    def run_dag(self, line: str) -> Any:
        """Run a whole DAG in a new run, without a scheduler, as ``dag.test()`` does.

        Trigger rules, branching, skips, mapped tasks, task groups, retries and
        setup/teardown behave as in Airflow. A live progress line shows while it runs, and a
        per-task summary at the end. Returns the run summary; failed tasks' errors are
        available to ``%debug`` (the first one) and in ``r.errors``.

        Examples
        --------
        ::

            %run_dag etl
            r = %run_dag etl --conf '{"day": "2026-01-01"}'
            r.task_states

        What-if runs force task outcomes; everything else runs for real, and Airflow's
        trigger rules, retries, callbacks and setup/teardown decide the rest, exactly as
        ``dag.test()`` would on a DAG whose forced tasks raised the matching exception.
        Forced task instances are marked in the summary (``r.forced``), their log and the
        audit trail::

            %run_dag etl --fail load                   # AirflowFailException, no retries
            %run_dag etl --fail-once extract           # first try fails, the retry runs
            %run_dag etl --skip validate,report        # AirflowSkipException
            %run_dag etl --succeed extract             # marked success, not run
            %run_dag etl --timeout load                # AirflowTaskTimeout on every try
            %run_dag etl --branch choose=notify        # branch follows notify
            %run_dag etl --xcom extract='[1, 2]'       # returns [1, 2] without running
            %run_dag etl --fail 'square[1]'            # one mapped instance
            %run_dag etl --skip section_1              # every task of a task group
        """
        __tracebackhide__ = True
        self._announce()
        args = _parse(self.run_dag, line, "%run_dag DAG_ID")
        dag = self._dag(args.dag_id)
        whatif = _whatif(dag, args)
        logical = _parse_when(args.logical_date)
        conf = cellspec.parse_json_object(args.conf, "--conf") if args.conf else None
        handle = display(HTML(_progress_html(dag.dag_id, {})), display_id=True)
        last = [0.0]

        def progress(states: dict[str, str]) -> None:
            now = time.monotonic()
            if handle is not None and now - last[0] > 0.25:
                last[0] = now
                handle.update(HTML(_progress_html(dag.dag_id, states)))

        summary = self.runner.run_dag(dag, logical_date=logical, conf=conf,
                                      echo_logs=args.logs, progress=progress,
                                      isolated=args.isolated, whatif=whatif)
        if handle is not None:
            handle.update(HTML(_progress_html(dag.dag_id, summary.task_states, done=True)))
        for key, error in summary.errors.items():
            print(f"{key} failed: {type(error).__name__}: {error}", file=sys.stderr)
        if summary.errors:
            self._remember_error(next(iter(summary.errors.values())))
            print("Run %debug to inspect the first failure, %task_log "
                  f"{dag.dag_id} TASK for a log.", file=sys.stderr)
        self._shell.user_ns["_kyte_last_run"] = summary
        return summary

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("name", help="The scenario's name (quote it if it has spaces).")
    @magic_arguments.argument("dag_id", help="The DAG the scenario runs.")
    @magic_arguments.argument("--logs", action="store_true",
                              help="Stream every task's log into the cell.")
    @cell_magic
    def scenario(self, line: str, cell: str) -> Any:
        """Run a DAG with forced outcomes and check the states it ends with.

        The body is YAML: the forced outcomes of ``%run_dag`` (``fail``, ``fail_once``,
        ``skip``, ``succeed``, ``timeout``: lists of task ids, ``task[i]`` or task-group ids;
        ``branch: {branch_task: [targets]}``; ``xcom: {task: value}``), then ``expect:``
        (task or ``task[i]`` -> state; a mapped task as a whole means all its instances)
        and optionally ``run:`` (the DagRun's state). The cell shows a pass/fail table and
        fails when an expectation does not hold. Returns the result: ``r.passed``,
        ``r.mismatches`` (``(task, expected, actual)``), ``r.summary`` (the run); after a
        failed cell it is in ``_kyte_last_scenario``. ``jupyter kyte export --tests`` turns
        every scenario into a pytest test next to the exported DAG file.

        Examples
        --------
        ::

            %%scenario "load fails" etl
            fail: [load]
            expect:
              load: failed
              notify: upstream_failed
              cleanup: success
            run: failed

            %%scenario "quiet day" etl
            branch: {choose: [skip_report]}
            xcom: {extract: []}
            expect: {report: skipped, skip_report: success}
        """
        __tracebackhide__ = True
        self._announce()
        args = _parse(self.scenario, line, "%%scenario NAME DAG_ID")
        dag = self._dag(args.dag_id)
        from .whatif import WhatIfError, parse_scenario
        from .whatif.scenario import ScenarioResult

        try:
            scenario = parse_scenario(args.name, dag, cell)
        except WhatIfError as e:
            raise UsageError(str(e)) from None
        _no_deadline_yet(scenario.whatif)
        if scenario.whatif:
            print(f"Scenario {scenario.name!r}: {scenario.whatif.describe()}")
        summary = self.runner.run_dag(dag, echo_logs=args.logs, whatif=scenario.whatif)
        result = ScenarioResult.of(scenario, summary)
        self._shell.user_ns["_kyte_last_run"] = summary
        self._shell.user_ns["_kyte_last_scenario"] = result
        self.session.audit(
            "scenario.run", dag_id=dag.dag_id, run_id=summary.run_id, scenario=scenario.name,
            forced=scenario.whatif.to_json(), mismatches=result.mismatches,
            outcome="passed" if result.passed else "failed",
        )
        if not result.passed:
            display(result)
            raise UsageError(f"Scenario {scenario.name!r} failed: {result.message()}")
        return result

    def _remember_error(self, error: BaseException) -> None:
        """Make ``%debug`` open on the task's own frames."""
        sys.last_type, sys.last_value = type(error), error
        sys.last_traceback = error.__traceback__

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("dag_id", help="The DAG the task belongs to.")
    @magic_arguments.argument("task_id", help="The task that pushed the XCom.")
    @magic_arguments.argument("--key", default="return_value", help="XCom key.")
    @magic_arguments.argument("--map-index", type=int, default=None,
                              help="Instance of a mapped task (default: all, as a list).")
    @magic_arguments.argument("--run-id", default=None, help="Run to read (default: latest).")
    @line_magic
    def xcom(self, line: str) -> Any:
        """Return the XCom a task pushed in the notebook's latest run of its DAG.

        Examples
        --------
        ::

            rows = %xcom etl extract
            %xcom etl extract --key row_count
            %xcom etl square --map-index 0
        """
        __tracebackhide__ = True
        args = _parse(self.xcom, line, "%xcom DAG_ID TASK_ID")
        dag = self._dag(args.dag_id)
        self._task(dag, args.task_id)
        from . import _airflow

        with _airflow.db_session() as db:
            dr = (_airflow.get_run(dag.dag_id, args.run_id, db) if args.run_id
                  else _airflow.latest_run(dag.dag_id, db))
            if dr is None:
                raise UsageError(
                    f"DAG {dag.dag_id!r} has not run yet in this notebook. Run "
                    f"`%run_task {dag.dag_id} {args.task_id}` first."
                )
            found, value = _airflow.xcom_value(
                dag.dag_id, dr.run_id, args.task_id, args.key, args.map_index, db
            )
        if not found:
            raise UsageError(
                f"Task {args.task_id!r} has no XCom {args.key!r} in run {dr.run_id}. Has it "
                f"run? Try `%run_task {dag.dag_id} {args.task_id}`."
            )
        return value

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("dag_id", help="The DAG the task belongs to.")
    @magic_arguments.argument("task_id", help="The task whose log to show.")
    @magic_arguments.argument("--try", dest="try_number", type=int, default=None,
                              help="Which try (default: the latest).")
    @magic_arguments.argument("--map-index", type=int, default=-1,
                              help="Instance of a mapped task.")
    @magic_arguments.argument("--run-id", default=None, help="Run to read (default: latest).")
    @line_magic
    def task_log(self, line: str) -> None:
        """Show a stored task log.

        Examples
        --------
        ::

            %task_log etl extract
            %task_log etl extract --try 1
        """
        __tracebackhide__ = True
        args = _parse(self.task_log, line, "%task_log DAG_ID TASK_ID")
        from .runner import log_path

        run_id = args.run_id or self._latest_run_id(args.dag_id)
        base = log_path(self.session, args.dag_id, run_id, args.task_id, args.map_index, 1).parent
        tries = sorted(
            int(p.stem.split("=", 1)[1]) for p in base.glob("attempt=*.log")
        ) if base.is_dir() else []
        if not tries:
            raise UsageError(
                f"No log for {args.dag_id}.{args.task_id} in run {run_id}. Run it with "
                f"`%run_task {args.dag_id} {args.task_id}`."
            )
        number = args.try_number or tries[-1]
        if number not in tries:
            raise UsageError(f"No try {number}; tries with logs: {tries}.")
        path = base / f"attempt={number}.log"
        print(f"--- {args.dag_id}.{args.task_id} run {run_id} try {number} ({path}) ---")
        print(path.read_text(encoding="utf-8", errors="replace"), end="")

    def _latest_run_id(self, dag_id: str) -> str:
        con = sqlite3.connect(f"file:{self.session.db_path}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute(
                "SELECT run_id FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()
        finally:
            con.close()
        if row is None:
            raise UsageError(f"DAG {dag_id!r} has no runs in this notebook yet.")
        return str(row[0])

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("action", nargs="?", default="info", choices=["info", "reset"],
                              help="info (default) or reset.")
    @magic_arguments.argument("--yes", action="store_true", help="Confirm a reset.")
    @line_magic
    def kyte(self, line: str) -> None:
        """Show this notebook's Airflow session, or wipe its runs with ``reset --yes``.

        Examples
        --------
        ::

            %kyte
            %kyte reset --yes
        """
        __tracebackhide__ = True
        self._announce()
        args = _parse(self.kyte, line, "%kyte [info|reset] [--yes]")
        if args.action == "reset":
            if not args.yes:
                raise UsageError(
                    "%kyte reset deletes every run, task state, XCom and log of this notebook "
                    "(DAG definitions stay). Run `%kyte reset --yes` to confirm."
                )
            from . import _airflow

            with _airflow.db_session() as db:
                n = _airflow.delete_runs(db)
            import shutil

            shutil.rmtree(self.session.logs_folder, ignore_errors=True)
            self.session.logs_folder.mkdir(parents=True, exist_ok=True)
            self.session.audit("session.reset", runs_deleted=n)
            print(f"Reset: {n} runs deleted, logs cleared. DAG definitions are kept.")
            return
        s = self.session
        dags = sorted(self._registry.dags) if self._registry else []
        lines = [
            f"Kyte session {s.id}",
            f"  notebook : {s.notebook_path}",
            f"  home     : {s.home}",
            f"  airflow  : {s.airflow_version}",
            f"  DAGs     : {', '.join(dags) if dags else 'none defined in this kernel yet'}",
        ]
        for dag_id, run_id, state in _recent_runs(s):
            lines.append(f"  run      : {dag_id} {run_id} {state}")
        print("\n".join(lines))


def _recent_runs(session: Session, limit: int = 5) -> list[tuple[str, str, str]]:
    try:
        con = sqlite3.connect(f"file:{session.db_path}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute(
                "SELECT dag_id, run_id, state FROM dag_run ORDER BY id DESC LIMIT ?", (limit,)
            )
            return [(str(d), str(r), str(s)) for d, r, s in rows]
        finally:
            con.close()
    except sqlite3.Error:
        return []


# `%%dag?` shows the options too: they are declared once, in cellspec, for magic and export.
KyteMagics.dag.__doc__ = (KyteMagics.dag.__doc__ or "") + "\n" + "\n".join(
    "    " + line for line in cellspec.dag_arguments.__doc__.splitlines()
)


def _parse(func: Any, line: str, usage: str) -> Any:
    __tracebackhide__ = True
    try:
        args = magic_arguments.parse_argstring(func, cellspec.strip_comment(line))
    except UsageError as e:
        raise UsageError(f"{e}\nUsage: {usage} (see {usage.split()[0]}? for help)") from None
    except ValueError as e:  # unbalanced quotes
        raise UsageError(f"Cannot read the arguments ({e}); check your quotes.") from None
    for name, value in vars(args).items():
        if isinstance(value, str):
            setattr(args, name, cellspec.unquote(value))
    return args


def _whatif(dag: Any, args: Any) -> Any:
    """The run's forced outcomes from the what-if options (bad ones: a UsageError)."""
    from .whatif import WhatIfError
    from .whatif.options import from_args

    try:
        whatif = from_args(dag, args)
    except WhatIfError as e:
        raise UsageError(str(e)) from None
    _no_deadline_yet(whatif)
    if whatif:
        print(f"What-if run of {dag.dag_id}: {whatif.describe()}")
    return whatif


def _no_deadline_yet(whatif: Any) -> None:
    # TODO(issue 15): run the DAG's DeadlineAlert callback as the scheduler/triggerer would.
    if whatif.miss_deadline:
        raise UsageError("--miss-deadline is not available in this version of Kyte yet; "
                         "run the DAG without it.")


def _parse_when(text: str | None) -> _dt.datetime | None:
    text = cellspec.unquote(text)
    if not text:
        return None
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--logical-date {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM."
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)


def _progress_html(dag_id: str, states: dict[str, str], done: bool = False) -> str:
    from html import escape

    from .runner import STATE_COLOURS

    counts: dict[str, int] = {}
    for s in states.values():
        counts[s] = counts.get(s, 0) + 1
    total = len(states) or 1
    bar = "".join(
        f"<div title='{escape(s)}: {n}' style='flex:{n};background:"
        f"{STATE_COLOURS.get(s, '#ccc')}'></div>"
        for s, n in sorted(counts.items())
    )
    label = ", ".join(f"{n} {escape(s)}" for s, n in sorted(counts.items())) or "starting…"
    verb = "finished" if done else "running"
    return (
        f"<div class='kyte-progress'><b>{escape(dag_id)}</b> {verb}: {label}"
        f"<div style='display:flex;height:6px;width:100%;max-width:480px;"
        f"background:#eee;margin-top:3px' data-total='{total}'>{bar}</div></div>"
    )


def import_airflow() -> None:
    """Import Airflow (once) with the session's home, quieting the server-side chatter."""
    if "kyte_airflow_ready" in _state:
        return
    import warnings

    # The in-process execution API imports starlette's test client; its deprecation notice
    # is about Airflow's dependencies, not the user's code.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    import airflow  # noqa: F401  (reads AIRFLOW_HOME now)

    from . import _airflow

    _airflow.quiet_server_logs()
    _airflow.tune_sqlite()
    _airflow.cache_task_runner_schemas()
    _state["kyte_airflow_ready"] = True


__all__ = [
    "DagCellOptions", "KyteMagics", "SessionError", "current_registry", "current_session",
    "load", "unload",
]
