"""Schemathesis fuzzes the REST API from docs/openapi.yaml against a real server (issue 13.7).

A jupyter server with Kyte runs in a subprocess on 127.0.0.1 (stopped by its PID), over a
root and a sessions root holding a realistic session. The document gets the session's real
ids as parameter examples, so the examples phase reaches real DAGs, runs and logs, and the
coverage and fuzzing phases go around them. Checks: no 5xx, status codes, content types and
bodies as documented. Afterwards nothing was written outside the two roots and no response
carried a secret kept next to them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from server_homes import RUN_ID, add_run, etl_graph, write_graph, write_log

from kyte_jupyter.session import SessionStore

REPO = Path(__file__).resolve().parents[2]
TOKEN = "kyte-fuzz-token"
SECRET = "top-secret-kyte-fuzz"
#: Examples per operation and phase: enough for every operation, well under two minutes.
MAX_EXAMPLES = int(os.environ.get("KYTE_FUZZ_EXAMPLES", "40"))
CHECKS = os.environ.get("KYTE_FUZZ_CHECKS") or ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_schema_conformance", "response_headers_conformance", "unsupported_method",
    "missing_required_header", "ignored_auth", "use_after_free",
])  # fmt: skip

pytest.importorskip("schemathesis")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def fuzz_server(tmp_path: Path, kyte_template_root: Path) -> Iterator[tuple[str, Path, Path]]:
    """``(base_url, root_dir, sessions_root)`` of a jupyter server started for this test."""
    root, sessions = tmp_path / "root", tmp_path / "sessions"
    root.mkdir()
    shutil.copytree(kyte_template_root / ".templates", sessions / ".templates")
    (tmp_path / "secret.json").write_text(json.dumps({"nodes": [], "secret": SECRET}))
    (tmp_path / "secret.txt").write_text(SECRET)
    port = _free_port()
    env = {
        **os.environ,
        "KYTE_SESSIONS_ROOT": str(sessions),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    config = tmp_path / "server_config.json"
    config.write_text(
        json.dumps(
            {
                "ServerApp": {
                    "jpserver_extensions": {
                        "kyte_jupyter": True,
                        "jupyter_server_terminals": False,
                        "jupyterlab": False,
                    }
                }
            }
        )
    )
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={TOKEN}",
         "--ServerApp.allow_root=True", f"--config={config}"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                req = urllib.request.Request(
                    f"{base}/kyte/sessions", headers={"Authorization": f"token {TOKEN}"}
                )
                with urllib.request.urlopen(req, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
        yield base, root, sessions
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _listing(folder: Path, skip: tuple[Path, ...]) -> set[str]:
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        out.update(os.path.join(dirpath, f) for f in filenames)
    return out


def test_schemathesis_finds_no_server_errors(
    fuzz_server: tuple[str, Path, Path], tmp_path: Path
) -> None:
    base, root, sessions = fuzz_server
    (root / "nb.ipynb").write_text(json.dumps(
        {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    ))  # fmt: skip
    session = SessionStore(sessions).for_notebook(str(root / "nb.ipynb"))
    write_graph(session, etl_graph())
    add_run(session, "etl", RUN_ID, "running",
            [("extract", -1, "success", 1), ("double", 0, "success", 1)])  # fmt: skip
    write_log(session, "etl", RUN_ID, "extract", 1, b"line one\nline two ERROR\n")

    spec: dict[str, Any] = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
    params = spec["components"]["parameters"]
    for name, value in (("SessionId", session.id), ("DagId", "etl"), ("RunId", RUN_ID),
                        ("TaskId", "extract")):  # fmt: skip
        params[name]["example"] = value
        params[name]["schema"].pop("example", None)
    spec["paths"]["/kyte/export"]["post"]["requestBody"]["content"]["application/json"][
        "example"] = {"path": "nb.ipynb"}  # fmt: skip
    schema_file = tmp_path / "openapi.json"
    schema_file.write_text(json.dumps(spec))
    work = tmp_path / "schemathesis"
    work.mkdir()
    outside_before = _listing(tmp_path, (root, sessions, work))
    har = tmp_path / "fuzz.har"

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", str(schema_file), "--url", base,
         "-H", f"Authorization: token {TOKEN}", "--checks", CHECKS,
         "--max-examples", str(MAX_EXAMPLES), "--seed", "13", "--workers", "1",
         "--phases", "examples,coverage,fuzzing", "--request-timeout", "20",
         "--generation-allow-x00", "false", "--no-color", "--report", "har",
         "--report-har-path", str(har)],
        capture_output=True, text=True, timeout=300, cwd=work,  # its caches stay there
    )  # fmt: skip
    elapsed = time.monotonic() - started
    summary = done.stdout[-4000:]
    print(summary)
    assert done.returncode == 0, summary + done.stderr[-2000:]
    cases = re.search(r"(\d+) generated", summary)
    # Its time is bounded by --max-examples, not asserted (a loaded machine is no failure).
    print(f"schemathesis: {cases.group(1) if cases else '?'} cases in {elapsed:.0f}s")

    # Nothing outside the roots was written, and no answer carried what lies next to them.
    assert _listing(tmp_path, (root, sessions, work)) - outside_before <= {str(har)}
    assert SECRET not in har.read_text(errors="replace")
