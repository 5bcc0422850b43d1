"""The run summary a ``%run_task`` / ``%run_dag`` returns, shows and emits as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from typing import Any, Literal

from ..contracts.run import RUN_SUMMARY_MIME

__all__ = ["RUN_SUMMARY_MIME", "STATE_COLOURS", "RunSummary", "outcome", "ti_key"]

STATE_COLOURS = {
    "success": "#008000",
    "failed": "#ff0000",
    "upstream_failed": "#ffa500",
    "skipped": "#ff69b4",
    "up_for_retry": "#ffd700",
    "up_for_reschedule": "#40e0d0",
    "running": "#32cd32",
    "queued": "#808080",
    "scheduled": "#d2b48c",
    "deferred": "#9370db",
    "removed": "#d3d3d3",
    "restarting": "#ee82ee",
}

FAILED = ("failed", "upstream_failed")


class WorkerTaskError(Exception):
    """A try that failed in an executor's worker (a parallel run): the exception itself
    stayed in the worker's process; the message is its last line in the try's log, masked."""

    def __init__(self, key: str, executor: str, line: str, dag_id: str) -> None:
        task_id = key.split("[", 1)[0]
        super().__init__(
            f"{key} failed in a {executor} worker: {line}. To debug it, run it in the kernel: "
            f"%run_task {dag_id} {task_id} --parallelism 1, then %debug."
        )
        self.key, self.executor, self.line = key, executor, line


def ti_key(task_id: str, map_index: int) -> str:
    """How a task instance is named in summaries: ``task`` or ``task[i]`` when mapped."""
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def split_key(key: str) -> tuple[str, int]:
    """``task[3]`` -> ``("task", 3)``; ``task`` -> ``("task", -1)``."""
    task_id, bracket, rest = key.partition("[")
    return (task_id, int(rest[:-1])) if bracket and rest.endswith("]") else (key, -1)


def state_label(state: str) -> str:
    """A state as a person reads it: Airflow's name, or "no status" for none."""
    return "no status" if state in ("none", "") else state


def outcome(states: list[str]) -> str:
    """The outcome of a set of task instances, as one state (SPEC §2 ``.state``).

    ``failed`` if any failed or upstream_failed; else the first state that is not finished
    (``deferred``, ``up_for_retry`` …); else ``skipped`` when all were skipped; else
    ``success``. Nothing asked for: ``none``.
    """
    if not states:
        return "none"
    if any(s in FAILED for s in states):
        return "failed"
    unfinished = [s for s in states if s not in ("success", "skipped", "removed")]
    if unfinished:
        return unfinished[0]
    if all(s in ("skipped", "removed") for s in states):
        return "skipped"
    return "success"


