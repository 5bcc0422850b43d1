"""Running the notebook's tasks and DAGs: the run's policy in one place.

* :mod:`.plan` — what to run, in what order, how a run settles (force, frontier, expand,
  prepare, settle);
* :mod:`.tries` — try executors: in-process and forked, behind one interface;
* :mod:`.run` — :class:`Runner`, which drives a plan with an executor;
* :mod:`.parallel` — the same plan handed to one of Airflow's executors (``--parallelism``);
* :mod:`.summary` — :class:`RunSummary` and its JSON (``application/vnd.kyte.run-summary+json``);
* :mod:`.logs` — a try's log file and the clean lines the cell shows;
* :mod:`.failure` — a failed task as the cell shows it (own frames, masked);
* :mod:`.progress` — the live progress line;
* :mod:`.results` — reading XComs back.

Only ``kyte_jupyter.bridge`` talks to Airflow's internals; this package decides.
"""

from __future__ import annotations

from .logs import log_path
from .plan import RunError, Selection, is_mapped
from .run import Progress, Runner
from .summary import RUN_SUMMARY_MIME, STATE_COLOURS, RunSummary, outcome, ti_key

__all__ = [
    "RUN_SUMMARY_MIME", "STATE_COLOURS", "Progress", "RunError", "RunSummary", "Runner",
    "Selection", "is_mapped", "log_path", "outcome", "ti_key",
]
