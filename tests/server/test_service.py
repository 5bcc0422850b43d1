"""KyteService and the state reader on their own: path rules, kernel notebooks, renames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kyte_jupyter.server.service import KyteService, PathError
from kyte_jupyter.session import SessionStore
from kyte_jupyter.state import (
    ForbiddenError,
    aggregate_state,
    graph_from_serialized,
    log_path_parts,
    utf8_complete_len,
)


@pytest.fixture
def service(store: SessionStore, tmp_path: Path) -> Iterator[KyteService]:
    root = tmp_path / "root"
    root.mkdir()
    svc = KyteService(store, str(root))
    yield svc
    svc.shutdown()


def test_api_paths_stay_inside_the_root(service: KyteService, tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert service.os_path("a/b.ipynb") == str(root / "a" / "b.ipynb")
    assert service.os_path("a/./b.ipynb") == str(root / "a" / "b.ipynb")
    assert service.os_path("") == str(root)
    for bad in ("../x", "a/../../x", "/etc/passwd", "a\\b", "a\0b", ".."):
        with pytest.raises(PathError):
            service.os_path(bad)
    (root / "out").symlink_to(tmp_path)
    assert service.os_path("out/x.ipynb") == str(root / "out" / "x.ipynb")
    with pytest.raises(ForbiddenError):
        service.os_path("out/x.ipynb", follow_links=True)
    assert service.api_path(root / "a" / "b.ipynb") == "a/b.ipynb"
    assert service.api_path(tmp_path / "elsewhere.ipynb") is None
    assert service.api_path(str(root) + "-sibling/x.ipynb") is None


def test_kernel_notebook(service: KyteService, tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert service.kernel_notebook(str(root / "w" / "nb.ipynb")) == str(root / "w" / "nb.ipynb")
    assert service.kernel_notebook("w/nb.IPYNB") == str(root / "w" / "nb.IPYNB")
    assert service.kernel_notebook(str(root / "Console 1")) is None
    assert service.kernel_notebook(str(root / "script.py")) is None
    assert service.kernel_notebook(None) is None and service.kernel_notebook("") is None


def test_move_sessions_only_moves_the_renamed_paths(
    service: KyteService, store: SessionStore, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    a = store.for_notebook(str(root / "p" / "a.ipynb"))
    b = store.for_notebook(str(root / "p2" / "b.ipynb"))
    assert service.move_sessions(str(root / "p"), str(root / "q")) == [a.id]
    assert store.get(a.id).notebook_path == str(root / "q" / "a.ipynb")
    assert store.get(b.id).notebook_path == str(root / "p2" / "b.ipynb")
    assert service.move_sessions(str(root / "none"), str(root / "other")) == []


def test_state_helpers() -> None:
    assert aggregate_state(["success", None, "running"]) == "running"
    assert aggregate_state(["success", "failed", "running"]) == "failed"
    assert aggregate_state(["success", None]) is None
    assert aggregate_state(["success", "skipped"]) == "success"
    assert aggregate_state([]) is None
    euro = "€".encode()
    assert utf8_complete_len(b"ab" + euro) == 5
    assert utf8_complete_len(b"ab" + euro[:2]) == 2
    assert utf8_complete_len(b"ab" + euro[:1]) == 2
    assert utf8_complete_len("😀".encode()[:3]) == 0
    assert utf8_complete_len(b"\x80\x80\x80\x80") == 4
    assert log_path_parts("d", "r", "t", 2, 3) == [
        "dag_id=d", "run_id=r", "task_id=t", "map_index=2", "attempt=3.log"
    ]  # fmt: skip
    for bad in ("a/b", "", "a\0"):
        with pytest.raises(Exception, match="cannot name a log file"):
            log_path_parts("d", bad, "t", -1, 1)
    assert graph_from_serialized("{not json") is None
    assert graph_from_serialized('{"dag": {"tasks": [{"no_id": 1}]}}') is None
