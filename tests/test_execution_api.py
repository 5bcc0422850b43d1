"""Kyte's direct execution-API transport answers exactly as Airflow's in-process app does.

Tries normally go through ``kyte_jupyter.bridge.execution.DirectTransport``, which calls Airflow's
route functions without HTTP. Runs through it are compared with ``dag.test()`` in
``test_example_dags.py``; here the same requests — the error cases a task can meet — go to
both the direct transport and the stock FastAPI app (``DirectTransport.app_transport``) in a
real kernel, and the status codes and bodies must match.
"""

from __future__ import annotations

DAG_CELL = """\
%%dag
from airflow.sdk import DAG, task

with DAG("parity", schedule=None) as dag:
    @task
    def make():
        return {"rows": [1, 2, 3]}

    @task
    def use(data):
        return len(data["rows"])

    use(make())
"""

COMPARE = r"""
import json, uuid
import httpx
from kyte_jupyter.bridge import execution as _execution
from airflow.models.dagbag import DBDagBag
from airflow.sdk.api.datamodels._generated import API_VERSION

direct = _execution.DirectTransport(DBDagBag())
stock = direct.app_transport
run = _last.run_id
ti_id = _ti_ids["make"]
missing = str(uuid.UUID(int=1))
running = {"state": "running", "hostname": "h", "unixname": "u", "pid": 1,
           "start_date": "2026-01-01T00:00:00Z"}
cases = {
    "run unknown ti": ("PATCH", f"/task-instances/{missing}/run", running),
    "run finished ti": ("PATCH", f"/task-instances/{ti_id}/run", running),
    "run bad payload": ("PATCH", f"/task-instances/{ti_id}/run", {"state": "running"}),
    "state unknown ti": ("PATCH", f"/task-instances/{missing}/state",
                         {"state": "success", "end_date": "2026-01-01T00:00:00Z"}),
    "state bad payload": ("PATCH", f"/task-instances/{ti_id}/state", {"state": "nonsense"}),
    "rtif unknown ti": ("PUT", f"/task-instances/{missing}/rtif", {"a": "b"}),
    "xcom found": ("GET", f"/xcoms/parity/{run}/make/return_value", None),
    "xcom missing": ("GET", f"/xcoms/parity/{run}/use/nothing_here", None),
    "xcom missing index": ("GET", f"/xcoms/parity/{run}/make/return_value?map_index=4", None),
    "xcom delete missing": ("DELETE", f"/xcoms/parity/{run}/use/nothing_here", None),
    "xcom delete": ("DELETE", f"/xcoms/parity/{run}/make/return_value?map_index=-1", None),
}
results = {}
for name, (method, path, body) in cases.items():
    seen = []
    for transport in (direct, stock):
        request = httpx.Request(
            method, "http://in-process.invalid." + path,
            headers={"airflow-api-version": API_VERSION, "content-type": "application/json"},
            content=b"" if body is None else json.dumps(body).encode(),
        )
        response = transport.handle_request(request)
        response.read()
        seen.append((response.status_code, response.json() if response.content else None))
    results[name] = seen
"""


def _kernel_after_a_run(make_kernel):
    """A kernel that ran the parity DAG: ``_last`` (its summary), ``_ti_ids`` (task id → id)."""
    k = make_kernel()
    k.ok(DAG_CELL)
    k.ok("_last = %run_dag parity")
    k.ok(
        "from airflow.models.taskinstance import TaskInstance as _TI\n"
        "from airflow.utils.session import create_session as _cs\n"
        "with _cs() as _s:\n"
        "    _ti_ids = {t.task_id: str(t.id) for t in _s.query(_TI).filter_by(run_id=_last.run_id)}"
    )
    return k


def test_direct_transport_answers_as_the_stock_app(make_kernel):
    k = _kernel_after_a_run(make_kernel)
    k.ok(COMPARE)
    results = k.value("results")
    for name, (direct, stock) in results.items():
        assert direct == stock, f"{name}: direct {direct} != stock {stock}"
    # The cases cover what they claim: a hit, not-founds, conflicts and bad payloads.
    statuses = {name: pair[0][0] for name, pair in results.items()}
    assert statuses["xcom found"] == 200 and statuses["xcom delete"] == 200
    assert results["xcom found"][0][1]["value"] == {"rows": [1, 2, 3]}
    assert statuses["run unknown ti"] == 404 and statuses["xcom missing"] == 404
    assert statuses["run finished ti"] == 409
    assert statuses["run bad payload"] == 422 and statuses["state bad payload"] == 422


def test_stock_app_is_used_when_asked(make_kernel):
    """``KYTE_EXECUTION_API=http`` sends every call through Airflow's FastAPI app."""
    k = make_kernel(KYTE_EXECUTION_API="http")
    k.ok(DAG_CELL)
    r = k.ok("_last = %run_dag parity\nprint(_last.task_states)")
    assert "'use': 'success'" in r.stdout
    kind = k.value(
        "type(__import__('kyte_jupyter.bridge').bridge.current().client._transport).__name__"
    )
    assert kind != "DirectTransport"
    assert k.value("%xcom parity use") == 3


