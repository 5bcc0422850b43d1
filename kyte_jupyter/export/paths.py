"""Where exported files go: one check that no write leaves the root, and the writing itself.

Every path export writes (the output folder, default or given, and each file in it) goes
through :func:`resolve_output_dir` and :func:`resolve_target`, whoever asks: the command line,
the nbconvert exporter and the server's ``/kyte/export``. A path is inside the root when its
real location is, after following every symbolic link and ``..`` as the OS would: a ``dags/``
folder next to the notebook that links to a folder outside the root is refused exactly as an
output folder outside it is, and so is a file in the output folder that links outside.

The root is given by the caller (the server passes its root directory). Without one it is the
output folder when one is named (the caller chose it; nothing may leave it through a link),
else the notebook's folder (the default ``dags/`` folder must really be inside it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .common import DEFAULT_OUTPUT_DIR, HEADER_MARK, ExportError

StrPath = str | os.PathLike[str]


class OutputPathError(ExportError):
    """Export would write outside its root (an absolute path, ``..`` or a symbolic link).

    ``path`` is the path refused, as given; ``root`` the root it had to stay inside. A
    subclass of :class:`ExportError`, so callers that only report problems need nothing new;
    the server answers it with 403.
    """

    def __init__(self, problem: str, path: Path, root: Path, notebook: str | None = None) -> None:
        super().__init__([problem], notebook)
        self.path = path
        self.root = root

    def of(self, notebook: str) -> OutputPathError:
        """The same error, saying which notebook's export it stopped."""
        return OutputPathError(self.problems[0], self.path, self.root, notebook)


def export_root(notebook: StrPath, output: StrPath | None, root: StrPath | None = None) -> Path:
    """The folder no write of this export may leave (see the module docstring), absolute."""
    # Path.absolute(), not os.path.abspath: ``link/..`` must keep the meaning the OS gives it.
    if root is not None:
        return Path(root).absolute()
    if output is not None:
        return Path(output).absolute()
    return Path(notebook).absolute().parent


def resolve_output_dir(
    notebook: StrPath, output: StrPath | None = None, root: StrPath | None = None
) -> Path:
    """The folder to write a notebook's DAG files into, checked to stay inside ``root``.

    ``output`` ``None`` means the ``dags/`` folder next to the notebook; a relative ``output``
    is taken relative to ``root`` (relative to the working directory when there is no root).
    ``root`` ``None`` means the output folder if one is given, else the notebook's folder.
    Returns the folder as named, absolute (neither links nor ``..`` resolved).

    Raises :class:`OutputPathError` when the folder's real location is outside the root:
    an absolute path or ``..`` leading out, or a symbolic link anywhere on the way.
    """
    base = export_root(notebook, output, root)
    if output is None:
        out = Path(notebook).absolute().parent / DEFAULT_OUTPUT_DIR
    elif root is None:
        out = base
    else:
        out = base / output  # an absolute output replaces base
    _check(out, base, "folder")
    return out


def resolve_target(target: Path, root: StrPath) -> Path:
    """The real path to write the file ``target`` at, checked to stay inside ``root``.

    A symbolic link inside the root is followed (as nbconvert's writer follows it), so the
    file it names is updated. Raises :class:`OutputPathError` when the file's real location
    is outside the root.
    """
    return _check(target, Path(root).absolute(), "file")


def _check(path: Path, root: Path, what: str) -> Path:
    try:
        real = Path(os.path.realpath(path))
        real_root = Path(os.path.realpath(root))
    except (ValueError, OSError) as e:  # a NUL byte, a loop of links
        raise OutputPathError(f"{path} is not a usable path ({e}).", path, root) from None
    if real.is_relative_to(real_root):
        return real
    if real != Path(os.path.normpath(os.path.abspath(path))):
        problem = (
            f"the output {what} {path} leads to {real} through a symbolic link, outside "
            f"{root}; export writes nothing outside it. Replace the link with a real {what}, "
            f"or choose an output folder inside {root}."
        )
    else:
        problem = (
            f"the output {what} {path} is outside {root}; export writes nothing outside it. "
            "Choose an output folder inside it."
        )
    raise OutputPathError(problem, path, root)


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
