"""Publishing a notebook's DAGs to a folder or a git branch, with no git knowledge needed.

``jupyter kyte publish NOTEBOOK --target NAME`` (and the "Publish…" dialog, which runs it)
exports the notebook, runs the checks, shows the difference between what the target holds
now and what it would hold, and writes only after the user confirms: a folder by atomic
renames, a git branch as one commit authored by the user. Promotion (``--from staging``)
copies exactly the files another target holds, so what was reviewed there is what ships.

Kyte only ever replaces files it wrote itself (they start with the export's header line);
a file of the same name written by someone else is a refusal, never an overwrite. Every
published file is recorded in the notebook session's audit trail with its SHA-256.
"""

from __future__ import annotations

import difflib
import getpass
import hashlib
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .targets import PublishError, Target, TargetStore, configured_targets, open_store

__all__ = [
    "FileChange",
    "PublishError",
    "PublishPlan",
    "PublishResult",
    "Target",
    "configured_targets",
    "default_author",
    "plan_notebook",
    "plan_promotion",
]

Check = Callable[[Path, Mapping[str, str]], list[str]]
"""A check run before publishing: (notebook, {filename: source}) -> problems, one line each."""

Status = Literal["added", "changed", "unchanged"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileChange:
    """One file the publish writes: what the target holds now (``before``) and after."""

    filename: str
    before: bytes | None
    after: bytes

    @property
    def status(self) -> Status:
        """``added`` (new file), ``changed`` or ``unchanged``."""
        if self.before is None:
            return "added"
        return "unchanged" if self.before == self.after else "changed"

    @property
    def sha256(self) -> str:
        """SHA-256 (hex) of the file as published."""
        return _sha256(self.after)

    def diff(self, label: str) -> str:
        """A unified diff from the target's file to the published one ('' when unchanged)."""
        before = (self.before or b"").decode("utf-8", "replace").splitlines(keepends=True)
        after = self.after.decode("utf-8", "replace").splitlines(keepends=True)
        lines = difflib.unified_diff(
            before,
            after,
            fromfile=f"{label}/{self.filename} (now)" if self.before is not None else "/dev/null",
            tofile=f"{label}/{self.filename} (after publishing)",
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@dataclass(frozen=True)
class PublishResult:
    """What a publish wrote: the files (with their SHA-256) and, for git, the commit id."""

    target: Target
    written: list[FileChange]
    commit: str | None


@dataclass
class PublishPlan:
    """What publishing would change in a target, computed before anything is written."""

    target: Target
    source: str
    changes: list[FileChange]
    store: TargetStore = field(repr=False)

    @property
    def pending(self) -> list[FileChange]:
        """The files that would change (added or changed)."""
        return [c for c in self.changes if c.status != "unchanged"]

    def diff(self) -> str:
        """The unified diff of every pending file, as the user reviews it."""
        return "".join(c.diff(self.target.name) for c in self.pending)

    def check_expected(self, expected: Mapping[str, str]) -> None:
        """Refuse unless each pending file has the SHA-256 the user reviewed.

        ``expected`` maps file names to hashes shown by an earlier dry run. Raises
        :class:`PublishError` when a file's content differs, a file was not reviewed, or a
        reviewed file is no longer part of the publish (its DAG was removed or renamed).
        """
        known = {c.filename for c in self.changes}
        gone = sorted(set(expected) - known)
        if gone:
            raise PublishError(
                f"{', '.join(gone)} was reviewed but is no longer part of this publish (its DAG "
                "was removed or renamed, or the name is mistyped). Review it again (dry run) "
                "before publishing."
            )
        for change in self.pending:
            want = expected.get(change.filename)
            if want is None:
                raise PublishError(
                    f"{change.filename} was not in the reviewed publish. Review it again "
                    "(dry run) before publishing."
                )
            if want != change.sha256:
                raise PublishError(
                    f"{change.filename} changed since it was reviewed (the notebook or the "
                    "source target was edited). Review the new diff before publishing."
                )

    def apply(self, *, author: str, message: str | None = None) -> PublishResult:
        """Write the pending files (one commit for git) and return what was written."""
        pending = self.pending
        if not pending:
            return PublishResult(self.target, [], None)
        names = ", ".join(c.filename for c in pending)
        text = message or f"Publish {names} from {self.source}\n\nPublished with Kyte for Jupyter."
        commit = self.store.write(
            {c.filename: c.after for c in pending}, author=author, message=text
        )
        return PublishResult(self.target, pending, commit)


def _plan(
    target: Target, source: str, files: Mapping[str, bytes], store: TargetStore
) -> PublishPlan:
    changes = [FileChange(name, store.read(name), data) for name, data in sorted(files.items())]
    _refuse_foreign(target, changes)
    return PublishPlan(target, source, changes, store)


def _written_by_kyte(data: bytes) -> bool:
    from ..export import HEADER_MARK

    return data.removeprefix(b"\xef\xbb\xbf").startswith(HEADER_MARK.encode())


def _refuse_foreign(target: Target, changes: Iterable[FileChange]) -> None:
    foreign = [
        c.filename for c in changes if c.before is not None and not _written_by_kyte(c.before)
    ]
    if foreign:
        raise PublishError(
            f"{target.describe()} already has {', '.join(foreign)}, which Kyte did not write; "
            "publishing would overwrite it. Nothing was published. Rename the DAG, or ask the "
            "owner of that file to move it away."
        )


def plan_notebook(
    notebook: str | os.PathLike[str],
    target: Target,
    *,
    dag_id: str | None = None,
    checks: Sequence[Check] = (),
) -> PublishPlan:
    """Export ``notebook`` (only ``dag_id``'s file when given), run ``checks``, plan the publish.

    Raises :class:`~kyte_jupyter.export.ExportError` when the notebook cannot be exported and
    :class:`PublishError` when a check finds a problem or the target cannot be read.
    """
    from ..export import build_dag_files, read_notebook

    if dag_id:
        _check_dag_id(dag_id)
    path = Path(notebook)
    files = {f.filename: f.source for f in build_dag_files(read_notebook(path), path.name, dag_id)}
    problems = [p for check in checks for p in check(path, files)]
    if problems:
        raise PublishError(
            "Checks failed, so nothing was published:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    store = open_store(target)
    return _plan(target, path.name, {k: v.encode() for k, v in files.items()}, store)


def plan_promotion(source: Target, target: Target, *, dag_id: str | None = None) -> PublishPlan:
    """Plan copying the DAG files Kyte wrote in ``source`` to ``target``, byte for byte.

    With ``dag_id``, only ``<dag_id>.py``. Raises :class:`PublishError` when ``source`` holds
    no such file or holds it without Kyte's header.
    """
    if dag_id:
        _check_dag_id(dag_id)
    src = open_store(source)
    names = [f"{dag_id}.py"] if dag_id else src.files()
    files: dict[str, bytes] = {}
    for name in names:
        data = src.read(name)
        if data is None:
            raise PublishError(
                f"{source.describe()} has no {name} to promote; publish it there first."
            )
        if _written_by_kyte(data):
            files[name] = data
        elif dag_id:
            raise PublishError(
                f"{source.describe()}/{name} was not written by Kyte; not promoting it."
            )
    if not files:
        raise PublishError(f"{source.describe()} holds no DAG files published by Kyte.")
    return _plan(target, f"target {source.name}", files, open_store(target))


def _check_dag_id(dag_id: str) -> None:
    """Refuse a ``--dag`` that is not an Airflow DAG id (so never a path)."""
    from ..contracts.ids import id_problem

    problem = id_problem("dag_id", dag_id)
    if problem is not None:
        raise PublishError(f"--dag: {problem}")


def default_author() -> str:
    """``Name <email>`` for commits: ``KYTE_PUBLISH_AUTHOR``, else the hub or login user."""
    explicit = os.environ.get("KYTE_PUBLISH_AUTHOR")
    if explicit:
        return explicit
    user = os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
    return f"{user} <{user}@{socket.gethostname()}>"
