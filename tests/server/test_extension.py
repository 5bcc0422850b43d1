"""The extension as a whole: auth, OpenAPI in step, export, kernels, renames, no Airflow."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nbformat
import pytest
import yaml
from jupyter_server.utils import url_path_join
from server_homes import RUN_ID, write_log
from tornado.httpclient import HTTPClientError

from kyte_jupyter.server.app import KERNEL_MANAGER_CLASS
from kyte_jupyter.server.handlers import MAX_BODY_SIZE, KyteHandler, all_routes, route_pattern
from kyte_jupyter.server.kernels import KyteKernelManager
from kyte_jupyter.session import Session, SessionStore

REPO = Path(__file__).resolve().parents[2]
OPENAPI = REPO / "docs" / "openapi.yaml"
VERBS = ("get", "post", "put", "patch", "delete")
AIRFLOW_PRELOADED = "airflow" in sys.modules


def sample_url(template: str, session_id: str = "nb-0123456789") -> str:
    values = {"session_id": session_id, "dag_id": "etl", "run_id": quote(RUN_ID, safe=""),
              "task_id": "extract", "number": "1"}  # fmt: skip
    return template.format(**values).lstrip("/")


async def status_of(fetch: Any, *parts: str, **kwargs: Any) -> int:
    try:
        response = await fetch(*parts, **kwargs)
    except HTTPClientError as e:
        return e.code
    return int(response.code)


# ---- auth ---------------------------------------------------------------------------------------


async def test_every_route_refuses_unauthenticated_calls(
    http_server_client: Any, jp_base_url: str, etl_session: Session
) -> None:
    for template, handler in all_routes():
        url = url_path_join(jp_base_url, sample_url(template, etl_session.id))
        for verb in VERBS:
            if verb not in vars(handler):
                continue
            for headers in ({}, {"Authorization": "token wrong-token"}):
                kwargs: dict[str, Any] = {"method": verb.upper(), "headers": headers}
                if verb in ("post", "put", "patch"):
                    kwargs["body"] = json.dumps({"path": "nb.ipynb"})
                with pytest.raises(HTTPClientError) as info:
                    await http_server_client.fetch(url, **kwargs)
                assert info.value.code in (401, 403), (verb, url, headers)
                assert info.value.response is not None
                assert etl_session.id.encode() not in info.value.response.body
    assert etl_session.home.exists()


# ---- OpenAPI ------------------------------------------------------------------------------------


def _kyte_rules(router: Any) -> dict[str, type]:
    found: dict[str, type] = {}
    for rule in getattr(router, "rules", []):
        target = rule.target
        if isinstance(target, type) and issubclass(target, KyteHandler):
            found[rule.matcher.regex.pattern] = target
        elif hasattr(target, "rules"):
            found.update(_kyte_rules(target))
    return found


def test_openapi_matches_the_registered_handlers(jp_serverapp: Any, jp_base_url: str) -> None:
    spec = yaml.safe_load(OPENAPI.read_text())
    assert spec["openapi"].startswith("3.")
    paths: dict[str, Any] = spec["paths"]

    registered = _kyte_rules(jp_serverapp.web_app.default_router)
    documented = {
        url_path_join(jp_base_url, route_pattern(path)) + "$": path for path in paths
    }  # fmt: skip
    assert set(registered) == set(documented), "docs/openapi.yaml and the routes differ"

    for pattern, handler in registered.items():
        path = documented[pattern]
        implemented = {v for v in VERBS if v in vars(handler)}
        described = {v for v in VERBS if v in paths[path]}
        assert implemented == described, path
        params = [p for p in paths[path].get("parameters", []) if "$ref" not in p]
        refs = [p["$ref"].rsplit("/", 1)[-1] for p in paths[path].get("parameters", [])
                if "$ref" in p]  # fmt: skip
        names = {p["name"] for p in params if p["in"] == "path"}
        names |= {spec["components"]["parameters"][r]["name"] for r in refs}
        template_names = set(__import__("re").findall(r"\{(\w+)\}", path))
        assert names == template_names, path
        for verb in described:
            assert "403" in paths[path][verb]["responses"], (path, verb)
            method = vars(handler)[verb]
            # @web.authenticated and @authorized both wrap the verb (functools.wraps).
            assert hasattr(method, "__wrapped__") and hasattr(method.__wrapped__, "__wrapped__")


# ---- export -------------------------------------------------------------------------------------

DAG_CELL = """%%dag
import pendulum
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("hello", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
"""

SCENARIO_DAG_CELL = """%%dag
import pendulum
from airflow.sdk import DAG, task

with DAG("hello", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:

    @task
    def a():
        return 1

    @task
    def b(x):
        return x

    b(a())
"""


def write_notebook(path: Path, *cells: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, str(path))


async def test_export_writes_dag_files_and_audits(
    jp_fetch: Any, jp_root_dir: Path, make_session: Any
) -> None:
    write_notebook(jp_root_dir / "proj" / "nb.ipynb", DAG_CELL)
    session = make_session("proj/nb.ipynb")
    response = await jp_fetch(
        "kyte", "export", method="POST", body=json.dumps({"path": "proj/nb.ipynb"})
    )
    files = json.loads(response.body)["files"]
    assert files == ["proj/dags/hello.py"]
    assert "EmptyOperator" in (jp_root_dir / "proj" / "dags" / "hello.py").read_text()

    response = await jp_fetch(
        "kyte", "export", method="POST",
        body=json.dumps({"path": "proj/nb.ipynb", "dag_id": "hello", "output": "out"}),
    )  # fmt: skip
    assert json.loads(response.body)["files"] == ["out/hello.py"]
    actions = [e for e in session.read_audit() if e["action"] == "export"]
    assert [e["outcome"] for e in actions] == ["ok", "ok"]
    assert actions[1]["files"] == ["out/hello.py"]


async def test_export_problems_are_400_with_the_list(
    jp_fetch: Any, jp_root_dir: Path, make_session: Any
) -> None:
    write_notebook(jp_root_dir / "nb.ipynb", DAG_CELL)
    session = make_session("nb.ipynb")
    (jp_root_dir / "dags").mkdir()
    (jp_root_dir / "dags" / "hello.py").write_text("# my own file\n")
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("kyte", "export", method="POST", body=json.dumps({"path": "nb.ipynb"}))
    assert info.value.code == 400 and info.value.response is not None
    body = json.loads(info.value.response.body)
    assert body["problems"] and "not written by Kyte" in body["problems"][0]
    assert (jp_root_dir / "dags" / "hello.py").read_text() == "# my own file\n"
    assert session.read_audit()[-1]["outcome"] == "error"
    forced = await jp_fetch(
        "kyte", "export", method="POST", body=json.dumps({"path": "nb.ipynb", "force": True})
    )
    assert json.loads(forced.body)["files"] == ["dags/hello.py"]


async def test_export_with_tests_writes_the_scenarios_as_pytest_files(
    jp_fetch: Any, jp_root_dir: Path, make_session: Any
) -> None:
    """``"tests": true`` (the UI export dialog's option) is ``jupyter kyte export --tests``."""
    scenario = '%%scenario "b fails" hello\nfail: [b]\nexpect:\n  a: success\n  b: failed\n'
    # (`with DAG(...) as dag`: the test writer finds DAGs by the exported file's names.)
    write_notebook(jp_root_dir / "nb.ipynb", SCENARIO_DAG_CELL, scenario)
    session = make_session("nb.ipynb")
    # The tests are written in a subprocess that imports Airflow and the DAG file: not quick.
    response = await jp_fetch(
        "kyte", "export", method="POST", request_timeout=300,
        body=json.dumps({"path": "nb.ipynb", "tests": True}),
    )  # fmt: skip
    reply = json.loads(response.body)
    assert reply == {"files": ["dags/hello.py"], "tests": ["dags/test_hello.py"]}
    assert "def test_" in (jp_root_dir / "dags" / "test_hello.py").read_text()
    assert session.read_audit()[-1]["tests"] == ["dags/test_hello.py"]
    # Without the option, no test file is (re)written. (A bad scenario's 400 is left untested:
    # one more Airflow import in a subprocess, for CI's time budget.)
    (jp_root_dir / "dags" / "test_hello.py").unlink()
    response = await jp_fetch(
        "kyte", "export", method="POST", body=json.dumps({"path": "nb.ipynb"})
    )
    assert json.loads(response.body)["tests"] == []
    assert not (jp_root_dir / "dags" / "test_hello.py").exists()


async def test_export_refuses_bad_requests(
    jp_fetch: Any, jp_root_dir: Path, tmp_path: Path
) -> None:
    write_notebook(jp_root_dir / "nb.ipynb", DAG_CELL)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    write_notebook(outside / "x.ipynb", DAG_CELL)
    (jp_root_dir / "link-out").symlink_to(outside)
    cases: list[tuple[Any, int]] = [
        ({"path": "../elsewhere/x.ipynb"}, 400),
        ({"path": str(outside / "x.ipynb")}, 400),
        ({"path": "nb.ipynb", "output": "../elsewhere"}, 400),
        ({"path": "nb.ipynb", "output": "/tmp"}, 400),
        ({"path": "link-out/x.ipynb"}, 403),
        ({"path": "nb.ipynb", "output": "link-out"}, 403),
        ({"path": "missing.ipynb"}, 404),
        ({"path": "nb.ipynb", "force": "yes"}, 400),
        ({"path": "nb.ipynb", "tests": 1}, 400),
        ({"path": 3}, 400),
        ({}, 400),
        (["nb.ipynb"], 400),
    ]
    for body, code in cases:
        assert await status_of(jp_fetch, "kyte", "export", method="POST",
                               body=json.dumps(body)) == code, body  # fmt: skip
    assert await status_of(jp_fetch, "kyte", "export", method="POST", body="{nope") == 400
    assert not (outside / "dags").exists()


async def test_export_refuses_oversized_bodies(
    jp_fetch: Any, http_server_port: Any, jp_base_url: str, jp_auth_header: dict[str, str]
) -> None:
    huge = json.dumps({"path": "nb.ipynb", "pad": "x" * (MAX_BODY_SIZE + 10)})
    try:
        code = await status_of(jp_fetch, "kyte", "export", method="POST", body=huge)
    except OSError:  # the server may close the connection while the client still writes
        code = 413
    assert code == 413
    # A declared length over the limit is refused before any of the body is read.
    port = http_server_port[-1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"POST {jp_base_url}kyte/export HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: {jp_auth_header['Authorization']}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {50 * MAX_BODY_SIZE}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert b" 413 " in status_line


# ---- renames ------------------------------------------------------------------------------------


async def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_renamed_notebook_keeps_its_session(
    jp_fetch: Any, jp_root_dir: Path, make_session: Any, store: SessionStore
) -> None:
    write_notebook(jp_root_dir / "a.ipynb", "1")
    (jp_root_dir / "moved").mkdir()
    session = make_session("a.ipynb")
    await jp_fetch("api", "contents", "a.ipynb", method="PATCH",
                   body=json.dumps({"path": "moved/b.ipynb"}))  # fmt: skip
    target = str(jp_root_dir / "moved" / "b.ipynb")
    # The listener re-keys the session, then records it: wait for the record, which comes last.
    await _wait_for(lambda: session.read_audit()[-1]["action"] == "session.rename")
    found = store.find(target)
    assert found is not None and found.id == session.id and found.home == session.home
    assert store.find(str(jp_root_dir / "a.ipynb")) is None
    listed = json.loads((await jp_fetch("kyte", "sessions")).body)
    assert [s["path"] for s in listed] == ["moved/b.ipynb"]


async def test_renamed_folder_moves_the_sessions_inside(
    jp_fetch: Any, jp_root_dir: Path, make_session: Any, store: SessionStore
) -> None:
    write_notebook(jp_root_dir / "proj" / "sub" / "x.ipynb", "1")
    session = make_session("proj/sub/x.ipynb")
    other = make_session("project-b/y.ipynb")  # shares a prefix, must not move
    await jp_fetch("api", "contents", "proj", method="PATCH",
                   body=json.dumps({"path": "proj2"}))  # fmt: skip
    target = str(jp_root_dir / "proj2" / "sub" / "x.ipynb")
    await _wait_for(lambda: store.find(target) is not None)
    assert store.find(target).id == session.id  # type: ignore[union-attr]
    assert store.find(other.notebook_path).id == other.id  # type: ignore[union-attr]


async def test_rename_onto_a_deleted_notebooks_path(
    jp_fetch: Any, jp_root_dir: Path, make_session: Any, store: SessionStore
) -> None:
    stale = make_session("c.ipynb")  # c.ipynb was deleted; its home stays
    write_notebook(jp_root_dir / "d.ipynb", "1")
    moving = make_session("d.ipynb")
    await jp_fetch("api", "contents", "d.ipynb", method="PATCH",
                   body=json.dumps({"path": "c.ipynb"}))  # fmt: skip
    target = str(jp_root_dir / "c.ipynb")
    await _wait_for(lambda: getattr(store.find(target), "id", None) == moving.id)
    kept = store.get(stale.id)
    assert kept.home.exists() and kept.notebook_path.startswith(target + ".detached-")


# ---- kernels ------------------------------------------------------------------------------------


async def _execute(kc: Any, code: str) -> str:
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = await kc.execute_interactive(code, output_hook=hook, timeout=90)
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out)


PROBE = (
    "import os\n"
    "print(os.environ.get('AIRFLOW_HOME'))\n"
    "print(os.environ.get('KYTE_SESSION_HOME'))\n"
    "print(os.environ.get('KYTE_TEST_EXTRA'))\n"
    "print('kyte_jupyter' in get_ipython().extension_manager.loaded)\n"
)


async def _probe(jp_serverapp: Any, kernel_id: str) -> list[str]:
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=90)
        return (await _execute(kc, PROBE)).split()
    finally:
        kc.stop_channels()


PRELOAD_DIR = Path(__file__).parent / "preload"
KERNEL_CONFIG = {
    "extra_env": {"KYTE_TEST_EXTRA": "from-config"},
    "airflow_config": {"core": {"default_task_retries": 2}},
    "connections_files": [str(PRELOAD_DIR / "connections.yaml")],
    "variables_files": [str(PRELOAD_DIR / "variables.json")],
}


@pytest.mark.parametrize("kyte_extension_config", [KERNEL_CONFIG], indirect=True)
@pytest.mark.timeout(300)
async def test_notebook_kernel_starts_in_its_session_with_the_magics(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path, store: SessionStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A server started by a user has no AIRFLOW_HOME of its own (the test process has one,
    # tests/conftest.py): a console kernel must inherit exactly what the server has.
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    write_notebook(jp_root_dir / "work" / "nb.ipynb", "1")
    body = {"path": "work/nb.ipynb", "name": "nb.ipynb", "type": "notebook",
            "kernel": {"name": "python3"}}  # fmt: skip
    model = json.loads((await jp_fetch("api", "sessions", method="POST",
                                       body=json.dumps(body))).body)  # fmt: skip
    kernel_id = model["kernel"]["id"]
    session = store.find(str(jp_root_dir / "work" / "nb.ipynb"))
    assert session is not None, "the server creates the notebook's home at kernel start"
    # Operator configuration reaches the new home.
    assert "[core]\ndefault_task_retries = 2\n" in (session.home / "airflow.cfg").read_text()
    # The operator's preload files are copied into the home, for the kernel to import.
    assert session.extra["preload"] == {
        "connections": ["kyte/preload/connections-0.yaml"],
        "variables": ["kyte/preload/variables-0.json"],
    }
    assert "warehouse" in (session.home / "kyte/preload/connections-0.yaml").read_text()
    assert await _probe(jp_serverapp, kernel_id) == [
        str(session.home), str(session.home), "from-config", "True"
    ]  # fmt: skip

    # The home of a notebook whose kernel runs cannot be deleted under it.
    code = await status_of(jp_fetch, "kyte", "sessions", session.id, method="DELETE")
    assert code == 409

    # A restarted kernel gets the same environment and magics again.
    await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="{}")
    assert await _probe(jp_serverapp, kernel_id) == [
        str(session.home), str(session.home), "from-config", "True"
    ]  # fmt: skip

    # A console is not a notebook: its kernel starts untouched.
    console = {"path": "console-1", "name": "Console 1", "type": "console",
               "kernel": {"name": "python3"}}  # fmt: skip
    cmodel = json.loads((await jp_fetch("api", "sessions", method="POST",
                                        body=json.dumps(console))).body)  # fmt: skip
    assert (await _probe(jp_serverapp, cmodel["kernel"]["id"]))[:4] == [
        "None", "None", "None", "False"
    ]  # fmt: skip

    for sid in (model["id"], cmodel["id"]):
        await jp_fetch("api", "sessions", sid, method="DELETE")
    assert await status_of(jp_fetch, "kyte", "sessions", session.id, method="DELETE") == 204


# ---- the server process never imports Airflow ---------------------------------------------------


# Only meaningful in a process nothing else imported Airflow into: the test below runs it in
# a fresh interpreter (the whole suite's processes have imported Airflow long before).
AIRFLOW_FREE = "KYTE_AIRFLOW_FREE_CHECK" in os.environ


def test_serving_the_api_does_not_import_airflow() -> None:
    """Every handler the sidebar and export use, served without importing Airflow (checked in
    a fresh interpreter by :func:`check_served_without_airflow`)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", f"{__file__}::check_served_without_airflow",
         "-p", "no:xdist", "-p", "no:cacheprovider", "-q", "-o", "python_functions=check_*"],
        env={**os.environ, "KYTE_AIRFLOW_FREE_CHECK": "1"}, cwd=REPO,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0 and "1 passed" in proc.stdout, (
        proc.stdout[-3000:] + proc.stderr[-2000:])


async def check_served_without_airflow(
    jp_fetch: Any, jp_root_dir: Path, etl_session: Session
) -> None:
    assert AIRFLOW_FREE and not AIRFLOW_PRELOADED, (
        "run by test_serving_the_api_does_not_import_airflow")
    write_log(etl_session, "etl", RUN_ID, "extract", 1, b"hello\n")
    write_notebook(jp_root_dir / "nb.ipynb", DAG_CELL)
    sid = etl_session.id
    for parts in (
        ["kyte", "sessions"],
        ["kyte", "sessions", sid],
        ["kyte", "sessions", sid, "dags"],
        ["kyte", "sessions", sid, "dags", "etl", "runs"],
        ["kyte", "sessions", sid, "dags", "etl", "runs", RUN_ID, "tasks"],
        ["kyte", "sessions", sid, "dags", "etl", "runs", RUN_ID, "tasks", "extract", "logs"],
        ["kyte", "sessions", sid, "audit"],
    ):
        await jp_fetch(*parts)
    await jp_fetch("kyte", "export", method="POST", body=json.dumps({"path": "nb.ipynb"}))
    assert not [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")]


# ---- installation -------------------------------------------------------------------------------


def test_the_config_files_enable_the_extension_and_its_kernel_manager(tmp_path: Path) -> None:
    """What pip installs into etc/jupyter turns Kyte and its kernel manager on.

    ``jupyter_server_config.d/*.json`` only contribute ``jpserver_extensions``; the kernel
    manager comes from the extension's own ``jupyter_kyte_config.json``, which jupyter-server
    merges into the server's config when it links the extension (before kernels exist).
    """
    config_dir = tmp_path / "config"
    (config_dir / "jupyter_server_config.d").mkdir(parents=True)
    shutil.copy(REPO / "jupyter-config" / "server-config" / "kyte_jupyter.json",
                config_dir / "jupyter_server_config.d")  # fmt: skip
    shutil.copy(REPO / "jupyter-config" / "kyte-config" / "jupyter_kyte_config.json", config_dir)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config_dir), "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_server.extension.serverextension", "list"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    section = output.split(f"Config dir: {config_dir}", 1)[1].split("Config dir:")[0]
    assert "kyte_jupyter" in section and "enabled" in section and "OK" in section, output


def test_installed_config_selects_the_kyte_kernel_manager(jp_serverapp: Any) -> None:
    # jp_server_config sets no kernel manager: it comes from jupyter_kyte_config.json.
    assert "kernel_manager_class" not in jp_serverapp.config.ServerApp or (
        jp_serverapp.config.ServerApp.kernel_manager_class == KERNEL_MANAGER_CLASS
    )
    assert isinstance(jp_serverapp.kernel_manager, KyteKernelManager)
    assert jp_serverapp.kernel_manager.kyte_service is not None


# ---- end to end: a real kernel runs a real DAG, the API follows it ------------------------------

LIVE_DAG = """%%dag
import time
import pendulum
from airflow.sdk import DAG, task

with DAG("live", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    @task
    def slow():
        for i in range(8):
            print(f"tick {i} <b>not html</b>", flush=True)
            time.sleep(0.5)

    @task
    def after():
        print("done")

    slow() >> after()
"""


@pytest.mark.timeout(300)
async def test_api_follows_a_dag_run_by_the_notebook_kernel(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    """The kernel's graph snapshot, states and logs are what the sidebar reads, live."""
    write_notebook(jp_root_dir / "live.ipynb", "1")
    body = {"path": "live.ipynb", "name": "live.ipynb", "type": "notebook",
            "kernel": {"name": "python3"}}  # fmt: skip
    model = json.loads((await jp_fetch("api", "sessions", method="POST",
                                       body=json.dumps(body))).body)  # fmt: skip
    kc = jp_serverapp.kernel_manager.get_kernel(model["kernel"]["id"]).client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=90)
        await _execute(kc, LIVE_DAG)
        sessions = json.loads((await jp_fetch("kyte", "sessions",
                                              params={"path": "live.ipynb"})).body)  # fmt: skip
        sid = sessions[0]["id"]

        async def dag() -> dict[str, Any]:
            dags = json.loads((await jp_fetch("kyte", "sessions", sid, "dags")).body)
            return next(d for d in dags if d["dag_id"] == "live")

        before = await dag()
        assert before["edges"] == [["slow", "after"]] and before["source"] == "notebook"
        assert {n["task_id"]: n["state"] for n in before["nodes"]} == {
            "slow": None, "after": None
        }  # fmt: skip

        run = asyncio.ensure_future(_execute(kc, "r = %run_dag live"))

        async def slow_log(offset: int = 0) -> dict[str, Any]:
            run_id = (await dag())["latest_run"]["run_id"]
            return dict(json.loads((await jp_fetch(
                "kyte", "sessions", sid, "dags", "live", "runs", run_id, "tasks", "slow",
                "logs", params={"offset": offset})).body))  # fmt: skip

        # The task prints "tick 0" once Airflow has marked it running: from the moment its
        # log shows that, the graph must show it running within a second.
        seen_state = seen_log = None
        timeline = []
        for _ in range(1200):
            current = await dag()
            state = next(n for n in current["nodes"] if n["task_id"] == "slow")["state"]
            now = time.monotonic()
            logged = current["latest_run"] is not None and "tick 0" in (await slow_log())["text"]
            timeline.append((round(now, 2), state, logged))
            if state == "running" and seen_state is None:
                seen_state = now
            if logged and seen_log is None:
                seen_log = now
            if seen_state is not None and seen_log is not None:
                break
            assert not run.done(), f"the run ended before the API saw it: {timeline}"
            await asyncio.sleep(0.05)
        assert seen_state is not None and seen_log is not None, timeline
        assert seen_state - seen_log < 1.0, timeline
        run_id = current["latest_run"]["run_id"]

        # Follow the growing log by byte offsets until the try is complete.
        text, offset = "", 0
        for _ in range(300):
            got = json.loads((await jp_fetch(
                "kyte", "sessions", sid, "dags", "live", "runs", run_id, "tasks", "slow",
                "logs", params={"offset": offset})).body)  # fmt: skip
            text += got["text"]
            offset = got["next_offset"]
            if got["complete"]:
                break
            await asyncio.sleep(0.1)
        assert got["complete"] and got["state"] == "success" and got["tries"] == [1]
        assert "tick 0 <b>not html</b>" in text and "tick 7" in text
        await run

        final = await dag()
        assert final["latest_run"]["state"] == "success"
        assert {n["task_id"]: n["state"] for n in final["nodes"]} == {
            "slow": "success", "after": "success"
        }  # fmt: skip
        audit = json.loads((await jp_fetch("kyte", "sessions", sid, "audit")).body)
        assert "dag.define" in [e["action"] for e in audit]
    finally:
        kc.stop_channels()
        await jp_fetch("api", "sessions", model["id"], method="DELETE")
