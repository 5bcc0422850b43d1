"""DAGs between the notebook and the metastore: validation, serialization, registration.

Why internal: the DAGs live in the notebook, not in a bundle file, so the DAG processor never
sees them; Kyte does what it does after parsing a file (``update_dag_parsing_results_in_db``)
and builds the scheduler's view of a DAG as ``DAG.test()`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import DAG

BUNDLE = "dags-folder"


def check_dag(dag: DAG) -> None:
    """Raise what the DAG processor would: cycles, bad params, unserializable arguments."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag.validate()
    dag.check_cycle()
    DagSerialization.serialize_dag(dag)


def write_dags(dags: Iterable[DAG], *, sync_bundles: bool) -> None:
    """Write DAGs to the metastore as the DAG processor would (dag, serialized_dag, version).

    ``update_dag_parsing_results_in_db`` versions a DAG only when its serialized form changes.
    ``sync_bundles`` first registers the configured bundles (needed once per metastore).
    """
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG

    from .runs import db_session

    with db_session() as session:
        if sync_bundles:
            from airflow.dag_processing.bundles.manager import DagBundlesManager

            DagBundlesManager().sync_bundles_to_db(session=session)
            session.commit()
        update_dag_parsing_results_in_db(
            BUNDLE,
            None,
            [LazyDeserializedDAG.from_dag(d) for d in dags],
            {},
            None,
            set(),
            session=session,
        )


def build_scheduler_dag(dag: DAG) -> Any:
    """The scheduler's view of a DAG (what ``DAG.test()`` builds), for dependency decisions."""
    from airflow.serialization.serialized_objects import DagSerialization

    sdag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    # As in DAG.test(): callbacks are lost by serialization; keep the notebook's ones.
    sdag.on_success_callback = dag.on_success_callback  # type: ignore[attr-defined]
    sdag.on_failure_callback = dag.on_failure_callback  # type: ignore[attr-defined]
    return sdag


@contextmanager
def parsing_as_dag_processor() -> Iterator[None]:
    """Inside the block, the Task SDK's Variable and Connection reads see the session's
    metastore, as a DAG file's top-level reads do in Airflow's DAG processor.

    Why internal: the Task SDK picks its secrets backends by process context
    (``ensure_secrets_backend_loaded``): a task's supervisor channel, else
    ``_AIRFLOW_PROCESS_CONTEXT=server`` (the scheduler, the DAG processor's manager, the API
    server: the metastore), else environment variables and external backends only. A DAG
    cell is a DAG file parsed in the kernel, which is the session's DAG processor; without
    this, a top-level ``Variable.get`` in a cell missed the metastore (and the serial run
    used another value than a parallel run's task process, which asks its supervisor).
    """
    import os

    name = "_AIRFLOW_PROCESS_CONTEXT"
    before = os.environ.get(name)
    os.environ[name] = "server"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextmanager
def collecting_dags(module_name: str = "__main__") -> Iterator[Callable[[], list[DAG]]]:
    """Collect the DAGs that code run inside the block auto-registers, as a DAG file's are.

    Why internal: ``DagContext`` is how the Task SDK lets ``DagBag`` collect DAGs made by
    ``with DAG(...)`` or a called ``@dag`` function; a ``%%dag`` cell is such a file. The
    block gets a function returning the DAGs registered so far (in creation order); the
    context is reset afterwards even if the code raised. ``module_name`` is the ``__name__``
    the code runs under (the registered DAGs' module, as a DAG file's module name).
    """
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    def collected() -> list[DAG]:
        return [dag for dag, _mod in list(DagContext.autoregistered_dags)]

    DagContext.autoregistered_dags.clear()
    DagContext.current_autoregister_module_name = module_name
    try:
        yield collected
    finally:
        DagContext.current_autoregister_module_name = None
        DagContext.autoregistered_dags.clear()
