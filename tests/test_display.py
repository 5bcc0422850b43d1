"""The inline graph under a %%dag cell (issue 12.5): readable, themed, with a text fallback."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from kyte_jupyter.display import CELL_WIDTH, MAX_SVG_TASKS, DagGraph


def _graph(ids: list[str], edges: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "dag_id": "g",
        "nodes": [{"task_id": t, "label": t, "operator": "PythonOperator", "task_group": None,
                   "is_mapped": t.endswith("_m")} for t in ids],
        "edges": [list(e) for e in edges],
    }


def _svg(html: str) -> ET.Element:
    svg = re.search(r"<svg.*</svg>", html, re.S)
    assert svg is not None
    return ET.fromstring(svg.group(0))


def test_long_chain_keeps_readable_labels_and_is_never_shrunk():
    ids = [f"step_{i:02d}_transform_records" for i in range(12)]
    chain = list(zip(ids, ids[1:], strict=False))
    bundle = DagGraph(_graph(ids, chain))._repr_mimebundle_()
    html = bundle["text/html"]
    root = _svg(html)  # well-formed XML
    width, height = int(root.get("width", 0)), int(root.get("height", 0))
    assert "max-width:none" in root.get("style", "")  # drawn at natural size, scrolls
    assert "overflow:auto" in html
    assert width <= CELL_WIDTH and height > width  # a long chain goes top to bottom
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for task_id in ids:
        assert task_id in texts  # full labels, not clipped
    assert "font-size:12px" in root.get("style", "")


def test_wide_fan_out_left_to_right_with_theme_colours():
    ids = ["start"] + [f"branch_{i}" for i in range(9)] + ["end_m"]
    edges = [("start", f"branch_{i}") for i in range(9)] + [(f"branch_{i}", "end_m")
                                                            for i in range(9)]
    g = DagGraph(_graph(ids, edges), states={"start": "success"}, notes=["cell [3] was deleted"])
    bundle = g._repr_mimebundle_()
    html = bundle["text/html"]
    root = _svg(html)
    assert int(root.get("width", 0)) <= CELL_WIDTH  # nine branches fit side by side
    # Every colour comes from a JupyterLab theme variable (with a fallback), so dark themes
    # work; only task states keep their fixed Airflow colours.
    assert not re.search(r'(fill|stroke)="#', html)
    assert "var(--jp-ui-font-color1" in html and "var(--jp-layout-color2" in html
    assert "#008000" in html  # success
    assert "mapped" in html
    assert "cell [3] was deleted" in html
    text = bundle["text/plain"]
    assert "DAG g: 11 tasks, 18 edges" in text
    assert "start >> branch_0" in text and "Warning: cell [3] was deleted" in text
    assert "start: PythonOperator — success" in text


def test_huge_graph_is_text_only():
    ids = [f"t{i}" for i in range(MAX_SVG_TASKS + 1)]
    bundle = DagGraph(_graph(ids, []))._repr_mimebundle_()
    assert set(bundle) == {"text/plain"}
