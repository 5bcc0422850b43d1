"""Issue 13.2: a corrupt, truncated, deleted or locked ``airflow.db`` (real kernels, real SQLite).

For each kind of damage, done to the file of a notebook that has run: the running kernel
refuses to run (never a success it did not record) and says what happened and what to do in
one paragraph; after a restart ``%kyte`` says it and ``%%dag`` gives the paragraph, not a
SQLAlchemy traceback; ``%kyte repair --yes`` keeps the damaged file aside and starts afresh
with logs and the audit trail kept, and the notebook's DAGs work again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kyte_jupyter.session import SessionStore

DAG = '''\
%%dag
from airflow.sdk import DAG, task
with DAG("d", schedule=None):
    @task
    def first():
        print("first ran")
        return 1
    @task
    def second(x):
        return x + 1
    second(first())
'''


def _truncate(db: Path) -> None:
    with db.open("r+b") as f:
        f.truncate(db.stat().st_size // 2)


def _overwrite_header(db: Path) -> None:
    with db.open("r+b") as f:
        f.write(b"this is not a database header!!!" * 3)


def _delete(db: Path) -> None:
    db.unlink()


def _damage_pages(db: Path) -> None:
    size = db.stat().st_size
    with db.open("r+b") as f:  # every other page past the first ten: b-tree pages included
        for offset in range(4096 * 10, size, 4096 * 2):
            f.seek(offset)
            f.write(b"\xa5" * 4096)


KINDS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # damage, Status.kind, words of the paragraph
    "truncate": (_truncate, "truncated", "has been cut short"),
    "header": (_overwrite_header, "not_sqlite", "is no longer a SQLite database"),
    "delete": (_delete, "missing", "has been deleted"),
    "pages": (_damage_pages, "corrupt", "is damaged"),
}


def _home(root: Path, notebook: Path) -> Path:
    s = SessionStore(root).find(str(notebook))
    assert s is not None
    return s.home


def _checkpoint(db: Path) -> None:
    """Move the WAL into the main file, so the damage hits what was recorded."""
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def _assert_paragraph(text: str, words: str, db: Path) -> None:
    assert f"This notebook's Airflow metastore ({db}) {words}" in text, text
    assert "%kyte repair --yes" in text and "audit trail are kept" in text, text
    assert "sqlalchemy" not in text.lower() and "Traceback" not in text, text


@pytest.mark.parametrize("kind", list(KINDS))
def test_damaged_metastore_is_detected_explained_and_repaired(make_kernel, sessions_root, kind):
    damage, status_kind, words = KINDS[kind]
    k = make_kernel()
    k.ok(DAG)
    k.ok("%run_dag d")
    home = _home(sessions_root, k.notebook)
    db = home / "airflow.db"
    logs_before = sorted(p.relative_to(home) for p in (home / "logs").rglob("*.log"))
    assert len(logs_before) == 2
    audit_before = (home / "kyte" / "audit.jsonl").read_text().splitlines()
    _checkpoint(db)
    damage(db)
    damaged_bytes = db.read_bytes() if db.exists() else None

    # The running kernel: no success reported, the paragraph instead; nothing ran.
    r = k.fails("%run_task d first")
    _assert_paragraph(r.text, words, db)
    assert "Kyte ran nothing" in r.text
    assert "first ran" not in r.text
    info = k.ok("%kyte")
    assert f"metastore: {status_kind}" in info.stdout, info.text

    # After a restart: %kyte says it, %%dag gives the paragraph (no SQLAlchemy traceback).
    k.restart()
    k.ok("%load_ext kyte_jupyter")
    info = k.ok("%kyte")
    assert f"metastore: {status_kind if kind != 'delete' else 'missing'}" in info.stdout
    _assert_paragraph(info.stderr, words if kind != "delete" else "has been deleted", db)
    r = k.fails(DAG)
    _assert_paragraph(r.text, words if kind != "delete" else "has been deleted", db)

    # %kyte repair: asks first, then keeps the damaged file aside and starts afresh.
    asked = k.fails("%kyte repair")
    assert "%kyte repair --yes" in asked.text and "not usable" in asked.text, asked.text
    done = k.ok("%kyte repair --yes")
    assert "Repaired: kept" in done.stdout, done.text
    kept = sorted(p.name for p in home.glob("airflow.db.damaged-*"))
    main = [n for n in kept if not n.endswith(("-wal", "-shm"))]
    if damaged_bytes is None:
        assert main == []  # its WAL is kept aside too: never replayed into the fresh file
    else:
        assert len(main) == 1 and (home / main[0]).read_bytes() == damaged_bytes
    assert "metastore: ok" in k.ok("%kyte").stdout
    # Logs and the audit trail are kept; the repair is recorded.
    assert sorted(p.relative_to(home) for p in (home / "logs").rglob("*.log")) == logs_before
    audit = (home / "kyte" / "audit.jsonl").read_text().splitlines()
    assert audit[: len(audit_before)] == audit_before
    repair = [json.loads(line) for line in audit if '"session.repair"' in line]
    assert len(repair) == 1 and repair[0]["kind"] == status_kind

    # The notebook works again: its DAG is registered again on next use.
    k.ok(DAG)
    r = k.ok("r = %run_dag d\nprint(r.state)")
    assert r.stdout.strip().endswith("success"), r.text


def test_damage_in_a_live_kernel_without_restart_then_repair(make_kernel, sessions_root):
    """The kernel that did the good run repairs without a restart; its next run succeeds
    on the fresh metastore (the DAGs are synced again on first use)."""
    k = make_kernel()
    k.ok(DAG)
    k.ok("%run_dag d")
    db = _home(sessions_root, k.notebook) / "airflow.db"
    _checkpoint(db)
    _truncate(db)
    k.fails("%run_dag d")
    k.ok("%kyte repair --yes")
    r = k.ok("r = %run_task d second --upstream -q\nprint(r.state, r.task_states)")
    assert "success {'first': 'success', 'second': 'success'}" in r.stdout, r.text


def test_write_lock_held_by_another_process_waits_the_bound_and_names_it(
    make_kernel, sessions_root
):
    k = make_kernel(KYTE_METASTORE_LOCK_TIMEOUT="2")
    k.ok(DAG)
    k.ok("%run_task d first -q")
    db = _home(sessions_root, k.notebook) / "airflow.db"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         "con = sqlite3.connect(sys.argv[1])\n"
         "con.execute('BEGIN IMMEDIATE')\n"
         "print('locked', flush=True)\n"
         "time.sleep(25)\n", str(db)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        r = k.fails("%run_task d first -q")
        waited = time.monotonic() - start
        assert 2 <= waited < 20, waited
        assert f"is locked for writing by process {holder.pid}" in r.text, r.text
        assert "Kyte waited 2 s for it and ran nothing" in r.text, r.text
        assert "KYTE_METASTORE_LOCK_TIMEOUT" in r.text
        assert "Traceback" not in r.text and "ServerResponseError" not in r.text
    finally:
        holder.kill()
        holder.wait()
    # Nothing was lost or half-done: the try count did not move; the next run works.
    r = k.ok("r = %run_task d first -q\nprint(r.state, r.tries)")
    assert "{'first': 2}" in r.stdout, r.text
    assert os.path.exists(db)
