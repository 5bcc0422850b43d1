"""Kyte's handlers are authorized on the resource ``kyte`` (read for GET, write otherwise)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from traitlets.config import Config

from kyte_jupyter.session import Session


class ReadOnlyKyte(Authorizer):
    """Allows everything except writing to the ``kyte`` resource; records what was asked."""

    asked: list[tuple[str, str]] = []

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        self.asked.append((action, resource))
        return not (resource == "kyte" and action == "write")


@pytest.fixture
def jp_server_config(jp_server_config: Config) -> Config:
    jp_server_config.ServerApp.authorizer_class = ReadOnlyKyte
    return jp_server_config


async def test_authorizer_decides_on_the_kyte_resource(
    jp_fetch: Any, fetch_json: Any, etl_session: Session
) -> None:
    ReadOnlyKyte.asked.clear()
    assert [s["id"] for s in await fetch_json("kyte", "sessions")] == [etl_session.id]
    assert await fetch_json("kyte", "sessions", etl_session.id, "dags")
    assert ("read", "kyte") in ReadOnlyKyte.asked
    for parts, method, body in (
        (("kyte", "sessions", etl_session.id), "DELETE", None),
        (("kyte", "export"), "POST", json.dumps({"path": "nb.ipynb"})),
    ):
        with pytest.raises(Exception) as info:
            await jp_fetch(*parts, method=method, body=body)
        assert getattr(info.value, "code", None) == 403
        assert "kyte" in json.loads(info.value.response.body)["message"]  # type: ignore[attr-defined]
    assert ("write", "kyte") in ReadOnlyKyte.asked
    assert etl_session.home.exists()
