"""Where a try's output goes: its log file (kept), and the cell (while it runs), both clean.

Airflow writes a try's log through structlog and stdlib logging, and the task prints; all of
it lands in the try's log file, laid out as Airflow's ``log_filename_template``, with
secrets masked as Airflow masks task logs. The cell gets the same lines without ANSI colours
and without what only Airflow's UI reads (log-folding markers) or what buries the task's own
output (the multi-line ``RuntimeTaskInstance(...)`` dump after "Pushing xcom", exception
tracebacks: the cell shows the task's traceback once, at the end).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..bridge import redact
from ..session import Session


def log_path(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int,
             try_number: int) -> Path:
    """A try's log file, laid out as Airflow's default ``log_filename_template``."""
    path = session.logs_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        path = path / f"map_index={map_index}"
    return path / f"attempt={try_number}.log"


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Airflow's log-folding markers ("::group::Pre Execute", "::endgroup::"): a record of its own.
_GROUP_MARKER = re.compile(r"^.*::(end)?group::.*$\n?", re.MULTILINE)
# A line of structlog's console renderer: time, [level], event, [logger], key=value ...
_STRUCTLOG = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?Z? \[(?P<level>\w+)\s*\] "
    r"(?P<event>.*?)(?:\s+\[(?P<logger>[\w.\-]+)\])?(?P<kv>(?: [\w.]+=.*)?)$"
)
# structlog's console renderer appends the event's extra keys; the task instance after
# "Pushing xcom" renders as a repr of many lines.
_TI_DUMP = re.compile(r"\s*ti=RuntimeTaskInstance\(.*", re.DOTALL)


class LineFilter:
    """Turns raw task output into clean lines for the cell (one record, one line).

    Text arrives in arbitrary pieces; whole lines are judged. A traceback (its header and
    everything indented or continuing it) is held back from the cell: it is in the log file,
    and the cell shows the task's own frames once, when the try ends.
    """

    def __init__(self) -> None:
        self._partial = ""
        self._in_traceback = False
        self._in_dump = False

    def feed(self, text: str) -> str:
        """Clean lines ready to show, from ``text`` (already masked, ANSI removed)."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        shown = (self._clean(line) for line in lines)
        return "".join(line + "\n" for line in shown if line is not None)

    def flush(self) -> str:
        """What is left of an unterminated last line."""
        rest, self._partial = self._partial, ""
        return (self._clean(rest) or "") if rest else ""

    def _clean(self, line: str) -> str | None:
        if "::group::" in line or "::endgroup::" in line:
            return None
        if self._in_dump:
            # The dump goes on over indented lines and ends with a closing bracket.
            if line[:1] in (" ", "\t", ")", "]", "}") or not line.strip():
                return None
            self._in_dump = False
        if self._in_traceback:
            if line[:1] in (" ", "\t") or not line.strip() or _EXC_LINE.match(line):
                return None
            self._in_traceback = False
        if line.startswith("Traceback (most recent call last)"):
            self._in_traceback = True
            return None
        if "ti=RuntimeTaskInstance(" in line:
            self._in_dump = line.count("(") > line.count(")")
            line = _TI_DUMP.sub("", line).rstrip()
        return _readable(line) if line.strip() else None


def _readable(line: str) -> str:
    """A structlog console line as one short line: ``[time] LEVEL - event key=value``."""
    m = _STRUCTLOG.match(line)
    if m is None:
        return line
    extras = [kv for kv in re.split(r" (?=[\w.]+=)", m["kv"].strip()) if kv
              and not kv.startswith("loc=")]
    tail = (" " + " ".join(extras)) if extras else ""
    return f"[{m['ts'].replace('T', ' ')}] {m['level'].upper()} - {m['event'].rstrip()}{tail}"


# The last line of a traceback ("ValueError: …"), or a chained-exception separator.
_EXC_LINE = re.compile(
    r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Timeout)\b.*|"
    r"During handling of the above exception.*|"
    r"The above exception was the direct cause.*)$"
)


class _Capture:
    """Where task output goes right now: the active try's log file, and whether to echo.

    Loggers (structlog's print logger among them) keep a reference to the ``sys.stdout``
    they first saw, so the stream objects installed for a try must keep working after it:
    they consult this state on every write instead of holding a log file themselves.
    """

    log: IO[str] | io.TextIOBase | None = None
    echo: bool = True


