"""Task log files under a session's ``logs/``: opened without following any link, read by
byte range, searched line by line. No Airflow: the layout is Airflow's default log template.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Any

from ..contracts.rest import LogMatch
from .errors import BadRequestError, ForbiddenError

#: Most lines a log search returns (the reply says ``truncated`` when more matched).
MAX_SEARCH_MATCHES = 1000
#: A log is searched in pieces of at most this many bytes (a longer line is several pieces;
#: a match across two pieces of one line is missed), and a match shows this much of its line.
_SEARCH_PIECE = 64 * 1024
_MATCH_TEXT = 2000


# ---- logs written by executor workers -------------------------------------------------------
#: Keys of a JSON log record that its rendered line shows in fixed places (or leaves out).
_RECORD_FIELDS = frozenset({"timestamp", "level", "event", "logger", "filename", "lineno",
                            "error_detail", "dag_id", "run_id", "task_id", "ti_id",
                            "try_number", "map_index"})


def render_record(raw: str) -> list[str] | None:
    """The text lines of one JSON log record, as Airflow's ``supervise()`` writes them for a
    try an executor's worker ran; ``None`` if ``raw`` is not such a record.

    The layout is the console renderer's, which an in-kernel try's log uses: time, level,
    event, logger, ``loc=file:line``, other keys as ``key=value``; a failure's traceback on the
    lines below. Airflow's log-folding markers (``::group::…``, ``::endgroup::``, read only by
    its UI) give no line, as in an in-kernel try's log. A task logs what it likes through
    structlog, so no field's type is trusted: any JSON value renders, and a record that still
    cannot be rendered shows as the raw line.
    """
    import json

    if not raw.startswith("{"):
        return None
    try:
        rec = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(rec, dict) or "timestamp" not in rec or "event" not in rec:
        return None
    try:
        return _render(rec)
    except Exception:  # e.g. nesting too deep to show: the line as Airflow wrote it
        return [raw]


def _render(rec: dict[str, Any]) -> list[str]:
    event = _text(rec["event"])
    if event.startswith(("::group::", "::endgroup::")):
        return []
    detail = rec.get("error_detail")
    details = detail if isinstance(detail, list) else [detail] if isinstance(detail, dict) else []
    extra = " ".join(f"{k}={_text(v)}" for k, v in rec.items() if k not in _RECORD_FIELDS
                     or (k == "error_detail" and not isinstance(v, (list, dict, type(None)))))
    loc = ""
    if "filename" in rec:
        loc = f"loc={_text(rec['filename'])}"
        if "lineno" in rec:
            loc += f":{_text(rec['lineno'])}"
    line = (f"{_text(rec['timestamp'])} [{_text(rec.get('level', '')):<9}] "
            f"{event:<30} [{_text(rec.get('logger', ''))}]")
    lines = [" ".join(p for p in (line, loc, extra) if p)]
    for item in details:
        if not isinstance(item, dict):
            lines.append(f"error_detail: {_text(item)}")
            continue
        lines.append("Traceback (most recent call last):")
        frames = item.get("frames")
        for frame in frames if isinstance(frames, list) else []:
            if isinstance(frame, dict):
                lines.append(f'  File "{_text(frame.get("filename"))}", line '
                             f'{_text(frame.get("lineno"))}, in {_text(frame.get("name"))}')
        lines.append(f"{_text(item.get('exc_type'))}: {_text(item.get('exc_value'))}")
    return lines


def _text(value: Any) -> str:
    """A JSON value as shown in a rendered record (as Python shows it: ``None``, ``{...}``)."""
    return str(value)


def render_log_text(text: str) -> str:
    """``text`` of a worker's try log with each JSON log record rendered
    (:func:`render_record`); every other line as it is. A worker's log file stays as Airflow
    wrote it (byte offsets stay valid while it grows); readers show it through this. Only for
    a file :func:`is_record_log` says is a worker's: an in-kernel try's log is text, whatever
    its task printed."""
    if '{"' not in text:
        return text
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        lines = render_record(body.strip())
        if lines is None:
            out.append(line)
        elif lines:
            out.append("\n".join(lines) + line[len(body):])
    return "".join(out)


#: How many bytes of a log's head :func:`is_record_log` needs.
HEAD_BYTES = 64


def is_record_log(head: bytes) -> bool:
    """Whether a log file whose first bytes are ``head`` is a worker's (JSON records). Asked
    of the file's head, never of a range further in: a worker's log begins with a record,
    an in-kernel try's with Airflow's text lines (a task's printed JSON comes later)."""
    return head.lstrip()[:2] == b'{"'


def utf8_complete_len(data: bytes) -> int:
    """Length of the longest prefix of ``data`` that does not stop inside a UTF-8 character."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte & 0xC0 == 0x80:  # continuation byte: keep looking for the lead byte
            continue
        if byte < 0x80:
            return n
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return n if back >= need else n - back
    return n


def log_path_parts(
    dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
) -> list[str]:
    """Path components of a try's log under ``logs/``, as Airflow's default template lays it out.

    Raises :class:`BadRequestError` for ids that could not be one path component each.
    """
    for label, value in (("dag_id", dag_id), ("run_id", run_id), ("task_id", task_id)):
        if not value or "/" in value or "\\" in value or "\0" in value:
            raise BadRequestError(f"{label} {value!r} cannot name a log file.")
    parts = [f"dag_id={dag_id}", f"run_id={run_id}", f"task_id={task_id}"]
    if map_index >= 0:
        parts.append(f"map_index={map_index}")
    parts.append(f"attempt={try_number}.log")
    return parts


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def _refuse_link(path: str) -> ForbiddenError:
    return ForbiddenError(
        f"{path} is a symbolic link or not a regular file; "
        "Kyte only serves real files inside the session's logs folder."
    )


class LogFiles:
    """The log files of one session home, reached only through real directories and files."""

    def __init__(self, logs_folder: Path) -> None:
        self.logs_folder = logs_folder

    def open_dir(self, parts: list[str]) -> int | None:
        """A file descriptor of ``logs/<parts...>``, walked without following any link."""
        logs = str(self.logs_folder)
        try:
            fd = os.open(logs, _DIR_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise _refuse_link(logs) from e
        for part in parts:
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.close(fd)
                return None
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refuse_link(part) from e
                raise
            os.close(fd)
            fd = nfd
        return fd

    def attempts_on_disk(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> set[int]:
        parts = log_path_parts(dag_id, run_id, task_id, map_index, 1)[:-1]
        try:
            fd = self.open_dir(parts)
        except ForbiddenError:
            return set()
        if fd is None:
            return set()
        try:
            names = os.listdir(fd)
        finally:
            os.close(fd)
        found = set()
        for name in names:
            if name.startswith("attempt=") and name.endswith(".log"):
                with contextlib.suppress(ValueError):
                    n = int(name[len("attempt=") : -len(".log")])
                    if n >= 1:
                        found.add(n)
        return found

    def open_log(self, parts: list[str]) -> int | None:
        """A file descriptor of a log file (a regular file, no link anywhere), or ``None``."""
        dir_fd = self.open_dir(parts[:-1])
        if dir_fd is None:
            return None
        try:
            try:
                fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
            except FileNotFoundError:
                return None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise _refuse_link(parts[-1]) from e
                raise
        finally:
            os.close(dir_fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _refuse_link(parts[-1])
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_range(
        self, parts: list[str], offset: int, limit: int
    ) -> tuple[bytes, int, int, bool]:
        """``(bytes, start, size, records)`` of a log file; empty when the try has not logged
        yet. ``records``: the file is a worker's JSON records (judged on its head, whatever
        the range)."""
        fd = self.open_log(parts)
        if fd is None:
            return b"", 0, 0, False
        try:
            size = os.fstat(fd).st_size
            if offset < 0:
                start = line_start(fd, max(0, size + offset), size)
            else:
                start = min(offset, size)
            chunk = os.pread(fd, min(limit, size - start), start) if size > start else b""
            records = is_record_log(os.pread(fd, HEAD_BYTES, 0))
        finally:
            os.close(fd)
        return chunk, start, size, records


def line_start(fd: int, pos: int, size: int) -> int:
    """The first line start at or after ``pos``; if the rest of the file is one unfinished
    line, that line's start (looking back at most 1 MiB, else ``pos`` itself)."""
    if pos == 0:
        return 0
    window = os.pread(fd, min(_SEARCH_PIECE, size - pos + 1), pos - 1)
    i = window.find(b"\n")
    if i >= 0:
        return pos + i
    if pos - 1 + len(window) < size:
        return pos  # a line longer than the window: give up aligning, start where asked
    back = pos
    while back > 0 and pos - back < 1024 * 1024:
        lo = max(0, back - _SEARCH_PIECE)
        j = os.pread(fd, back - lo, lo).rfind(b"\n")
        if j >= 0:
            return lo + j + 1
        back = lo
    return 0 if back == 0 else pos


