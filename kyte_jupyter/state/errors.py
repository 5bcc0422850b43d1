"""Errors of the session-state reads, each with the HTTP status the server answers with."""

from __future__ import annotations


class StateError(Exception):
    """A request for session state failed; ``status`` is the matching HTTP status."""

    status = 500


class NotFoundError(StateError):
    """No such DAG, run, task, map index or try in the session."""

    status = 404


class BadRequestError(StateError):
    """The request itself is malformed (a negative limit, a bad map index, ...)."""

    status = 400


class ForbiddenError(StateError):
    """The request would read outside the places Kyte serves (a symbolic link, say)."""

    status = 403


class MetastoreError(StateError):
    """The session's ``airflow.db`` is missing, damaged or locked."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status
