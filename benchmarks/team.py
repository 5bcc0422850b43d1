"""Team mode: new sessions created back to back on SQLite and on PostgreSQL (issue 18).

Each backend gets a fresh sessions root whose template metastore is made first (not timed
per session: it is migrated once per Airflow version), then ``N`` notebooks get a session
each, one after the other; the time per session is what the user waits for at the first
``%load_ext`` / kernel start. PostgreSQL runs from Debian's package in a temporary directory
(``tests/pgserver.py``), with fsync off as in the tests.

    python -m benchmarks.team [--sessions 20]

``python -m benchmarks`` runs it too (rows "New session, 20 back to back").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _time_sessions(root: Path, n: int, metastore_url: str) -> tuple[float, list[float]]:
    from kyte_jupyter.session import SessionStore

    store = SessionStore(root, metastore_url=metastore_url, user="bench")
    t0 = time.perf_counter()
    store.prepare_template()
    template_s = time.perf_counter() - t0
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        store.for_notebook(str(root.parent / "notebooks" / f"nb-{i}.ipynb"))
        times.append(time.perf_counter() - t0)
    return template_s, times


def session_creation(n: int = 20) -> dict[str, Any]:
    """Seconds per new session on each backend: ``{"sqlite": [...], "postgres": [...], ...}``.

    ``postgres`` is ``None`` (and ``postgres_skipped`` says why) without PostgreSQL.
    """
    sys.path.insert(0, str(REPO / "tests"))
    from pgserver import pg_bin, running_postgres

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kyte-bench-team-") as tmp:
        out["sqlite_template_s"], out["sqlite"] = _time_sessions(Path(tmp) / "sqlite", n, "")
        if pg_bin() is None:
            out["postgres"] = None
            out["postgres_skipped"] = "PostgreSQL is not installed"
            return out
        with running_postgres() as pg:
            url = f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/kyte_{{user}}_{{session}}"
            out["postgres_template_s"], out["postgres"] = _time_sessions(
                Path(tmp) / "postgres", n, url)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the time per session on both backends."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.team", description=__doc__)
    p.add_argument("--sessions", type=int, default=20)
    args = p.parse_args(argv)
    r = session_creation(args.sessions)
    print("| backend | template (once) | per session: median | min | max | n |")
    print("|---|---|---|---|---|---|")
    for kind in ("sqlite", "postgres"):
        values = r.get(kind)
        if not values:
            print(f"| {kind} | – | {r.get(f'{kind}_skipped', 'skipped')} | | | |")
            continue
        print(f"| {kind} | {r[f'{kind}_template_s']:.1f} s | "
              f"{statistics.median(values) * 1000:.0f} ms | {min(values) * 1000:.0f} ms | "
              f"{max(values) * 1000:.0f} ms | {len(values)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