@dataclass
class RunSummary:
    """What a ``%run_task`` or ``%run_dag`` did: ``r.state``, ``r.task_states`` …

    ``state`` is the outcome of what was asked (for ``%run_dag`` the run's state, for
    ``%run_task`` the selected task instances' :func:`outcome`); ``run_state`` is the
    DagRun's own state.
    """

    dag_id: str
    run_id: str | None
    state: str
    run_state: str | None = None
    task_states: dict[str, str] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    duration: float = 0.0
    #: the exception of each failed try: the task's own when it ran in the kernel (for
    #: ``%debug``), a :class:`WorkerTaskError` naming it when an executor's worker ran it
    errors: dict[str, BaseException] = field(default_factory=dict, repr=False)
    magic: Literal["run_task", "run_dag", "scenario"] = "run_task"
    #: one masked line per failed task instance (what the cell and the JSON show)
    error_lines: dict[str, str] = field(default_factory=dict, repr=False)
    #: task instances whose outcome a what-if option forced: key -> "fail", "branch -> a"…
    forced: dict[str, str] = field(default_factory=dict)
    #: the executor whose workers ran the tries (a parallel run), else None (the kernel)
    executor: str | None = field(default=None, repr=False)

    @property
    def failed(self) -> list[str]:
        """Task instances that ended failed or upstream_failed."""
        return [k for k, v in self.task_states.items() if v in FAILED]

    # ---- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON data, validated by ``contracts.run.RunSummary`` (PLAN.md)."""
        from ..contracts.run import RunSummary as Contract

        return Contract.model_validate(self._data()).model_dump(mode="json")

    def _data(self) -> dict[str, Any]:

        def state(s: str | None) -> str | None:
            return None if s in (None, "none", "") else s

        instances = []
        for key, s in self.task_states.items():
            task_id, map_index = split_key(key)
            took = self.durations.get(key)
            instances.append({
                "key": key,
                "task_id": task_id,
                "map_index": map_index,
                "state": state(s),
                "try_number": self.tries.get(key, 0),
                "duration_s": None if took is None else round(took, 6),
                "forced": self.forced.get(key),
                "error": self.error_lines.get(key),
            })
        return {
            "version": 1,
            "magic": self.magic,
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "state": state(self.state),
            "run_state": state(self.run_state),
            "duration_s": round(self.duration, 6),
            "task_instances": instances,
            "failed": self.failed,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict())

    def publish(self) -> None:
        """Emit the JSON as a display output of its own (``RUN_SUMMARY_MIME`` only).

        Once per run, whether or not the cell shows the summary (``r = %run_dag etl`` shows
        nothing): the front end reads this output; notebook front ends render nothing for
        it.
        """
        from IPython.display import display

        display({RUN_SUMMARY_MIME: self.to_dict()}, raw=True)

    # ---- text and HTML --------------------------------------------------------------------
    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for s in self.task_states.values():
            counts[s] = counts.get(s, 0) + 1
        summary = ", ".join(f"{n} {state_label(s)}" for s, n in sorted(counts.items()))
        run = "" if self.run_state in (None, self.state) else f" run_state={self.run_state!r}"
        return (
            f"<RunSummary {self.dag_id} run_id={self.run_id!r} state={self.state!r}{run} "
            f"({summary}) in {self.duration:.2f}s>"
        )

    def text(self) -> str:
        """The summary as plain text: one line, then one line per task instance."""
        lines = [repr(self)]
        width = max((len(k) for k in self.task_states), default=4)
        for key, state in self.task_states.items():
            extra = ""
            if key in self.tries:
                extra = f"  try {self.tries[key]}, {self.durations.get(key, 0.0):.3f}s"
            if key in self.error_lines:
                extra += f"  {self.error_lines[key]}"
            if key in self.forced:
                extra += f"  (forced: {self.forced[key]})"
            lines.append(f"  {key:<{width}}  {state_label(state)}{extra}")
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def _repr_html_(self) -> str:
        rows = []
        for key, state in self.task_states.items():
            colour = STATE_COLOURS.get(state, "transparent")
            took = f"{self.durations[key]:.3f}s" if key in self.durations else ""
            error = self.error_lines.get(key, "")
            rows.append(
                f"<tr><td><code>{escape(key)}</code></td>"
                f"<td><span style='display:inline-block;width:.8em;height:.8em;"
                f"border-radius:50%;background:{colour};margin-right:.4em'></span>"
                f"{escape(state_label(state))}{_forced_badge(self.forced.get(key))}</td>"
                f"<td>{self.tries.get(key, '')}</td>"
                f"<td>{took}</td><td>{escape(error)}</td></tr>"
            )
        colour = STATE_COLOURS.get(self.state, "inherit")
        run = ""
        if self.run_state not in (None, self.state):
            run = f" (run {escape(state_label(self.run_state or ''))})"
        return (
            f"<div class='kyte-run'><b>{escape(self.dag_id)}</b> "
            f"<code>{escape(self.run_id or '')}</code> — "
            f"<b style='color:{colour}'>{escape(state_label(self.state))}</b>{run} "
            f"in {self.duration:.2f}s"
            "<table><thead><tr><th>task</th><th>state</th><th>try</th><th>duration</th>"
            f"<th>error</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )


def _forced_badge(note: str | None) -> str:
    """A what-if badge next to a forced task instance's state (not a state colour)."""
    if not note:
        return ""
    return (" <span class='kyte-forced' title='outcome forced by a what-if option' "
            "style='border:1px dashed currentColor;border-radius:3px;padding:0 .3em;"
            f"font-size:85%'>forced: {escape(note)}</span>")