class Tee(io.TextIOBase):
    """Write to the active try's log file and, clean, to the cell (when echoing)."""

    def __init__(self, primary: Any) -> None:
        super().__init__()
        self._primary = primary
        self._lines = LineFilter()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        log = _Capture.log
        if log is None:
            self._primary.write(s)
            return len(s)
        text = _ANSI.sub("", redact(s))
        log.write(_GROUP_MARKER.sub("", text))
        if _Capture.echo:
            shown = self._lines.feed(text)
            if shown:
                self._primary.write(shown)
        return len(s)

    def end_try(self) -> None:
        """Show what is left of the try's last line; start the next try clean."""
        rest = self._lines.flush()
        self._lines = LineFilter()
        if rest and _Capture.echo:
            self._primary.write(rest)

    def flush(self) -> None:
        if _Capture.log is not None:
            # Loggers flush after every line; forwarding that to ipykernel's stream would wait
            # for its IOPub thread each time. It sends buffered output every 0.2 s anyway.
            _Capture.log.flush()
            return
        self._primary.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return int(self._primary.fileno())

    encoding = "utf-8"


class _LogHandler(logging.Handler):
    """Copy stdlib log records emitted during a try into its log file."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s - %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        log = _Capture.log
        if log is None or record.name.startswith(("airflow.api_fastapi", "sqlalchemy")):
            return
        with contextlib.suppress(Exception):
            log.write(_ANSI.sub("", redact(self.format(record))) + "\n")


HANDLER = _LogHandler()


@contextlib.contextmanager
def capture(path: Path, echo: bool) -> Iterator[IO[str]]:
    """Send everything written during the block to the try's log file (and the cell)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8", buffering=1) as log_file:
        out, err = sys.stdout, sys.stderr
        sys.stdout = out if isinstance(out, Tee) else Tee(out)
        sys.stderr = err if isinstance(err, Tee) else Tee(err)
        _Capture.log, _Capture.echo = log_file, echo
        root = logging.getLogger()
        # Airflow's logging config gave the root logger a handler on the kernel's own stdout
        # before any try: during a try it writes through the Tee like print() does (log file,
        # and clean lines in the cell only when echoing), instead of raw into the cell.
        swapped = [(h, h.stream) for h in root.handlers
                   if isinstance(h, logging.StreamHandler) and h.stream in (out, err)]
        for handler, _stream in swapped:
            handler.setStream(sys.stdout)
        if not swapped:
            root.addHandler(HANDLER)
        real_exit = os._exit

        def _exit(code: int) -> None:
            # A task that calls os._exit would kill the kernel; fail the task instead.
            raise SystemExit(f"the task called os._exit({code}); Kyte stopped it there")

        os._exit = _exit  # type: ignore[assignment]
        try:
            yield log_file
        finally:
            os._exit = real_exit
            root.removeHandler(HANDLER)
            for handler, stream in swapped:
                handler.setStream(stream)
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, Tee):
                    stream.end_try()
            _Capture.log, _Capture.echo = None, True
            sys.stdout, sys.stderr = out, err


def route_to(log: IO[str] | io.TextIOBase, pipe: IO[str]) -> None:
    """In a forked task process: everything goes to ``log`` and, clean, to ``pipe``."""
    sys.stdout = sys.stderr = Tee(pipe)
    _Capture.log, _Capture.echo = log, True
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log)  # the kernel's streams belong to the parent
    logging.getLogger().addHandler(HANDLER)


def end_forked_try() -> None:
    """In a forked task process: write out the last partial line."""
    if isinstance(sys.stdout, Tee):
        sys.stdout.end_try()


# ---- logs written by executor workers -------------------------------------------------------
# A worker's log file stays Airflow's JSON records; readers render them
# (:func:`kyte_jupyter.state.logs.render_log_text`).


def read_log_text(path: Path) -> str:
    """A try's log as text: an in-kernel try's exactly as written (undecodable bytes
    replaced), a worker's records rendered. Which it is, the file's head says
    (:func:`kyte_jupyter.state.logs.is_record_log`), never a line a task printed."""
    from ..state.logs import HEAD_BYTES, is_record_log, render_log_text

    data = path.read_bytes()
    text = data.decode("utf-8", errors="replace")
    return render_log_text(text) if is_record_log(data[:HEAD_BYTES]) else text


def error_line(path: Path) -> str | None:
    """The last failure a try's log records, as ``ExcType: message`` (or None). Whatever the
    log holds, this does not raise (a log that cannot be read has none)."""
    try:
        text = read_log_text(path)
    except OSError:
        return None
    found = None
    for match in re.finditer(r"^(?!\s)([A-Za-z_][\w.]*(?:Error|Exception|Timeout|Interrupt"
                             r"|Exit|Fail\w*)): (.*)$", text, re.MULTILINE):
        found = f"{match.group(1)}: {match.group(2)}"
    return found
