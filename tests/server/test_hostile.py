"""Hostile but well-formed REST input (issue 13.3-13.6): 4xx JSON, never 500, nothing read or
written outside the roots, and a refused request leaves its keep-alive connection usable."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nbformat
import pytest
from server_homes import RUN_ID, write_log
from tornado.httpclient import HTTPClientError

from kyte_jupyter.server.handlers import MAX_BODY_SIZE
from kyte_jupyter.session import Session

DAG_CELL = """%%dag
import pendulum
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("hello", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
"""


def write_notebook(path: Path, *cells: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, str(path))


async def answer(http_server_client: Any, url: str, **kwargs: Any) -> tuple[int, Any]:
    """Status and JSON body of any request (errors included)."""
    try:
        response = await http_server_client.fetch(url, **kwargs)
    except HTTPClientError as e:
        response = e.response
        assert response is not None, url
    body = response.body
    if response.code == 204:
        return 204, None
    assert response.headers["Content-Type"].startswith("application/json"), (url, body[:200])
    data = json.loads(body)
    return int(response.code), data


# ---- 13.3: export through a symbolic link -----------------------------------------------------


async def test_export_into_a_symlinked_default_dags_folder_is_refused(
    jp_fetch: Any, jp_root_dir: Path, tmp_path: Path, make_session: Any
) -> None:
    write_notebook(jp_root_dir / "proj" / "exp.ipynb", DAG_CELL)
    session = make_session("proj/exp.ipynb")
    outside = tmp_path / "outside-dags"
    outside.mkdir()
    (jp_root_dir / "proj" / "dags").symlink_to(outside)
    for body in ({"path": "proj/exp.ipynb"}, {"path": "proj/exp.ipynb", "output": "proj/dags"},
                 {"path": "proj/./exp.ipynb"}):  # fmt: skip
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("kyte", "export", method="POST", body=json.dumps(body))
        assert info.value.code == 403, body
        assert info.value.response is not None
        assert "symbolic link" in json.loads(info.value.response.body)["message"]
    assert list(outside.iterdir()) == []
    assert not [e for e in session.read_audit() if e["action"] == "export"]
    # A link inside the root is fine.
    (jp_root_dir / "proj" / "dags").unlink()
    (jp_root_dir / "real-dags").mkdir()
    (jp_root_dir / "proj" / "dags").symlink_to(jp_root_dir / "real-dags")
    response = await jp_fetch("kyte", "export", method="POST",
                              body=json.dumps({"path": "proj/exp.ipynb"}))  # fmt: skip
    assert json.loads(response.body)["files"] == ["proj/dags/hello.py"]
    assert (jp_root_dir / "real-dags" / "hello.py").is_file()


# ---- 13.4: ids are ids --------------------------------------------------------------------------


async def test_a_dag_id_that_is_a_path_probes_nothing(
    http_server_client: Any, jp_base_url: str, jp_auth_header: Any, etl_session: Session,
    tmp_path: Path,
) -> None:  # fmt: skip
    (tmp_path / "secret.json").write_text('{"nodes": []}')
    base = f"{jp_base_url}kyte/sessions/{etl_session.id}/dags"
    answers = []
    for name in ("secret", "missing"):
        probe = quote(str(tmp_path / name), safe="")
        for suffix in ("runs", f"runs/{quote(RUN_ID, safe='')}/tasks",
                       f"runs/{quote(RUN_ID, safe='')}/tasks/extract/logs"):  # fmt: skip
            code, body = await answer(
                http_server_client, f"{base}/{probe}/{suffix}", headers=jp_auth_header
            )
            assert code == 400 and body is not None, (name, suffix)
            answers.append((suffix, code, body["message"].replace(name, "X")))
    assert answers[:3] == answers[3:]  # the same answer whether the file exists or not


@pytest.mark.parametrize(
    "label,value",
    [
        ("dag_id", "a/b"), ("dag_id", ".."), ("dag_id", "a..b"), ("dag_id", "x" * 251),
        ("dag_id", "etl\n"), ("dag_id", "a b"), ("dag_id", "a\0b"), ("run_id", "r/1"),
        ("run_id", "r 1"), ("run_id", "..%2f"), ("run_id", "r" * 251), ("task_id", "t/../x"),
        ("task_id", "x" * 5000), ("task_id", "t;drop"),
    ],
)  # fmt: skip
async def test_invalid_ids_are_400_before_any_lookup(
    http_server_client: Any, jp_base_url: str, jp_auth_header: Any, etl_session: Session,
    label: str, value: str,
) -> None:  # fmt: skip
    ids = {"dag_id": "etl", "run_id": RUN_ID, "task_id": "extract", label: value}
    q = {k: quote(v, safe="") for k, v in ids.items()}
    base = f"{jp_base_url}kyte/sessions/{etl_session.id}/dags/{q['dag_id']}/runs"
    urls = [f"{base}/{q['run_id']}/tasks/{q['task_id']}/logs",
            f"{base}/{q['run_id']}/tasks/{q['task_id']}/logs?search=x"]  # fmt: skip
    if label != "task_id":
        urls.append(f"{base}/{q['run_id']}/tasks")
    if label == "dag_id":
        urls.append(base)
    for url in urls:
        code, body = await answer(http_server_client, url, headers=jp_auth_header)
        assert code in (400, 404) and body is not None, url  # 404: tornado's own URL rules
        if code == 400:
            assert label in body["message"], url


# ---- 13.5: 500 instead of 4xx -----------------------------------------------------------------


async def test_hostile_well_formed_input_is_4xx_json(
    http_server_client: Any, jp_base_url: str, jp_auth_header: Any, etl_session: Session,
    jp_root_dir: Path,
) -> None:  # fmt: skip
    write_log(etl_session, "etl", RUN_ID, "extract", 1, b"line one\nline two\n")
    write_notebook(jp_root_dir / "nb.ipynb", DAG_CELL)
    s = f"{jp_base_url}kyte/sessions/{etl_session.id}"
    log = f"{s}/dags/etl/runs/{quote(RUN_ID, safe='')}/tasks/extract/logs"
    big = "9" * 20
    gets = [
        f"{s}/dags/{'d' * 5000}/runs",
        f"{log}?map_index={big}", f"{log}?map_index=2147483648", f"{log}?try=0",
        f"{log}?try={big}", f"{log}?try=-1", f"{log}?offset={big}", f"{log}?offset=-{big}",
        f"{log}?offset=1e3", f"{log}?offset=0x10", f"{log}?limit={big}", f"{log}?limit=1_000",
        f"{log}?offset=%EF%BC%91", f"{log}?offset=1%202",f"{log}?map_index=" + "1" * 5000,
        f"{log}?search=", f"{log}?search={'x' * 1001}",
        f"{s}/dags/etl/runs?limit={big}", f"{s}/dags/etl/runs?limit=-1",
        f"{s}/dags/etl/runs?limit=10001", f"{s}/audit?limit={big}", f"{s}/audit?limit=0",
        f"{jp_base_url}kyte/sessions?path=/etc/passwd",
        f"{jp_base_url}kyte/sessions/{'s' * 5000}", f"{jp_base_url}kyte/sessions/{'s' * 5000}/dags",
    ]  # fmt: skip
    wrong = []
    for url in gets:
        code, body = await answer(http_server_client, url, headers=jp_auth_header)
        if not (400 <= code < 500 and body is not None and body["message"]):
            wrong.append((url[:120], code, body))
    assert not wrong
    code, found = await answer(http_server_client, f"{jp_base_url}kyte/sessions?path="
                               f"{'p' * 5000}.ipynb", headers=jp_auth_header)  # fmt: skip
    assert (code, found) == (200, [])
    posts: list[Any] = [
        {"path": "nb.ipynb", "output": "o" * 5000},
        {"path": "nb.ipynb", "output": "a/" * 3000},
        {"path": "nb.ipynb", "dag_id": "../../x"},
        {"path": "nb.ipynb", "dag_id": "d" * 5000},
        {"path": "p" * 5000 + ".ipynb"},
        {"path": "nb.ipynb", "output": "nb.ipynb"},
        {"path": "nb.ipynb", "output": "nb.ipynb/sub"},
        {"path": "nb.ipynb", "force": 1},
        {"path": "nb.ipynb", "extra": 1},
        {"path": "\ud800.ipynb"},
        {"path": "nb.ipynb", "dag_id": None, "output": None},
    ]
    for body in posts:
        code, reply = await answer(
            http_server_client, f"{jp_base_url}kyte/export", method="POST",
            body=json.dumps(body), headers=jp_auth_header,
        )  # fmt: skip
        if not (code < 500 and reply is not None):
            wrong.append((str(body)[:120], code, reply))
    assert not wrong
    assert sorted(p.name for p in jp_root_dir.iterdir()) == ["dags", "nb.ipynb"]


# ---- 13.6: keep-alive after an early refusal ------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status = await asyncio.wait_for(reader.readline(), 10)
    if not status:
        raise ConnectionResetError("closed")
    headers: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))), 10)
    return int(status.split()[1]), headers, body


async def keep_alive_resets(
    port: int, base_url: str, token_header: str, refused: str, body: bytes, rounds: int = 30
) -> tuple[int, int]:
    """On one connection: ``rounds`` x (a refused POST with a body, then a good GET).

    Returns ``(resets, polite_closes)``: GETs that failed on the connection, and refusals
    that said ``Connection: close`` (after which the client reconnects, as HTTP asks).
    """
    resets = closes = 0
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    good = (f"GET {base_url}kyte/sessions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: {token_header}\r\n\r\n").encode()  # fmt: skip
    try:
        for _ in range(rounds):
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = conn
            try:
                writer.write(refused.encode() + body)
                await writer.drain()
                status, headers, _ = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                resets += 1
                writer.close()
                conn = None
                continue
            assert 400 <= status < 500
            if headers.get("connection", "").lower() == "close":
                closes += 1
                writer.close()
                conn = None
                continue
            try:
                writer.write(good)
                await writer.drain()
                status, _, got = await _read_response(reader)
                assert status == 200, got
            except (ConnectionError, asyncio.IncompleteReadError):
                resets += 1
                writer.close()
                conn = None
    finally:
        if conn is not None:
            conn[1].close()
    return resets, closes


def _post(base_url: str, headers: str, length: int) -> str:
    return (f"POST {base_url}kyte/export HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n")  # fmt: skip


async def test_a_refused_export_keeps_the_connection_usable(
    http_server: Any,
    http_server_port: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    jp_root_dir: Path,
) -> None:
    port = http_server_port[-1]
    token = jp_auth_header["Authorization"]
    body = json.dumps({"path": "nb.ipynb", "pad": "x" * 20_000}).encode()
    refused_path = json.dumps({"path": "../x.ipynb", "pad": "x" * 20_000}).encode()
    cases = {  # refused before the body is read (auth, XSRF) or after it (a bad path)
        "unauthenticated": ("", body),
        "wrong token": ("Authorization: token nope\r\n", body),
        "no xsrf (cookie auth)": ("Cookie: _xsrf=abc\r\n", body),
        "refused path": (f"Authorization: {token}\r\n", refused_path),
    }
    counts = {}
    for name, (headers, payload) in cases.items():
        request = _post(jp_base_url, headers, len(payload))
        counts[name] = await keep_alive_resets(port, jp_base_url, token, request, payload)
    # Too big to read: refused at once, saying the connection closes (no reset either).
    # (A client that sent the body anyway may be reset: TCP resets a socket closed with
    # unread data; only "Expect: 100-continue" lets a client wait for the verdict.)
    huge = _post(jp_base_url, f"Authorization: {token}\r\nExpect: 100-continue\r\n",
                 50 * MAX_BODY_SIZE)  # fmt: skip
    counts["too big"] = await keep_alive_resets(port, jp_base_url, token, huge, b"", 5)
    print("keep-alive (resets, polite closes):", counts)
    assert counts == {"unauthenticated": (0, 0), "wrong token": (0, 0),
                      "no xsrf (cookie auth)": (0, 0), "refused path": (0, 0),
                      "too big": (0, 5)}  # fmt: skip
