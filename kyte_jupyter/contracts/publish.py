"""The publish shapes of the REST API: targets, the publish request and its reply.

``POST /kyte/publish`` runs ``jupyter kyte publish … --format json`` and answers with the
document that command prints (:class:`PublishReply`), so the dialog and the command line
can never disagree about what a publish did.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Contract

#: A SHA-256 in hex, as the publish review shows it.
SHA256_PATTERN = r"^[0-9a-f]{64}$"

#: What the dialog may name in ``expect``: a DAG file name the export writes (no folders).
FILENAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\.py$"


class PublishTarget(Contract):
    """A target the operator configured (``KyteExtensionApp.publish_targets``)."""

    name: str = Field(examples=["staging"])
    kind: Literal["folder", "git"]
    description: str = Field(
        description="Where it writes, for people (a folder, or a branch of a repository); "
        "credentials embedded in a URL are left out.",
        examples=["staging (/srv/airflow/staging/dags)"],
    )


class PublishRequest(Contract):
    """The body of ``POST /kyte/publish``."""

    path: str = Field(min_length=1, description="Notebook API path.", examples=["etl.ipynb"])
    target: str = Field(min_length=1, description="A configured target name.")
    dag_id: str | None = Field(default=None, description="Publish only this DAG's file.")
    dry_run: bool = Field(description="Only show what would change; write nothing.")
    expect: dict[str, str] | None = Field(
        default=None,
        description="Required unless dry_run: file name -> SHA-256 of the content the user "
        "reviewed (from the dry run). The publish is refused if any file changed since.",
    )


class PublishChange(Contract):
    """One DAG file of a publish: its status in the target and the diff the user reviews."""

    filename: str = Field(examples=["etl.py"])
    status: Literal["added", "changed", "unchanged"]
    sha256: str = Field(description="SHA-256 (hex) of the file as it would be published.")
    diff: str = Field(description="Unified diff from the target's file (plain text).")


class PublishReply(Contract):
    """What ``jupyter kyte publish --format json`` reported."""

    target: str | None = Field(default=None, description="The target name.")
    target_description: str | None = Field(default=None, description="Where, for people.")
    changes: list[PublishChange] = Field(default_factory=list)
    published: bool = Field(description="Whether files were written.")
    commit: str | None = Field(default=None, description="The commit id (git targets).")
