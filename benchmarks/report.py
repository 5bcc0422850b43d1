"""Summaries of repeated measurements, the comparison rows with their targets, the markdown
table and the plot of run time against DAG size."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Stat = dict[str, Any]
"""``{"median", "min", "max", "n", "values", "unit"}`` of one repeated measurement."""


def stat(values: list[float], unit: str = "s") -> Stat:
    """Median, min and max of repeated measurements (all values kept for the JSON)."""
    if not values:
        raise ValueError("no values to summarise")
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": list(values),
        "unit": unit,
    }


def fmt_value(value: float, unit: str) -> str:
    """A number with a readable unit: ms below a second, MB for memory."""
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "s":
        if value < 1:
            return f"{value * 1000:.1f} ms" if value < 0.1 else f"{value * 1000:.0f} ms"
        return f"{value:.2f} s"
    return f"{value:g} {unit}"


def fmt_stat(s: Stat | None) -> str:
    """``median (min–max)``, or the single value, or an em dash when not measured."""
    if not s:
        return "—"
    med = fmt_value(s["median"], s["unit"])
    if s["n"] == 1:
        return f"{med} (n=1)"
    lo, hi = fmt_value(s["min"], s["unit"]), fmt_value(s["max"], s["unit"])
    return f"{med} ({lo}–{hi}, n={s['n']})"


@dataclass
class Row:
    """One line of the results table: Kyte against Airflow's own tool, with its target."""

    name: str
    kyte: Stat | None
    baseline_name: str = ""
    baseline: Stat | None = None
    ratio: float | None = None
    ratio_text: str = ""
    target: str = ""
    met: bool | None = None
    peak_mb: float | None = None
    note: str = ""
    extra_baselines: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The row as stored in the results JSON."""
        return asdict(self)


def speedup(kyte: Stat | None, baseline: Stat | None) -> float | None:
    """How many times faster Kyte's median is than the baseline's median."""
    if not kyte or not baseline or kyte["median"] <= 0:
        return None
    return float(baseline["median"] / kyte["median"])


def ratios_text(items: list[tuple[str, float | None]]) -> str:
    """The ratio column for several baselines: ``"6.5× vs dag.test<br>1.4× vs scheduler"``
    (the ones measured), or an em dash."""
    return "<br>".join(f"{r:.1f}× vs {n}" for n, r in items if r is not None) or "—"


def _met(flag: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "—"}[flag]


def markdown_table(rows: list[Row]) -> str:
    """The results as a GitHub-flavoured markdown table."""
    head = ("| Measurement | Kyte median (min–max) | Airflow's own tool | Airflow median (min–max) "
            "| Ratio | Target | Met? | Kyte peak RSS |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = [(r.baseline_name, r.baseline)] + [
            (b["name"], b["stat"]) for b in r.extra_baselines
        ]
        names = "<br>".join(n for n, _ in base if n) or "—"
        values = "<br>".join(fmt_stat(s) for n, s in base if n) or "—"
        ratio = r.ratio_text or (f"{r.ratio:.1f}×" if r.ratio is not None else "—")
        peak = f"{r.peak_mb:.0f} MB" if r.peak_mb is not None else "—"
        kyte = fmt_stat(r.kyte) if r.kyte else (r.note or "—")
        lines.append(f"| {r.name} | {kyte} | {names} | {values} | {ratio} | {r.target or '—'} "
                     f"| {_met(r.met)} | {peak} |")
    notes = [f"- {r.name}: {r.note}" for r in rows if r.note and r.kyte]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def plot_sizes(points: dict[str, dict[int, Stat]], path: Path, title: str,
               targets: dict[int, float] | None = None) -> str | None:
    """Plot run time against DAG size (log–log, min–max bars); None, or why it was skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]' or pip install matplotlib)"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for (label, series), marker in zip(points.items(), "os^D", strict=False):
        sizes = sorted(series)
        if not sizes:
            continue
        med = [series[n]["median"] for n in sizes]
        lo = [series[n]["median"] - series[n]["min"] for n in sizes]
        hi = [series[n]["max"] - series[n]["median"] for n in sizes]
        ax.errorbar(sizes, med, yerr=[lo, hi], marker=marker, capsize=4, label=label)
        for n, m in zip(sizes, med, strict=True):
            ax.annotate(fmt_value(m, "s"), (n, m), textcoords="offset points", xytext=(6, -10),
                        fontsize=8)
    if targets:
        sizes = sorted(targets)
        ax.plot(sizes, [targets[n] for n in sizes], linestyle="none", marker="_",
                markersize=18, markeredgewidth=2, color="crimson", label="Kyte target")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tasks in the DAG (trivial @task, 10 parallel chains)")
    ax.set_ylabel("wall time of one whole-DAG run (s)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return None
