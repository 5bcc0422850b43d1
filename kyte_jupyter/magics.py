"""The IPython magics: ``%%dag``, ``%run_task``, ``%run_dag``, ``%xcom``, ``%task_log``, ``%kyte``.

Thin by design: parse arguments, call the registry or the runner, display the result.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Integer, Unicode

from . import cellspec, cellsync, completion
from . import notebook as _notebook
from .cellspec import DagCellOptions
from .checks import CheckMagics, show_findings
from .history import HistoryMagics
from .magicargs import parallel_args as _parallel_args
from .magicargs import parse as _parse
from .magicargs import parse_conf as _parse_conf
from .magicargs import parse_when as _parse_when
from .notebook import Notebook, current_registry, current_session, import_airflow
from .session import Session, SessionError
from .session.guard import Guard
from .session.lease import PARALLEL_ACTION
from .whatif.options import whatif_args

_state: dict[str, Any] = {}


def _show_syntax_error(shell: Any, etype: type, value: BaseException, tb: Any,
                       tb_offset: int | None = None) -> None:
    """Show a syntax error in a ``%%dag`` cell as IPython shows one in any cell: the cell's
    line and a caret, without the frames of Kyte's code that compiled it."""
    shell.showsyntaxerror(running_compiled_code=not getattr(value, "kyte_cell", False))


def load(ipython: Any) -> None:
    """Register the magics and attach the kernel to its session."""
    if _notebook.loaded():
        return
    nb = Notebook.attach()
    guard = Guard.start(nb.session)  # lease, metastore check, recovery of dead kernels' runs
    nb.notice = guard.notice
    magics = KyteMagics(ipython, nb, guard)
    classes = (KyteMagics, HistoryMagics, CheckMagics)
    ipython.register_magics(magics)
    ipython.register_magics(HistoryMagics(ipython, nb))
    ipython.register_magics(CheckMagics(ipython, nb))
    ipython.events.register("pre_run_cell", magics._pre_run_cell)
    _notebook.install(nb)
    completion.register(ipython, nb, {name: getattr(cls, name).parser
                                      for cls in classes for name in completion.POSITIONALS
                                      if hasattr(cls, name)})
    if not ipython.custom_exceptions:  # never take the hook from someone else
        ipython.set_custom_exc((SyntaxError,), _show_syntax_error)
    cellsync.register(ipython, nb)
    _state["magics"] = magics


def unload(ipython: Any) -> None:
    """Forget the magics' state (the session home stays)."""
    _notebook.uninstall()
    cellsync.unregister(ipython)
    completion.unregister(ipython)
    if ipython.custom_exceptions == (SyntaxError,):
        ipython.set_custom_exc((), None)
    magics = _state.pop("magics", None)
    if magics is not None:
        ipython.events.unregister("pre_run_cell", magics._pre_run_cell)
        magics.guard.close()


#: The most task instances a run may hand to an executor at once (LocalExecutor starts one
#: worker process per slot, each a forked Airflow of ~250 MB resident).
MAX_PARALLELISM = 64


def _action(magic: str, parallel: Any) -> str:
    """What a kernel's lease says it is doing (read by other kernels, and by the recovery
    after this kernel died: the tries of a LocalExecutor run ran in workers that died with
    it; remote workers, Celery's, may still be running theirs)."""
    local = parallel is not None and parallel.executor in (None, "LocalExecutor")
    return f"{magic} {PARALLEL_ACTION}" if local else magic


