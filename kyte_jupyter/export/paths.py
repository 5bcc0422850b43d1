"""Where exported files go, and writing them safely."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .common import HEADER_MARK


def written_by_kyte(path: Path) -> bool:
    """Whether a file starts with Kyte's header, i.e. a later export may overwrite it."""
    try:
        with path.open("rb") as f:
            head = f.read(len(HEADER_MARK) + 3)
    except OSError:
        return False
    return head.removeprefix(b"\xef\xbb\xbf").startswith(HEADER_MARK.encode())


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        # mkstemp makes 0600 files; a DAG file must be readable like any other source file.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
