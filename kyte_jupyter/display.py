"""Rich output for cells: a DAG's graph as inline SVG with a plain-text fallback."""

from __future__ import annotations

import time
from html import escape
from typing import TYPE_CHECKING, Any

from IPython.display import display

from .runner import STATE_COLOURS
from .runner.progress import ProgressLine

if TYPE_CHECKING:
    from .notebook import SessionInfo

NODE_W, NODE_H, GAP_X, GAP_Y = 150, 34, 50, 14
MAX_SVG_TASKS = 300


def layers(nodes: list[str], edges: list[list[str]]) -> list[list[str]]:
    """Longest-path layering, each layer ordered by the mean position of its parents.

    A small picture for the cell only; the sidebar lays graphs out with dagre.
    """
    ups: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        ups[b].append(a)
    depth: dict[str, int] = {}

    def d(n: str) -> int:
        if n not in depth:
            depth[n] = 0  # guards against cycles (they are rejected before this point)
            depth[n] = 1 + max((d(u) for u in ups[n]), default=-1)
        return depth[n]

    for n in nodes:
        d(n)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for n in nodes:
        out[depth[n]].append(n)
    pos: dict[str, float] = {}
    for layer in out:
        layer.sort(key=lambda n: (
            sum(pos[u] for u in ups[n]) / len(ups[n]) if ups[n] else 0.0))
        for i, n in enumerate(layer):
            pos[n] = float(i)
    return out


class DagGraph:
    """A DAG's graph for display: ``_repr_svg_``-like HTML plus a text fallback."""

    def __init__(self, graph: dict[str, Any], states: dict[str, str] | None = None,
                 notes: list[str] | None = None) -> None:
        self.graph = graph
        self.states = states or {}
        self.notes = notes or []

    def text(self) -> str:
        """Plain-text listing of tasks and edges."""
        g = self.graph
        lines = [f"DAG {g['dag_id']}: {len(g['nodes'])} tasks, {len(g['edges'])} edges"]
        for n in g["nodes"]:
            group = f" (group {n['task_group']})" if n.get("task_group") else ""
            mapped = " [mapped]" if n.get("is_mapped") else ""
            state = f" — {self.states[n['task_id']]}" if n["task_id"] in self.states else ""
            lines.append(f"  {n['task_id']}: {n['operator']}{group}{mapped}{state}")
        if g["edges"]:
            lines.append("Edges:")
            lines.extend(f"  {a} >> {b}" for a, b in g["edges"])
        lines.extend(f"Warning: {w}" for w in self.notes)
        return "\n".join(lines)

    def svg(self) -> str:
        """An inline SVG of the graph, laid out left to right."""
        g = self.graph
        ids = [n["task_id"] for n in g["nodes"]]
        by_id = {n["task_id"]: n for n in g["nodes"]}
        cols = layers(ids, g["edges"])
        xy: dict[str, tuple[int, int]] = {}
        for ci, col in enumerate(cols):
            for ri, n in enumerate(col):
                xy[n] = (10 + ci * (NODE_W + GAP_X), 10 + ri * (NODE_H + GAP_Y))
        width = 20 + len(cols) * (NODE_W + GAP_X) - GAP_X
        height = 20 + max((len(c) for c in cols), default=1) * (NODE_H + GAP_Y) - GAP_Y
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
            '<defs><marker id="kyte-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
            'markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0L10,5L0,10z" '
            'fill="#888"/></marker></defs>',
        ]
        for a, b in g["edges"]:
            (x1, y1), (x2, y2) = xy[a], xy[b]
            parts.append(
                f'<line x1="{x1 + NODE_W}" y1="{y1 + NODE_H // 2}" x2="{x2}" '
                f'y2="{y2 + NODE_H // 2}" stroke="#888" marker-end="url(#kyte-arrow)"/>'
            )
        for tid in ids:
            x, y = xy[tid]
            node = by_id[tid]
            stroke = STATE_COLOURS.get(self.states.get(tid, ""), "#999")
            label = node.get("label") or tid
            parts.append(
                f'<g><title>{escape(tid)} ({escape(node["operator"])})</title>'
                f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="5" '
                f'fill="#f7f7f7" stroke="{stroke}" stroke-width="2"/>'
                f'<text x="{x + 8}" y="{y + 14}" fill="#222">{escape(_clip(label, 22))}</text>'
                f'<text x="{x + 8}" y="{y + 27}" fill="#777" font-size="9">'
                f'{escape(_clip(node["operator"], 26))}</text></g>'
            )
        parts.append("</svg>")
        return "".join(parts)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        text = self.text()
        g = self.graph
        if len(g["nodes"]) > MAX_SVG_TASKS:
            return {"text/plain": text}
        notes = "".join(f"<div>⚠ {escape(w)}</div>" for w in self.notes)
        html = (
            f"<div class='kyte-dag'><div><b>{escape(g['dag_id'])}</b> — "
            f"{len(g['nodes'])} tasks</div>{self.svg()}{notes}</div>"
        )
        return {"text/plain": text, "text/html": html}


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def session_text(info: SessionInfo) -> str:
    """What ``%kyte`` prints: the session, its DAGs, latest runs and warnings."""
    lines = [
        f"Kyte session {info.session_id}",
        f"  notebook : {info.notebook_path}",
        f"  home     : {info.home}",
        f"  airflow  : {info.airflow_version}",
        f"  DAGs     : {', '.join(info.dags) if info.dags else 'none defined in this kernel yet'}",
    ]
    for dag_id, run_id, state in info.runs:
        lines.append(f"  run      : {dag_id} {run_id} {state}")
    lines.extend(f"  warning  : {w}" for w in info.warnings)
    return "\n".join(lines)


class Progress:
    """The live progress line of ``%run_dag`` (updated at most four times a second)."""

    def __init__(self, dag_id: str) -> None:
        self.dag_id = dag_id
        self._handle = display(ProgressLine(dag_id, {}), display_id=True)
        self._last = 0.0

    def update(self, states: dict[str, str]) -> None:
        """Show the task states so far."""
        now = time.monotonic()
        if self._handle is not None and now - self._last > 0.25:
            self._last = now
            self._handle.update(ProgressLine(self.dag_id, states))

    def finish(self, states: dict[str, str]) -> None:
        """Show the final task states."""
        if self._handle is not None:
            self._handle.update(ProgressLine(self.dag_id, states, done=True))
