"""The live progress line of a ``%run_dag``: which tasks run, and counts by state."""

from __future__ import annotations

from html import escape

from .summary import STATE_COLOURS, state_label


def counts_label(states: dict[str, str]) -> str:
    """``"2 success, 1 no status"``: counts by state, in a stable order."""
    counts: dict[str, int] = {}
    for s in states.values():
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{n} {state_label(s)}" for s, n in sorted(counts.items()))


def tasks(n: int) -> str:
    """``"1 task"``, ``"3 tasks"``."""
    return f"{n} task{'' if n == 1 else 's'}"


def progress_text(dag_id: str, states: dict[str, str], done: bool = False) -> str:
    """One line: the DAG, what runs now (by name), and counts by state."""
    if not states:
        return f"{dag_id} starting…"
    if done:
        return f"{dag_id} finished ({tasks(len(states))}): {counts_label(states)}"
    running = [k for k, s in states.items() if s in ("running", "deferred", "queued")]
    now = ""
    if running:
        shown = ", ".join(running[:3]) + (f" and {len(running) - 3} more" if len(running) > 3
                                           else "")
        verb = "waits for its trigger" if all(states[k] == "deferred" for k in running) \
            else "running"
        now = f" — {verb}: {shown}"
    return f"{dag_id} running ({tasks(len(states))}){now}: {counts_label(states)}"


def progress_html(dag_id: str, states: dict[str, str], done: bool = False) -> str:
    """The progress line with a bar coloured by state (the same words as the text)."""
    counts: dict[str, int] = {}
    for s in states.values():
        counts[s] = counts.get(s, 0) + 1
    total = len(states) or 1
    bar = "".join(
        f"<div title='{escape(state_label(s))}: {n}' style='flex:{n};background:"
        f"{STATE_COLOURS.get(s, '#ccc')}'></div>"
        for s, n in sorted(counts.items())
    )
    label = counts_label(states) or "starting…"
    verb = "finished" if done else "running"
    running = [k for k, s in states.items() if s in ("running", "deferred")]
    now = ""
    if running and not done:
        names = ", ".join(f"<code>{escape(k)}</code>" for k in running[:3])
        more = f" and {len(running) - 3} more" if len(running) > 3 else ""
        now = f" — now: {names}{more}"
    return (
        f"<div class='kyte-progress'><b>{escape(dag_id)}</b> {verb}: {escape(label)}{now}"
        f"<div style='display:flex;height:6px;width:100%;max-width:480px;"
        f"background:#eee;margin-top:3px' data-total='{total}'>{bar}</div></div>"
    )


class ProgressLine:
    """The progress line as a display object: HTML for notebooks, text for consoles."""

    def __init__(self, dag_id: str, states: dict[str, str], done: bool = False) -> None:
        self.dag_id, self.states, self.done = dag_id, dict(states), done

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        return {
            "text/plain": progress_text(self.dag_id, self.states, self.done),
            "text/html": progress_html(self.dag_id, self.states, self.done),
        }
