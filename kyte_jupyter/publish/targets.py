"""Where exported DAG files are published: a folder, or a branch of a git repository.

A target is named by the operator (the ``publish_targets`` trait of ``KyteExtensionApp``, e.g.
``{"staging": "/srv/airflow/staging/dags", "prod": "git+ssh://git@host/dags.git#main"}``) or
given directly on the command line as a folder or ``git+URL#BRANCH[:FOLDER]``.

Reading and writing a target goes through :class:`TargetStore`: :class:`FolderStore` for a
folder, :class:`GitStore` (dulwich, so no git binary and no git knowledge is needed) for a
branch. Both read what the target holds now and replace files as one step: a folder by atomic
renames, a branch by one commit pushed only if the branch has not moved since it was read.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

TargetKind = Literal["folder", "git"]
GIT_PREFIX = "git+"


class PublishError(Exception):
    """Publishing cannot go on; the message says what went wrong and what to do."""


@dataclass(frozen=True)
class Target:
    """A publish target.

    ``location`` is a folder path (``kind == "folder"``) or a git repository URL; for git,
    ``branch`` is the branch written and ``subdir`` the folder inside the repository
    (``""`` for its top level).
    """

    name: str
    kind: TargetKind
    location: str
    branch: str = "main"
    subdir: str = ""

    def describe(self) -> str:
        """How messages name the target, e.g. ``prod (branch main of file:///srv/dags.git)``."""
        if self.kind == "folder":
            where = self.location
        else:
            inside = f", folder {self.subdir}" if self.subdir else ""
            where = f"branch {self.branch} of {self.location}{inside}"
        return where if self.name == self.location else f"{self.name} ({where})"

    @classmethod
    def parse(cls, spec: str, named: Mapping[str, str] | None = None) -> Target:
        """The target ``spec`` names: a name from ``named``, a folder, or ``git+URL#BRANCH``.

        Raises :class:`PublishError` for an empty spec, a git URL without a branch, or a
        name that is neither configured nor a path.
        """
        named = named or {}
        name = spec.strip()
        if not name:
            raise PublishError("No target given: name one with --target (see --list-targets).")
        location = named.get(name, name)
        if location.startswith(GIT_PREFIX):
            url, sep, rest = location[len(GIT_PREFIX) :].partition("#")
            branch, _, subdir = rest.partition(":")
            if not url or not sep or not branch:
                raise PublishError(
                    f"The git target {location!r} names no branch: write it as "
                    "git+URL#BRANCH, e.g. git+file:///srv/dags.git#main."
                )
            folder = subdir.strip("/")
            if any(part in ("", ".", "..") for part in folder.split("/")) and folder:
                raise PublishError(
                    f"The folder {subdir!r} in the git target {location!r} must be a plain path "
                    "inside the repository (no '.', '..' or empty parts)."
                )
            return cls(name, "git", url, branch, folder)
        if name not in named and not (
            os.sep in name or name.startswith(".") or Path(name).is_dir()
        ):
            known = ", ".join(sorted(named)) or "none are configured"
            raise PublishError(
                f"There is no publish target named {name!r} (known targets: {known}). Give a "
                "configured name, a folder path, or git+URL#BRANCH."
            )
        return cls(name, "folder", str(Path(os.path.expanduser(location)).absolute()))


class TargetStore(Protocol):
    """What the publisher needs of a target: read its files, then replace some of them."""

    def read(self, filename: str) -> bytes | None:
        """The file's bytes as the target holds it now, or ``None`` when it has no such file."""

    def files(self) -> list[str]:
        """The names of the ``.py`` files the target holds now."""

    def write(self, files: Mapping[str, bytes], *, author: str, message: str) -> str | None:
        """Replace ``files`` as one step; return the commit id for git, else ``None``."""


class FolderStore:
    """A folder: a dags folder or a DAG bundle's folder on this machine."""

    def __init__(self, target: Target) -> None:
        self.folder = Path(target.location)

    def read(self, filename: str) -> bytes | None:
        """The file's bytes, or ``None``."""
        if self.folder.exists() and not self.folder.is_dir():
            raise PublishError(
                f"The target {self.folder} is a file, not a folder; publish to a folder."
            )
        try:
            return (self.folder / filename).read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError as e:
            raise PublishError(f"{self.folder / filename} is a folder, not a DAG file.") from e
        except OSError as e:  # a path through a file, no permission ...
            raise PublishError(f"Cannot read {self.folder / filename}: {e.strerror or e}.") from e

    def files(self) -> list[str]:
        """The ``.py`` files directly in the folder."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if p.suffix == ".py" and p.is_file())

    def write(self, files: Mapping[str, bytes], *, author: str, message: str) -> str | None:
        """Write each file by an atomic rename, so Airflow never parses half a file."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for filename, data in files.items():
                fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{filename}.", suffix=".tmp")
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, self.folder / filename)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
        except OSError as e:
            raise PublishError(f"Cannot write to {self.folder}: {e.strerror or e}.") from e
        return None


