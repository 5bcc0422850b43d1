"""Fixtures for the Kyte server extension: a jupyter server with Kyte, realistic session homes.

The template metastore is migrated once per test run (``airflow db migrate``, ~6 s, in a
subprocess) and copied into each test's own sessions root, so a session is ready in
milliseconds and tests never share state.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# pytest-jupyter has no entry point and ``pytest_plugins`` is only honoured in the rootdir
# conftest, so its fixtures and hooks are brought in here.
from pytest_jupyter.jupyter_server import *  # noqa: F403
from server_homes import RUN_ID, add_run, etl_graph, write_graph
from traitlets.config import Config

from kyte_jupyter.session import Session, SessionStore

TOKEN = "kyte-test-token"


@pytest.fixture(scope="session")
def kyte_template_root(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A sessions root whose template metastore has been migrated (shared, read-only).

    Reuses the kernel tests' ``template_root`` when the whole suite runs, so the template is
    migrated once per run.
    """
    try:
        shared: Path = request.getfixturevalue("template_root")
        return shared
    except pytest.FixtureLookupError:
        root = tmp_path_factory.mktemp("kyte-template")
        SessionStore(root).prepare_template()
        return root


@pytest.fixture
def kyte_root(tmp_path: Path, kyte_template_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own sessions root (``KYTE_SESSIONS_ROOT``), with the template copied in."""
    root = tmp_path / "kyte-sessions"
    root.mkdir()
    if (kyte_template_root / ".templates").is_dir():  # none with a PostgreSQL metastore
        shutil.copytree(kyte_template_root / ".templates", root / ".templates")
    monkeypatch.setenv("KYTE_SESSIONS_ROOT", str(root))
    return root


@pytest.fixture
def kyte_extension_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """``KyteExtensionApp`` traits for the test server; parametrize it indirectly to set some."""
    return dict(getattr(request, "param", {}))


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def jp_server_config(
    kyte_root: Path, kyte_extension_config: dict[str, Any], jp_config_dir: Path
) -> Config:
    """Kyte enabled as an installed package enables it; auth required for everything.

    The extension's own config file (``jupyter_kyte_config.json``, which selects Kyte's kernel
    manager) is read from the test's Jupyter config dir, as from ``etc/jupyter`` when installed.
    """
    shutil.copy(REPO / "jupyter-config" / "kyte-config" / "jupyter_kyte_config.json", jp_config_dir)
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"kyte_jupyter": True, "jupyter_server_terminals": False},
                "allow_root": True,
                "allow_unauthenticated_access": False,
            },
            "IdentityProvider": {"token": TOKEN},
            "KyteExtensionApp": kyte_extension_config,
        }
    )


@pytest.fixture
def store(kyte_root: Path) -> SessionStore:
    """A store over this test's sessions root (the server uses the same root)."""
    return SessionStore(kyte_root)


@pytest.fixture
def make_session(store: SessionStore, jp_root_dir: Path) -> Callable[[str], Session]:
    """Create the session of a notebook (API path under the server root)."""

    def make(api_path: str = "nb.ipynb") -> Session:
        return store.for_notebook(str(jp_root_dir / api_path))

    return make


@pytest.fixture
def fetch_json(jp_fetch: Any) -> Callable[..., Any]:
    """``jp_fetch`` that returns the decoded JSON body (and raises on errors as jp_fetch)."""

    async def fetch(*parts: str, **kwargs: Any) -> Any:
        response = await jp_fetch(*parts, **kwargs)
        return json.loads(response.body) if response.body else None

    return fetch


@pytest.fixture
def etl_session(make_session: Callable[[str], Session]) -> Session:
    """A session with the ``etl`` DAG and one run in progress."""
    session = make_session("nb.ipynb")
    write_graph(session, etl_graph())
    add_run(
        session,
        "etl",
        RUN_ID,
        "running",
        [
            ("extract", -1, "success", 1),
            ("double", 0, "success", 1),
            ("double", 1, "running", 1),
            ("double", 2, None, 0),
            ("g.load", -1, None, 0),
        ],
        conf='{"x": 1}',
    )
    return session
