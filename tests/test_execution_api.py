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


def test_direct_transport_answers_as_the_stock_app(make_kernel):
    k = make_kernel()
    k.ok(DAG_CELL)
    k.ok("_last = %run_dag parity")
    k.ok(
        "from airflow.models.taskinstance import TaskInstance as _TI\n"
        "from airflow.utils.session import create_session as _cs\n"
        "with _cs() as _s:\n"
        "    _ti_ids = {t.task_id: str(t.id) for t in _s.query(_TI).filter_by(run_id=_last.run_id)}"
    )
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