def search(f: Any, size: int, needle: str, matches: list[LogMatch], records: bool) -> bool:
    """Append the lines of ``f`` (its first ``size`` bytes) containing ``needle`` (casefolded).

    ``records``: ``f`` is a worker's log (:func:`is_record_log` of its head), whose JSON
    records are searched and shown as the text they render to.

    Returns whether more than :data:`MAX_SEARCH_MATCHES` lines matched (it stops there).
    Reads pieces of at most ``_SEARCH_PIECE`` bytes, so memory stays bounded on any line.
    """
    line_no, line_start, pos = 1, 0, 0
    matched_line = 0
    first_piece = b""
    while pos < size:
        piece: bytes = f.readline(min(_SEARCH_PIECE, size - pos))
        if not piece:
            break
        if pos == line_start:
            first_piece = piece
        pos += len(piece)
        seen = piece.decode("utf-8", "replace")
        if records:
            seen = render_log_text(seen)
        if matched_line != line_no and needle in seen.casefold():
            if len(matches) == MAX_SEARCH_MATCHES:
                return True
            matched_line = line_no
            text = first_piece.rstrip(b"\r\n").decode("utf-8", "replace")
            if records:
                # A worker's record shows as its first rendered line (its traceback follows).
                text = render_log_text(text).split("\n", 1)[0]
            text = text[:_MATCH_TEXT]
            matches.append(LogMatch(line=line_no, offset=line_start, text=text))
        if piece.endswith(b"\n"):
            line_no += 1
            line_start = pos
    return False
