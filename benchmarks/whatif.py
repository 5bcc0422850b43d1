"""What-if experiments inside a benchmark kernel: how much each of Kyte's choices saves.

NOT for production: these patch Kyte (and Airflow objects) at run time so that a choice can be
measured against its alternative in the same kernel, interleaved. ``apply("http")`` turns
variants on, ``restore()`` turns everything off again. Variants:

* ``http`` — every execution-API call of a try goes through Airflow's in-process FastAPI app
  (a2wsgi, middlewares, Cadwyn, dependency solving, AnyIO worker threads), as ``dag.test()``
  does and as Kyte did before ``kyte_jupyter.bridge.execution.DirectTransport``. Same effect as
  starting the kernel with ``KYTE_EXECUTION_API=http``;
* ``setupmemo`` — Kyte's scheduler DAG answers ``get_upstreams_only_setups()`` without walking
  every ancestor of the task again on each evaluation (a DAG without setup tasks has none to
  find). Affects ``%run_dag``, not a single ``%run_task``.
"""

from __future__ import annotations

from typing import Any

_undo: list[Any] = []


def _http() -> None:
    import os

    from kyte_jupyter import bridge

    before = os.environ.get("KYTE_EXECUTION_API")
    os.environ["KYTE_EXECUTION_API"] = "http"
    bridge.current().drop_client()  # the next try builds its client as the setting says

    def undo() -> None:
        if before is None:
            os.environ.pop("KYTE_EXECUTION_API", None)
        else:
            os.environ["KYTE_EXECUTION_API"] = before
        bridge.current().drop_client()

    _undo.append(undo)


def _setup_memo() -> None:
    import functools

    from kyte_jupyter.bridge import Bridge

    original = Bridge.scheduler_dag
    touched: list[Any] = []

    def scheduler_dag(self: Bridge, dag: Any) -> Any:
        sdag = original(self, dag)
        if "get_upstreams_only_setups" not in vars(sdag.tasks[0]):
            has_setups = any(t.is_setup for t in sdag.tasks)
            for t in sdag.tasks:
                if has_setups:
                    walk = t.get_upstreams_only_setups
                    t.get_upstreams_only_setups = functools.cache(lambda w=walk: tuple(w()))
                else:
                    t.get_upstreams_only_setups = tuple
            touched.append(sdag)
        return sdag

    def undo() -> None:
        Bridge.scheduler_dag = original  # type: ignore[method-assign]
        for sdag in touched:
            for t in sdag.tasks:
                vars(t).pop("get_upstreams_only_setups", None)

    Bridge.scheduler_dag = scheduler_dag  # type: ignore[method-assign]
    _undo.append(undo)


def apply(variants: str) -> None:
    """Turn on a comma-separated set of variants (after turning everything off)."""
    restore()
    names = {v.strip() for v in variants.split(",") if v.strip()}
    unknown = names - {"http", "setupmemo"}
    if unknown:
        raise ValueError(f"unknown what-if variants: {sorted(unknown)}")
    if "http" in names:
        _http()
    if "setupmemo" in names:
        _setup_memo()


def restore() -> None:
    """Turn every variant off."""
    while _undo:
        _undo.pop()()
