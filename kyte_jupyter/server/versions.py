"""DAG versions for the sidebar's run selector: ``…/dags/{dag_id}/versions[/{number}]``.

Read from the session's metastore (read-only SQLite, as :mod:`kyte_jupyter.state` reads it,
no Airflow): ``dag_version`` for the list, and the ``serialized_dag`` row of one version for
its graph, turned into the graph snapshot's shape by
:func:`kyte_jupyter.state.graph_from_serialized`.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..contracts.versions import DagVersion, DagVersionGraph
from ..state import NotFoundError, SessionState, _ts, check_ids, graph_from_serialized
from .handlers import KyteHandler
from .service import KyteService

#: The largest version number accepted in a URL (Airflow stores it as a 32-bit integer).
MAX_VERSION = 2**31 - 1


class VersionState(SessionState):
    """The versions of a session's DAGs, read from its metastore."""

    def versions(self, dag_id: str) -> list[DagVersion]:
        """Every recorded version of ``dag_id``, oldest first; 404 for a DAG never seen."""
        check_ids(dag_id=dag_id)
        with self._db() as con:
            rows = con.execute(
                "SELECT version_number, created_at FROM dag_version WHERE dag_id = ? "
                "ORDER BY version_number",
                (dag_id,),
            ).fetchall()
            if not rows and not self._dag_known(con, dag_id):
                raise NotFoundError(f"Session {self.session.id} has no DAG {dag_id!r}.")
        return [
            DagVersion(number=r["version_number"], created_at=_ts(r["created_at"])) for r in rows
        ]

    def version_graph(self, dag_id: str, number: int) -> DagVersionGraph:
        """The graph of version ``number`` of ``dag_id`` (404 naming the known versions)."""
        check_ids(dag_id=dag_id)
        with self._db() as con:
            row = con.execute(
                "SELECT v.version_number, v.created_at, s.data, s.data_compressed "
                "FROM dag_version v LEFT JOIN serialized_dag s ON s.dag_version_id = v.id "
                "WHERE v.dag_id = ? AND v.version_number = ? "
                "ORDER BY s.last_updated DESC LIMIT 1",
                (dag_id, number),
            ).fetchone()
            if row is None:
                known = [
                    str(r[0])
                    for r in con.execute(
                        "SELECT version_number FROM dag_version WHERE dag_id = ? "
                        "ORDER BY version_number",
                        (dag_id,),
                    )
                ]
                have = f"its versions are {', '.join(known)}" if known else "it has no version"
                raise NotFoundError(f"DAG {dag_id!r} has no version {number}; {have}.")
        graph = None
        if row["data"] is not None or row["data_compressed"] is not None:
            graph = graph_from_serialized(row["data"], row["data_compressed"])
        if graph is None:
            raise NotFoundError(
                f"Version {number} of DAG {dag_id!r} has no serialized graph this Kyte can read."
            )
        graph["dag_id"] = graph.get("dag_id") or dag_id
        return DagVersionGraph.model_validate(
            {**graph, "number": row["version_number"], "created_at": _ts(row["created_at"])}
        )


async def list_versions(service: KyteService, session_id: str, dag_id: str) -> list[DagVersion]:
    """The versions of one DAG of a session, oldest first."""
    state = VersionState(await service.run(service._get, session_id))
    return await service.run(state.versions, dag_id)


async def version_graph(
    service: KyteService, session_id: str, dag_id: str, number: int
) -> DagVersionGraph:
    """The graph of one version of a DAG."""
    state = VersionState(await service.run(service._get, session_id))
    return await service.run(state.version_graph, dag_id, number)


class VersionsHandler(KyteHandler):
    """``/kyte/sessions/{session_id}/dags/{dag_id}/versions``: a DAG's versions."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str, dag_id: str) -> None:
        """List the DAG's versions, oldest first."""
        versions = await list_versions(self.kyte, session_id, dag_id)
        self.reply(versions)


class VersionHandler(KyteHandler):
    """``/kyte/sessions/{session_id}/dags/{dag_id}/versions/{number}``: one version's graph."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str, dag_id: str, number: str) -> None:
        """The graph of one version."""
        if not number.isascii() or not number.isdigit() or len(number) > 10:
            raise web.HTTPError(400, f"The version must be a number, not {number[:40]!r}.")
        if not 1 <= int(number) <= MAX_VERSION:
            raise web.HTTPError(400, f"The version must be from 1 to {MAX_VERSION}.")
        graph = await version_graph(self.kyte, session_id, dag_id, int(number))
        self.reply(graph)


#: Routes relative to ``base_url``, as OpenAPI path templates (docs/openapi.yaml).
ROUTES: list[tuple[str, type[KyteHandler]]] = [
    ("/kyte/sessions/{session_id}/dags/{dag_id}/versions", VersionsHandler),
    ("/kyte/sessions/{session_id}/dags/{dag_id}/versions/{number}", VersionHandler),
]