LANE = r"""
import json, uuid
import httpx
from airflow.api_fastapi.execution_api.app import _jwt_generator
from airflow.sdk.api.datamodels._generated import API_VERSION
from kyte_jupyter.bridge.executors import execution_api

url = execution_api().start().rstrip("/")
lane = execution_api().lane
gen = _jwt_generator()
run = _last.run_id
make, use = _ti_ids["make"], _ti_ids["use"]
missing = str(uuid.UUID(int=1))

def token(sub, scope="execution", valid_for=None):
    return gen.generate(extras={"sub": sub, "scope": scope}, valid_for=valid_for)

heartbeat = {"hostname": "h", "pid": 1}
running = {"state": "running", "hostname": "h", "unixname": "u", "pid": 1,
           "start_date": "2026-01-01T00:00:00Z"}
# name: (method, path, body, bearer token or None, whether the lane may answer it)
cases = {
    "no token": ("PUT", f"/task-instances/{make}/rtif", {"a": "b"}, None, False),
    "another ti's token": ("PUT", f"/task-instances/{make}/rtif", {"a": "b"}, token(use), False),
    "workload token on state": ("PATCH", f"/task-instances/{make}/state", {"state": "nonsense"},
                                token(make, "workload"), False),
    "forged token": ("GET", f"/xcoms/parity/{run}/make/return_value", None,
                     token(make)[:-4] + "AAAA", False),
    "token due for reissue": ("GET", f"/xcoms/parity/{run}/make/return_value", None,
                              token(make, valid_for=20), False),
    "heartbeat finished ti": ("PUT", f"/task-instances/{make}/heartbeat", heartbeat,
                              token(make), True),
    "two tokens": ("PUT", f"/task-instances/{make}/heartbeat", heartbeat, token(make), False),
    "run finished ti (workload)": ("PATCH", f"/task-instances/{make}/run", running,
                                   token(make, "workload"), True),
    "state bad payload": ("PATCH", f"/task-instances/{make}/state", {"state": "nonsense"},
                          token(make), True),
    "rtif unknown ti": ("PUT", f"/task-instances/{missing}/rtif", {"a": "b"}, token(missing), True),
    "xcom found": ("GET", f"/xcoms/parity/{run}/make/return_value", None, token(use), True),
    "xcom missing": ("GET", f"/xcoms/parity/{run}/use/nothing_here", None, token(use), True),
    "xcom bad query": ("GET", f"/xcoms/parity/{run}/make/return_value?map_index=x", None,
                       token(use), True),
    # An XCom key with an encoded "?" (decoded once, as Starlette decodes it).
    "xcom key with ?": ("GET", f"/xcoms/parity/{run}/make/a%3Fb", None, token(use), True),
    # Left to the app: a path that only ends like a hot route, a repeated query parameter,
    # a body not sent as JSON (FastAPI refuses it).
    "hot route under another path": ("GET", f"/xcoms/zz/xcoms/parity/{run}/make/return_value",
                                     None, token(use), False),
    "repeated query parameter": (
        "GET", f"/xcoms/parity/{run}/make/return_value?map_index=5&map_index=-1", None,
        token(use), False),
    "xcom set as text/plain": ("POST", f"/xcoms/parity/{run}/use/as_text", "1", token(use),
                               False),
}
results, served = {}, {}
with httpx.Client(timeout=120) as client:  # the first call to the app builds Cadwyn
    for name, (method, path, body, bearer, _lane) in cases.items():
        seen = []
        for on in (True, False):
            lane.on = on
            before = lane.served
            headers = [("airflow-api-version", API_VERSION)]
            if isinstance(body, str):  # sent as it is, as text
                headers.append(("content-type", "text/plain"))
                content = body.encode()
            else:
                headers.append(("content-type", "application/json"))
                content = b"" if body is None else json.dumps(body).encode()
            if bearer:
                headers.append(("authorization", f"Bearer {bearer}"))
            if name == "two tokens":  # the app reads the first
                headers.insert(0, ("authorization", f"Bearer {token(use)}"))
            r = client.request(method, url + path, headers=headers, content=content)
            if on:
                served[name] = lane.served - before
            seen.append((r.status_code, r.json() if r.content else None,
                         "refreshed-api-token" in r.headers,
                         r.headers.get("airflow-api-version")))
        lane.on = True
        results[name] = seen
lane_may = {name: case[4] for name, case in cases.items()}
"""


def test_session_api_fast_lane_answers_as_the_app(make_kernel):
    """Workers reach the session's execution API over HTTP; Kyte's fast lane answers the
    routes every try calls. Same status codes, bodies and token reissue as Airflow's app, and
    nothing served that the app's authentication would refuse."""
    k = _kernel_after_a_run(make_kernel)
    k.ok(LANE)
    results, served, lane_may = k.value("results"), k.value("served"), k.value("lane_may")
    for name, (lane, app) in results.items():
        assert lane == app, f"{name}: fast lane {lane} != app {app}"
        assert served[name] == int(lane_may[name]), (
            f"{name}: the lane {'did not serve' if lane_may[name] else 'served'} it")
    statuses = {name: pair[0][0] for name, pair in results.items()}
    assert statuses["no token"] == 401
    assert statuses["another ti's token"] == 403 and statuses["workload token on state"] == 403
    assert statuses["forged token"] == 403
    assert statuses["token due for reissue"] == 200 and results["token due for reissue"][0][2]
    assert statuses["heartbeat finished ti"] == 409
    assert statuses["run finished ti (workload)"] == 409
    assert statuses["state bad payload"] == 422 and statuses["rtif unknown ti"] == 404
    assert results["xcom found"][0][1]["value"] == {"rows": [1, 2, 3]}
    assert statuses["xcom missing"] == 404 and statuses["xcom bad query"] == 422
    assert statuses["two tokens"] == 403 and statuses["xcom set as text/plain"] == 422
    assert statuses["hot route under another path"] == 404
