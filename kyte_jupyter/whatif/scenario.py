"""A ``%%scenario`` run's result: expectations against what the run ended with."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from kyte_jupyter.whatif.spec import Scenario, compare


@dataclass
class ScenarioResult:
    """What a ``%%scenario`` cell found: ``r.passed``, ``r.mismatches``, ``r.summary``."""

    scenario: Scenario
    summary: Any
    """The run summary (``.task_states``, ``.run_state`` / ``.state``, ``.forced`` …)."""
    mismatches: list[tuple[str, str, str]] = field(default_factory=list)
    """``(task instance key or "(run)", expected, actual)`` for every failed expectation."""

    @classmethod
    def of(cls, scenario: Scenario, summary: Any) -> ScenarioResult:
        """Check ``scenario`` against a finished run's summary."""
        run_state = getattr(summary, "run_state", None) or summary.state
        return cls(scenario, summary, compare(scenario, summary.task_states, run_state))

    @property
    def passed(self) -> bool:
        """True when every expectation held."""
        return not self.mismatches

    def rows(self) -> list[tuple[str, str, str, bool]]:
        """``(key, expected, actual, ok)`` for every expectation, in the scenario's order."""
        bad = {k: (w, g) for k, w, g in self.mismatches}
        out = []
        states = self.summary.task_states
        for key, want in self.scenario.expect.items():
            got = bad[key][1] if key in bad else states.get(key, want)
            out.append((key, want, got, key not in bad))
        if self.scenario.run is not None:
            got = bad["(run)"][1] if "(run)" in bad else self.scenario.run
            out.append(("(run)", self.scenario.run, got, "(run)" not in bad))
        return out

    def message(self) -> str:
        """One line per mismatch, for the failing cell."""
        return "; ".join(f"{k}: expected {w}, got {g}" for k, w, g in self.mismatches)

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else f"FAILED ({len(self.mismatches)} mismatches)"
        return f"<Scenario {self.scenario.name!r} on {self.scenario.dag_id}: {verdict}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        lines = [repr(self)]
        forced = self.scenario.whatif.describe()
        if forced:
            lines.append(f"  forced: {forced}")
        width = max((len(r[0]) for r in self.rows()), default=4)
        for key, want, got, ok in self.rows():
            mark = "ok  " if ok else "FAIL"
            lines.append(f"  {mark} {key:<{width}}  expected {want:<16} got {got}")
        p.text("\n".join(lines))

    def _repr_html_(self) -> str:
        bold = " style='font-weight:bold'"
        body = "".join(
            f"<tr><td>{'✔' if ok else '✘'}</td><td><code>{escape(k)}</code></td>"
            f"<td>{escape(w)}</td><td{'' if ok else bold}>{escape(g)}</td></tr>"
            for k, w, g, ok in self.rows()
        )
        verdict = "passed" if self.passed else "failed"
        forced = escape(self.scenario.whatif.describe() or "nothing")
        return (
            f"<div class='kyte-scenario kyte-scenario-{verdict}'><b>Scenario "
            f"{escape(self.scenario.name)}</b> on <code>{escape(self.scenario.dag_id)}</code>: "
            f"<b>{verdict}</b> <span>(forced: {forced})</span>"
            "<table><thead><tr><th></th><th>task</th><th>expected</th><th>actual</th></tr>"
            f"</thead><tbody>{body}</tbody></table></div>"
        )
