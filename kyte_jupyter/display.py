"""Rich output for cells: a DAG's graph as inline SVG with a plain-text fallback."""

from __future__ import annotations

import hashlib
import time
from html import escape
from typing import TYPE_CHECKING, Any

from IPython.display import display

from .runner import STATE_COLOURS
from .runner.progress import ProgressLine

if TYPE_CHECKING:
    from .notebook import SessionInfo

NODE_W, NODE_H, GAP_X, GAP_Y = 130, 38, 46, 14
MAX_NODE_W, MAX_LABEL = 240, 32
CELL_WIDTH = 960
"""Wider than this, a long chain is drawn top to bottom instead of left to right."""
MAX_SVG_TASKS = 300

# JupyterLab theme variables, with fallbacks for other front ends (light theme colours).
FONT = "var(--jp-ui-font-family, sans-serif)"
TEXT = "var(--jp-ui-font-color1, #222)"
TEXT_DIM = "var(--jp-ui-font-color2, #666)"
NODE_FILL = "var(--jp-layout-color2, #f3f3f3)"
BORDER = "var(--jp-border-color1, #9e9e9e)"
EDGE = "var(--jp-ui-font-color3, #888)"


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
        """An inline SVG of the graph, drawn at its natural size (never shrunk to fit).

        Laid out left to right, or top to bottom when a long chain would be wider than a
        notebook cell. Colours are JupyterLab theme variables with fallbacks, so the
        picture reads in light and dark themes and outside JupyterLab.
        """
        g = self.graph
        ids = [n["task_id"] for n in g["nodes"]]
        by_id = {n["task_id"]: n for n in g["nodes"]}
        labels = {t: str(by_id[t].get("label") or t) for t in ids}
        cols = layers(ids, g["edges"])
        longest = max((len(v) for v in labels.values()), default=8)
        node_w = min(MAX_NODE_W, max(NODE_W, 7 * min(longest, MAX_LABEL) + 18))
        deepest = max((len(c) for c in cols), default=1)
        lr_width = 20 + len(cols) * (node_w + GAP_X) - GAP_X
        tb_width = 20 + deepest * (node_w + GAP_Y) - GAP_Y
        vertical = lr_width > CELL_WIDTH and tb_width < lr_width
        xy: dict[str, tuple[int, int]] = {}
        for ci, col in enumerate(cols):
            for ri, n in enumerate(col):
                if vertical:
                    xy[n] = (10 + ri * (node_w + GAP_Y), 10 + ci * (NODE_H + GAP_X // 2))
                else:
                    xy[n] = (10 + ci * (node_w + GAP_X), 10 + ri * (NODE_H + GAP_Y))
        width = max(x for x, _ in xy.values()) + node_w + 10 if xy else 20
        height = max(y for _, y in xy.values()) + NODE_H + 10 if xy else 20
        marker = "kyte-arrow-" + hashlib.sha1(g["dag_id"].encode()).hexdigest()[:8]
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="graph of DAG '
            f'{escape(g["dag_id"])}" style="max-width:none;font-family:{FONT};font-size:12px">',
            f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="10" refY="5" '
            'markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" '
            f'style="fill:{EDGE}"/></marker></defs>',
        ]
        for a, b in g["edges"]:
            (x1, y1), (x2, y2) = xy[a], xy[b]
            if vertical:
                ends = (x1 + node_w // 2, y1 + NODE_H, x2 + node_w // 2, y2)
            else:
                ends = (x1 + node_w, y1 + NODE_H // 2, x2, y2 + NODE_H // 2)
            parts.append(
                f'<line x1="{ends[0]}" y1="{ends[1]}" x2="{ends[2]}" y2="{ends[3]}" '
                f'style="stroke:{EDGE};stroke-width:1.2" marker-end="url(#{marker})"/>'
            )
        for tid in ids:
            x, y = xy[tid]
            node = by_id[tid]
            state = self.states.get(tid, "")
            stroke = STATE_COLOURS.get(state, BORDER)
            operator = str(node.get("operator") or "")
            kind = "mapped · " if node.get("is_mapped") else ""
            chars = max(8, (node_w - 16) // 7)
            title = f"{tid} ({operator})" + (f" — {state}" if state else "")
            parts.append(
                f"<g><title>{escape(title)}</title>"
                f'<rect x="{x}" y="{y}" width="{node_w}" height="{NODE_H}" rx="5" '
                f'style="fill:{NODE_FILL};stroke:{stroke};stroke-width:2"/>'
                f'<text x="{x + 8}" y="{y + 15}" style="fill:{TEXT}">'
                f"{escape(_clip(labels[tid], chars))}</text>"
                f'<text x="{x + 8}" y="{y + 29}" style="fill:{TEXT_DIM};font-size:10px">'
                f"{escape(_clip(kind + operator, (node_w - 16) // 6))}</text></g>"
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
            f"<div class='kyte-dag' style='color:{TEXT}'><div><b>{escape(g['dag_id'])}</b> — "
            f"{len(g['nodes'])} tasks</div><div style='overflow:auto;max-height:640px'>"
            f"{self.svg()}</div>{notes}</div>"
        )
        return {"text/plain": text, "text/html": html}


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def session_text(info: SessionInfo) -> str:
    """What ``%kyte`` prints: the session, its DAGs, latest runs and warnings."""
    if info.keyed_on_folder is None:
        where = [f"  notebook : {info.notebook_path}"]
    else:
        where = [
            "  notebook : unknown (this kernel was not told its notebook's path: no "
            "JPY_SESSION_NAME, as under nbclient or nbconvert)",
            f"  keyed on : the working directory {info.keyed_on_folder}: kernels started "
            "there without a notebook path share this session. For a session of its own, "
            "set JPY_SESSION_NAME to the notebook's path in the kernel's environment.",
        ]
    lines = [
        f"Kyte session {info.session_id}",
        *where,
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
        self._active: set[str] = set()
        self._updated = False

    def update(self, states: dict[str, str]) -> None:
        """Show the task states so far."""
        now = time.monotonic()
        self._updated = True
        # Always show which tasks start running (a long task would otherwise go unnamed).
        active = {k for k, s in states.items() if s in ("running", "deferred")}
        if self._handle is not None and (now - self._last > 0.25 or active != self._active):
            self._last, self._active = now, active
            self._handle.update(ProgressLine(self.dag_id, states))

    def finish(self, states: dict[str, str]) -> None:
        """Show the final task states."""
        if self._handle is not None:
            self._handle.update(ProgressLine(self.dag_id, states, done=True))

    def withdraw(self) -> None:
        """Clear the "starting" line of a run refused before it started (the error says
        why); a line that showed states stays."""
        if self._handle is not None and not self._updated:
            self._handle.update({"text/plain": "", "text/html": ""}, raw=True)