@magics_class
class KyteMagics(Magics):
    """Define, run and inspect Airflow DAGs in this notebook's private Airflow."""

    default_parallelism = Integer(
        1, config=True,
        help="Task instances %run_dag/%run_task run at once when --parallelism is not given. "
             "1 runs them one at a time in the kernel (debuggable); more hands them to "
             "Airflow's LocalExecutor (or default_executor).")
    default_executor = Unicode(
        "", config=True,
        help="Executor of parallel runs when --executor is not given (empty: LocalExecutor). "
             "It must be configured in the session's Airflow ([core] executor).")

    def __init__(self, shell: Any, notebook: Notebook, guard: Guard) -> None:
        super().__init__(shell)
        self.notebook = notebook
        self.session: Session = notebook.session
        self.guard = guard
        guard.resync = self._resync
        self._cell_id: str | None = None
        self._raw_cell: str = ""

    @property
    def registry(self) -> Any:
        """The notebook's DAG registry."""
        return self.notebook.registry

    def _resync(self) -> None:
        """Register the notebook's DAGs again (a repaired metastore starts empty)."""
        registry = self.notebook._registry
        if registry is not None and registry.dags:
            from . import bridge

            bridge.sync_dags(list(registry.dags.values()))

    def _metastore_replaced(self) -> None:
        if "airflow" in sys.modules:
            from . import bridge

            bridge.current().metastore_replaced()

    def _announce(self) -> None:
        """Say once, in the first Kyte cell, what happened while the kernel was away."""
        notice = self.notebook.take_notice()
        if notice:
            print(notice, file=sys.stderr)

    def _pre_run_cell(self, info: Any) -> None:
        self._cell_id = getattr(info, "cell_id", None)
        self._raw_cell = getattr(info, "raw_cell", "") or ""
        # IPython counts this cell before the event: its own number is the one before.
        count = self._shell.execution_count
        self._cell_number = count - 1 if getattr(info, "store_history", False) else count

    @property
    def _shell(self) -> Any:
        assert self.shell is not None, "magics are always bound to a shell"
        return self.shell

    def _filename(self, body: str) -> str:
        """Register the cell for tracebacks so errors point at the cell's own lines."""
        # The body starts on the cell's second line (the first is `%%dag ...`).
        return str(self._shell.compile.cache("\n" + body, self._cell_count()))

    def _cell_count(self) -> int:
        """The running cell's own execution count (``In [N]``)."""
        return int(getattr(self, "_cell_number", self._shell.execution_count))

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
        label = f"cell [{self._cell_count()}]"
        self.notebook.registry  # noqa: B018 - imports Airflow first: not the cell's own time
        with self.guard.write():
            result = self.notebook.define(key, opts, cell, self._shell.user_ns,
                                          self._filename(cell), label)
        from .display import DagGraph
        from .registry import graph_of

        for name in result.removed:
            print(f"DAG {name!r} is no longer defined by this cell and was removed.")
        for dag in result.dags:
            notes = result.warnings + self.notebook.registry.warnings(dag.dag_id)
            display(DagGraph(graph_of(dag), notes=notes))
        show_findings(self.registry, [d.dag_id for d in result.dags], after_cell=True,
                      seconds=result.top_level_seconds)

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
    @_parallel_args
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
            %run_task etl extract --downstream --xcom 'extract=[]' --succeed notify
        """
        __tracebackhide__ = True
        self._announce()
        args = _parse(self.run_task, line, "%run_task DAG_ID TASK_ID")
        dag = self.notebook.dag(args.dag_id)
        self.notebook.task(dag, args.task_id)
        whatif = _whatif(dag, args)
        parallel = self._parallel(args, whatif)
        from .display import Progress
        from .runner import RunError

        # A serial run streams the tries' logs into the cell; a parallel one (whose workers
        # write them) shows the live progress line %run_dag shows.
        progress = Progress(dag.dag_id) if parallel else None
        try:
            with self.guard.run(dag.dag_id, _action("run_task", parallel)):
                summary = self.notebook.runner.run_tasks(
                    dag, args.task_id, upstream=args.upstream, downstream=args.downstream,
                    map_index=args.map_index, logical_date=_parse_when(args.logical_date),
                    conf=_parse_conf(args.conf), echo_logs=not args.quiet,
                    progress=progress.update if progress else None,
                    isolated=args.isolated, whatif=whatif, parallel=parallel,
                )
        except RunError as e:
            if progress:
                progress.withdraw()
            raise UsageError(str(e)) from None
        if progress:
            progress.finish(summary.task_states)
        self._shell.user_ns["_kyte_last_run"] = summary
        self._raise_failure(summary)
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
    @_parallel_args
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

        Parallel runs hand task instances to Airflow's own executor (pools,
        ``max_active_tasks`` and priority weights apply; the DAG must export cleanly)::

            %run_dag etl --parallelism 8               # LocalExecutor, 8 at once
            %run_dag etl --executor CeleryExecutor     # a configured executor
            %config KyteMagics.default_parallelism = 4

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
            %run_dag etl --xcom 'extract=[1, 2]'       # returns [1, 2] without running
            %run_dag etl --fail 'square[1]'            # one mapped instance
            %run_dag etl --skip section_1              # every task of a task group
        """
        __tracebackhide__ = True
        self._announce()
        args = _parse(self.run_dag, line, "%run_dag DAG_ID")
        dag = self.notebook.dag(args.dag_id)
        logical, conf = _parse_when(args.logical_date), _parse_conf(args.conf)
        whatif = _whatif(dag, args)
        from .display import Progress
        from .runner import RunError

        parallel = self._parallel(args, whatif)  # refused before anything says "starting"
        progress = Progress(dag.dag_id)
        try:
            with self.guard.run(dag.dag_id, _action("run_dag", parallel)):
                summary = self.notebook.runner.run_dag(
                    dag, logical_date=logical, conf=conf, echo_logs=args.logs,
                    progress=progress.update, isolated=args.isolated, whatif=whatif,
                    parallel=parallel)
        except RunError as e:
            progress.withdraw()
            raise UsageError(str(e)) from None
        progress.finish(summary.task_states)
        summary.publish()  # the JSON the front end reads, once per run
        self._report_errors(dag.dag_id, summary)
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
        dag = self.notebook.dag(args.dag_id)
        from .whatif import WhatIfError, parse_scenario
        from .whatif.scenario import ScenarioResult

        try:
            scenario = parse_scenario(args.name, dag, cell)
        except WhatIfError as e:
            raise UsageError(str(e)) from None
        if scenario.whatif:
            print(f"Scenario {scenario.name!r}: {scenario.whatif.describe()}")
        from .runner import RunError

        try:
            with self.guard.run(dag.dag_id, "scenario"):
                summary = self.notebook.runner.run_dag(dag, echo_logs=args.logs,
                                                       whatif=scenario.whatif)
        except RunError as e:
            raise UsageError(str(e)) from None
        summary.magic = "scenario"
        result = ScenarioResult.of(scenario, summary)
        self._shell.user_ns["_kyte_last_run"] = summary
        self._shell.user_ns["_kyte_last_scenario"] = result
        self.notebook.session.audit(
            "scenario.run", dag_id=dag.dag_id, run_id=summary.run_id, scenario=scenario.name,
            forced=scenario.whatif.to_json(), mismatches=result.mismatches,
            outcome="passed" if result.passed else "failed",
        )
        if not result.passed:
            display(result)
            raise UsageError(f"Scenario {scenario.name!r} failed: {result.message()}")
        return result

    def _parallel(self, args: Any, whatif: Any = None) -> Any:
        """The parallel-run options of a run magic (``None``: the serial in-kernel run).

        The ``default_parallelism``/``default_executor`` traits apply to plain runs: a run
        with what-if options, ``--isolated`` or ``--logs`` and no ``--parallelism`` or
        ``--executor`` of its own runs in the kernel, where those work.
        """
        defaults_only = args.parallelism is None and args.executor is None
        if defaults_only and (whatif or args.isolated or getattr(args, "logs", False)):
            return None
        parallelism = args.parallelism if args.parallelism is not None else \
            self.default_parallelism
        if args.executor is not None and not args.executor.strip():
            raise UsageError("--executor needs an executor name, e.g. --executor CeleryExecutor.")
        executor = args.executor or self.default_executor or None
        if parallelism < 1:
            raise UsageError("--parallelism must be 1 or more (1 runs tasks in the kernel).")
        if parallelism > MAX_PARALLELISM:
            raise UsageError(
                f"--parallelism {parallelism} is more than {MAX_PARALLELISM}: LocalExecutor starts "
                "one worker process (~250 MB) per slot. Use at most "
                f"{MAX_PARALLELISM}, or --executor with a Celery or Edge deployment for more."
            )
        if parallelism == 1 and executor is None:
            return None
        from .runner.parallel import ParallelOptions

        return ParallelOptions(parallelism=max(parallelism, 1), executor=executor)

    def _raise_failure(self, summary: Any) -> None:
        """Publish the summary JSON; fail the cell of a ``%run_task`` whose tasks did not all
        succeed."""
        __tracebackhide__ = True
        summary.publish()
        # A failure a what-if option forced has no code of the user's to debug: one line.
        failed = [k for k in summary.failed if k in summary.errors and k not in summary.forced]
        if failed:
            display(summary)
            from .runner.failure import for_cell

            raise for_cell(summary.errors[failed[0]], self._shell)
        if summary.failed:
            display(summary)
            named = [f"{k} (forced: {summary.forced[k]})" if k in summary.forced else k
                     for k in summary.failed]
            # Why an instance that raised nothing did not run (a what-if hint), if known.
            why = "".join(f"\n{k}: {summary.error_lines[k]}" for k in summary.failed
                          if k in summary.error_lines and k not in summary.errors)
            raise UsageError(
                f"{', '.join(named)} did not succeed in run {summary.run_id}.{why}")

    def _report_errors(self, dag_id: str, summary: Any) -> None:
        """Name each failed task of a ``%run_dag`` (and why a task did not run, when a
        what-if hint knows) and point at ``%debug``."""
        for key, line in summary.error_lines.items():
            print(f"{key} {summary.task_states.get(key, 'failed')}: {line}", file=sys.stderr)
        if summary.executor:
            if summary.errors:
                # The tries ran in executor workers: their exceptions stayed there.
                task_id = next(iter(summary.errors)).split("[", 1)[0]
                print(f"These tries ran in {summary.executor} workers, so %debug cannot open "
                      f"them. To debug one, run it in the kernel: %run_task {dag_id} {task_id}"
                      f" --parallelism 1, then %debug. %task_log {dag_id} {task_id} shows its "
                      "log.", file=sys.stderr)
        elif summary.errors:
            self._remember_error(next(iter(summary.errors.values())))
            print("Run %debug to inspect the first failure, %task_log "
                  f"{dag_id} TASK for a log.", file=sys.stderr)

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
        with self.guard.read():
            return self.notebook.xcom(args.dag_id, args.task_id, args.key, args.map_index,
                                      args.run_id)

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
        if args.try_number is not None and args.try_number < 1:
            raise UsageError(f"--try {args.try_number}: tries are numbered from 1.")
        log = self.notebook.stored_log(args.dag_id, args.task_id, args.try_number,
                                       args.map_index, args.run_id)
        print(f"--- {log.dag_id}.{log.task_id} run {log.run_id} try {log.try_number} "
              f"({log.path}) ---")
        print(log.text(), end="")

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("action", nargs="?", default="info",
                              choices=["info", "reset", "repair"],
                              help="info (default), reset or repair.")
    @magic_arguments.argument("--yes", action="store_true", help="Confirm a reset or repair.")
    @line_magic
    def kyte(self, line: str) -> None:
        """Show this notebook's Airflow session, wipe its runs, or repair its metastore.

        ``%kyte`` shows the session, its latest runs, whether its metastore is sound and
        which other kernels have this notebook open. ``%kyte reset --yes`` deletes every
        run, task state, XCom and log (DAG definitions stay). ``%kyte repair --yes`` keeps a
        damaged metastore aside (``airflow.db.damaged-<time>``), starts a fresh one and
        registers the notebook's DAGs again; logs and the audit trail stay.

        Examples
        --------
        ::

            %kyte
            %kyte reset --yes
            %kyte repair --yes
        """
        __tracebackhide__ = True
        self._announce()
        args = _parse(self.kyte, line, "%kyte [info|reset|repair] [--yes]")
        if args.action == "repair":
            print(self.guard.repair(args.yes, on_replaced=self._metastore_replaced))
            return
        if args.action == "reset":
            if not args.yes:
                raise UsageError(
                    "%kyte reset deletes every run, task state, XCom and log of this notebook "
                    "(DAG definitions stay). Run `%kyte reset --yes` to confirm."
                )
            self.guard.reset_allowed()
            with self.guard.write():
                n = self.notebook.reset()
            print(f"Reset: {n} runs deleted, logs cleared. DAG definitions are kept.")
            return
        from .display import session_text

        print(session_text(self.notebook.info()))
        print("\n".join(self.guard.status_lines()))


# `%%dag?` shows the options too: they are declared once, in cellspec, for magic and export.
KyteMagics.dag.__doc__ = (KyteMagics.dag.__doc__ or "") + "\n" + "\n".join(
    "    " + line for line in cellspec.dag_arguments.__doc__.splitlines()
)


def _whatif(dag: Any, args: Any) -> Any:
    """The run's forced outcomes from the what-if options (bad ones: a UsageError)."""
    from .whatif import WhatIfError
    from .whatif.options import from_args

    try:
        whatif = from_args(dag, args)
    except WhatIfError as e:
        raise UsageError(str(e)) from None
    if whatif:
        print(f"What-if run of {dag.dag_id}: {whatif.describe()}")
    return whatif


__all__ = [
    "DagCellOptions", "KyteMagics", "SessionError", "current_registry", "current_session",
    "import_airflow", "load", "unload",
]