class GitStore:
    """A branch of a git repository, read and written with dulwich (no git binary needed).

    The branch is fetched into a private bare repository once; :meth:`write` makes one commit
    on top of what was fetched and pushes it only if the branch still points where it did,
    so a publish never overwrites a change made in between.
    """

    def __init__(self, target: Target) -> None:
        from dulwich.client import get_transport_and_path
        from dulwich.repo import Repo

        self.target = target
        self._ref = f"refs/heads/{target.branch}".encode()
        self._scratch = tempfile.TemporaryDirectory(prefix="kyte-publish-")
        # dulwich's own annotations use NewTypes for ids and refs; Kyte handles plain bytes.
        self._repo: Any = Repo.init_bare(self._scratch.name)
        try:
            client, self._path = get_transport_and_path(target.location)
            self._client: Any = client
            fetched: Any = self._client.fetch(self._path, self._repo)
        except Exception as e:  # dulwich raises many kinds for an unreachable repository
            raise PublishError(
                f"Cannot read the git repository {target.location}: {e}. Check the URL in the "
                "target and that this server may read it."
            ) from e
        self._head: bytes | None = fetched.refs.get(self._ref)

    def _tree(self) -> Any:
        from dulwich.objects import Tree

        if self._head is None:
            return Tree()
        tree = self._repo[self._repo[self._head].tree]
        for part in filter(None, self.target.subdir.split("/")):
            try:
                _mode, sha = tree[part.encode()]
            except KeyError:
                return Tree()
            tree = self._repo[sha]
        return tree

    def read(self, filename: str) -> bytes | None:
        """The file's bytes on the branch, or ``None``."""
        try:
            _mode, sha = self._tree()[filename.encode()]
        except KeyError:
            return None
        data: bytes = self._repo[sha].data
        return data

    def files(self) -> list[str]:
        """The ``.py`` files in the target folder of the branch."""
        return sorted(
            entry.path.decode() for entry in self._tree().iteritems() if entry.path.endswith(b".py")
        )

    def write(self, files: Mapping[str, bytes], *, author: str, message: str) -> str | None:
        """Commit ``files`` on the branch as ``author`` and push; return the commit id."""
        from dulwich.object_store import commit_tree_changes
        from dulwich.objects import Blob, Commit, Tree

        store = self._repo.object_store
        base = self._repo[self._repo[self._head].tree] if self._head else Tree()
        if self._head is None:
            store.add_object(base)
        changes = []
        prefix = f"{self.target.subdir}/" if self.target.subdir else ""
        for filename, data in files.items():
            blob = Blob.from_string(data)
            store.add_object(blob)
            changes.append(((prefix + filename).encode(), 0o100644, blob.id))
        commit: Any = Commit()
        commit.tree = commit_tree_changes(store, base, changes)
        commit.parents = [self._head] if self._head else []
        commit.author = commit.committer = author.encode()
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        commit.message = message.encode()
        store.add_object(commit)
        expected, ref = self._head, self._ref

        def update_refs(refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
            if refs.get(ref) != expected:
                raise PublishError(
                    f"The branch {self.target.branch} of {self.target.location} changed while "
                    "you were reviewing the publish. Nothing was written; run publish again "
                    "to review the new state."
                )
            return {**refs, ref: commit.id}

        try:
            self._client.send_pack(self._path, update_refs, self._repo.generate_pack_data)
        except PublishError:
            raise
        except Exception as e:
            raise PublishError(
                f"Cannot push to {self.target.location}: {e}. Nothing was published; check "
                "that this server may write to the repository."
            ) from e
        self._head = commit.id
        commit_id: str = commit.id.decode()
        return commit_id

    def close(self) -> None:
        """Remove the private copy of the repository."""
        self._scratch.cleanup()


def open_store(target: Target) -> TargetStore:
    """The store that reads and writes ``target``."""
    opener: Callable[[Target], TargetStore] = GitStore if target.kind == "git" else FolderStore
    return opener(target)


def configured_targets() -> dict[str, str]:
    """``KyteExtensionApp.publish_targets`` from the operator's Jupyter server config files.

    Read with traitlets' own loaders from every ``jupyter_server_config.{json,py}`` on the
    Jupyter config path, later (more specific) files winning, as jupyter-server does; the
    environment variable ``KYTE_PUBLISH_TARGETS`` (JSON) overrides them, for tests and CI.
    """
    import json

    env = os.environ.get("KYTE_PUBLISH_TARGETS")
    if env:
        try:
            value = json.loads(env)
        except ValueError as e:
            raise PublishError(f"KYTE_PUBLISH_TARGETS is not valid JSON: {e}.") from e
        if not isinstance(value, dict):
            raise PublishError("KYTE_PUBLISH_TARGETS must be a JSON object of name -> target.")
        return {str(k): str(v) for k, v in value.items()}
    from ..settings import server_setting

    targets = server_setting("publish_targets")
    if not isinstance(targets, Mapping):  # unset (or not a mapping: the server refuses it)
        return {}
    return {str(k): str(v) for k, v in targets.items()}
