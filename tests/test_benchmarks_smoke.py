"""The benchmark harness runs end to end in its tiny mode and writes a well-formed result.

No timing is asserted here: the numbers depend on the machine. This only proves that
``python -m benchmarks --smoke`` works, so the real benchmark does not rot.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

EXPECTED = [
    "kyte.session_new",
    "kyte.first.load_ext",
    "kyte.first.define",
    "kyte.first.run_task",
    "kyte.first.total",
    "kyte.first.peak_mb",
    "kyte.run_task.warm",
    "kyte.run_task.warm_round_trip",
    "kyte.run_task.warm_cpu",
    "kyte.define.3",
    "kyte.run_dag.3",
    "kyte.run_dag.3_round_trip",
    "kyte.rss_final",
    "kyte.export.1000",
    "airflow.import",
    "airflow.import_rss",
    "airflow.first.total",
    "airflow.dag_test.warm_1",
    "airflow.dag_test.warm_1_cpu",
    "airflow.dag_test.3",
]


def test_smoke_run_writes_json_table_and_plot(sessions_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = dict(os.environ)
    for name in ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "KYTE_SESSION_HOME"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out),
         "--sessions-root", str(sessions_root)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    files = sorted(out.glob("*.json"))
    assert len(files) == 1, list(out.iterdir())
    result = json.loads(files[0].read_text())
    assert result["meta"]["mode"] == "smoke"
    assert result["meta"]["airflow_version"].startswith("3.")
    # The template metastore of the fixture was reused, not migrated again.
    assert result["info"]["template_reused"] is True

    m = result["measurements"]
    missing = [k for k in EXPECTED if k not in m]
    assert not missing, f"missing measurements: {missing}"
    for key, s in m.items():
        assert s["n"] >= 1 and len(s["values"]) == s["n"], key
        assert 0 < s["min"] <= s["median"] <= s["max"], (key, s)

    names = [r["name"] for r in result["rows"]]
    assert any(n.startswith("New session ready") for n in names)
    assert any(n.startswith("Warm `%run_task`") for n in names)
    assert any(n.startswith("`%run_dag`, 3 ") for n in names)
    for row in result["rows"]:
        assert row["met"] in (True, False, None)
        if row["kyte"]:
            assert row["kyte"]["median"] > 0

    # The readable table is printed and saved next to the JSON.
    assert "| Measurement |" in proc.stdout
    assert Path(result["meta"]["files"]["markdown"]).is_file()
    if importlib.util.find_spec("matplotlib") is not None:
        assert Path(result["meta"]["files"]["plot"]).is_file()
