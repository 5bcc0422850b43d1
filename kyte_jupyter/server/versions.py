"""DAG versions for the sidebar: ``…/dags/{dag_id}/versions[/{number}]`` (run selector) and
``…/dags/{dag_id}/diff?old=&new=`` (the coloured graph of what changed, as ``%dag_diff``).

Read from the session's metastore (read-only SQLite, as :mod:`kyte_jupyter.state` reads it,
no Airflow): ``dag_version`` for the list, and the ``serialized_dag`` row of one version for
its graph, turned into the graph snapshot's shape by
:func:`kyte_jupyter.state.graph_from_serialized`. The diff is
:func:`kyte_jupyter.versions.diff_versions`, the one ``%dag_diff`` prints, over the same rows.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from pydantic import JsonValue, TypeAdapter, ValidationError
from tornado import web

from .. import versions as _versions
from ..contracts.graph import TaskGroup
from ..contracts.versions import (
    ArgumentChange,
    Change,
    DagVersion,
    DagVersionDiff,
    DagVersionGraph,
    DiffEdge,
    DiffNode,
)
from ..session.metastore import Connection
from ..state import (
    NotFoundError,
    SessionState,
    _ts,
    check_ids,
    graph_from_serialized,
)
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
                have = _have(_known_versions(con, dag_id), "it has no version")
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

    def diff(self, dag_id: str, old: int | None = None, new: int | None = None) -> DagVersionDiff:
        """What changed from version ``old`` to ``new`` of ``dag_id``.

        ``new`` defaults to the latest version and ``old`` to the one before ``new`` (the last
        two versions, as ``%dag_diff DAG_ID``). 404 names the known versions.
        """
        check_ids(dag_id=dag_id)
        with self._db() as con:
            known = _known_versions(con, dag_id)
            if not known and not self._dag_known(con, dag_id):
                raise NotFoundError(f"Session {self.session.id} has no DAG {dag_id!r}.")
            if new is None:
                new = known[-1] if known else 1
            if old is None:
                older = [n for n in known if n < new]
                if not older:
                    have = _have(known, "it has no version yet")
                    raise NotFoundError(
                        f"DAG {dag_id!r} has no version before {new} to compare with; {have}."
                    )
                old = older[-1]
            try:
                before = _versions.get_version(con, dag_id, old)
                after = _versions.get_version(con, dag_id, new)
            except _versions.VersionError as e:
                raise NotFoundError(str(e)) from e
        diff = _versions.diff_versions(before, after)
        graphs = [self.version_graph(dag_id, n) for n in (old, new)]
        return diff_reply(diff, *graphs)


def _known_versions(con: Connection, dag_id: str) -> list[int]:
    """The version numbers of ``dag_id``, oldest first."""
    return [
        int(r[0])
        for r in con.execute(
            "SELECT version_number FROM dag_version WHERE dag_id = ? ORDER BY version_number",
            (dag_id,),
        )
    ]


def _have(known: list[int], none: str) -> str:
    """``its versions are 1, 2`` for a 404 message, or ``none``."""
    return f"its versions are {', '.join(map(str, known))}" if known else none


def diff_reply(
    diff: _versions.DagDiff, old: DagVersionGraph, new: DagVersionGraph
) -> DagVersionDiff:
    """The REST shape of a diff: both versions' graphs in one, each task and edge marked."""
    nodes: list[DiffNode] = []
    removed, added = set(diff.removed_tasks), set(diff.added_tasks)
    seen: set[str] = set()
    for graph in (new, old):
        for node in graph.nodes:
            if node.task_id in seen or (graph is old and node.task_id not in removed):
                continue
            seen.add(node.task_id)
            args = diff.changed_arguments.get(node.task_id, {})
            change: Change = (
                "added" if node.task_id in added
                else "removed" if node.task_id in removed
                else "changed" if args
                else "unchanged"
            )  # fmt: skip
            nodes.append(
                DiffNode(
                    **node.model_dump(),
                    change=change,
                    arguments=[
                        ArgumentChange(name=name, old=_json(a), new=_json(b))
                        for name, (a, b) in args.items()
                    ],
                )
            )
    edges = [
        DiffEdge(source=a, target=b, change="unchanged")
        for a, b in sorted({tuple(e) for e in new.edges} - set(diff.added_edges))
    ]
    edges += [DiffEdge(source=a, target=b, change="added") for a, b in diff.added_edges]
    edges += [DiffEdge(source=a, target=b, change="removed") for a, b in diff.removed_edges]
    groups: dict[str, TaskGroup] = {}
    for graph in (new, old):
        for group in graph.task_groups:
            groups.setdefault(group.group_id, group)
    return DagVersionDiff(
        dag_id=diff.dag_id,
        old=diff.old,
        new=diff.new,
        nodes=nodes,
        edges=edges,
        task_groups=list(groups.values()),
        code_diff=diff.code_diff,
    )


def _json(value: object) -> JsonValue:
    """An argument value as JSON (values are read from JSON; anything else as its text)."""
    try:
        return TypeAdapter(JsonValue).validate_python(value)
    except ValidationError:
        return repr(value)


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


async def version_diff(
    service: KyteService, session_id: str, dag_id: str, old: int | None, new: int | None
) -> DagVersionDiff:
    """What changed between two versions of a DAG (default: its last two)."""
    state = VersionState(await service.run(service._get, session_id))
    return await service.run(state.diff, dag_id, old, new)


class VersionDiffHandler(KyteHandler):
    """``/kyte/sessions/{session_id}/dags/{dag_id}/diff?old=N&new=M``: what changed."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str, dag_id: str) -> None:
        """The difference between two versions (default: the last two)."""
        old = self.int_argument("old", None, minimum=1, maximum=MAX_VERSION)
        new = self.int_argument("new", None, minimum=1, maximum=MAX_VERSION)
        if old is not None and new is not None and old == new:
            raise web.HTTPError(400, "old and new must be two different versions.")
        self.reply(await version_diff(self.kyte, session_id, dag_id, old, new))


#: Routes relative to ``base_url``, as OpenAPI path templates (docs/openapi.yaml).
ROUTES: list[tuple[str, type[KyteHandler]]] = [
    ("/kyte/sessions/{session_id}/dags/{dag_id}/versions", VersionsHandler),
    ("/kyte/sessions/{session_id}/dags/{dag_id}/versions/{number}", VersionHandler),
    ("/kyte/sessions/{session_id}/dags/{dag_id}/diff", VersionDiffHandler),
]
