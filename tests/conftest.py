"""Shared fixtures: a sessions root with a migrated template, and real IPython kernels."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernels import Kernel

from kyte_jupyter.session import SessionStore

# Tests that build DAGs in memory import Airflow in the test process itself. Give that Airflow
# a home of its own per test process: never the user's ~/airflow, and never one shared by
# pytest-xdist workers (two workers creating ~/airflow at once break each other's config).
# Kernels and subprocesses get their own homes (their environments drop AIRFLOW_*).
if "AIRFLOW_HOME" not in os.environ:
    _home = tempfile.mkdtemp(prefix="kyte-tests-airflow-")
    os.environ["AIRFLOW_HOME"] = _home
    atexit.register(shutil.rmtree, _home, ignore_errors=True)

#: ``KYTE_TEST_METASTORE=postgres`` runs the tests with every session's metastore in a
#: PostgreSQL database of a server these fixtures start (one per test process), instead of the
#: SQLite file: sessions, kernels and the server extension all honour ``KYTE_METASTORE_URL``.
TEST_METASTORE_ENV = "KYTE_TEST_METASTORE"


@pytest.fixture(scope="session", autouse=True)
def test_metastore() -> Iterator[str]:
    """``"sqlite"``, or ``"postgres"`` with ``$KYTE_METASTORE_URL`` pointing at a fresh server."""
    kind = os.environ.get(TEST_METASTORE_ENV, "sqlite")
    if kind != "postgres":
        yield "sqlite"
        return
    from pgserver import running_postgres

    with running_postgres() as pg:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/kyte_{{user}}_{{session}}"
        old = os.environ.get("KYTE_METASTORE_URL")
        os.environ["KYTE_METASTORE_URL"] = url
        try:
            yield "postgres"
        finally:
            if old is None:
                os.environ.pop("KYTE_METASTORE_URL", None)
            else:
                os.environ["KYTE_METASTORE_URL"] = old


@pytest.fixture(scope="session")
def template_root(tmp_path_factory: pytest.TempPathFactory, test_metastore: str) -> Path:
    """A sessions root whose template metastore is migrated once for the whole test run."""
    root = tmp_path_factory.mktemp("template-root")
    SessionStore(root).prepare_template()  # the SQLite file, or the PostgreSQL template database
    return root


@pytest.fixture
def sessions_root(tmp_path: Path, template_root: Path) -> Path:
    """An empty sessions root for one test, sharing the migrated template."""
    root = tmp_path / "sessions"
    root.mkdir()
    if (template_root / ".templates").is_dir():  # none with a PostgreSQL metastore
        shutil.copytree(template_root / ".templates", root / ".templates")
    return root


def _kernels(folder: Path, root: Path) -> Iterator[Any]:
    """A factory of real kernels for notebooks in ``folder`` (sessions under ``root``), with
    ``%load_ext kyte_jupyter`` run unless ``load=False``; every kernel stopped at the end."""
    kernels: list[Kernel] = []

    def make(name: str = "notebook.ipynb", load: bool = True, **env: str) -> Kernel:
        nb = folder / name
        nb.parent.mkdir(parents=True, exist_ok=True)
        k = Kernel(nb, root, folder, env)
        kernels.append(k)
        if load:
            k.ok("%load_ext kyte_jupyter")
        return k

    yield make
    for k in kernels:
        k.shutdown()


@pytest.fixture
def make_kernel(sessions_root: Path, tmp_path: Path) -> Iterator[Any]:
    """Start real kernels for notebooks in a temporary folder; all stopped at the end."""
    yield from _kernels(tmp_path, sessions_root)


@pytest.fixture(scope="module")
def make_module_kernel(
    tmp_path_factory: pytest.TempPathFactory, template_root: Path
) -> Iterator[Any]:
    """As ``make_kernel``, for kernels one test module shares (own sessions root and folder)."""
    root = tmp_path_factory.mktemp("module-sessions")
    shutil.copytree(template_root / ".templates", root / ".templates")
    yield from _kernels(tmp_path_factory.mktemp("module-notebooks"), root)
