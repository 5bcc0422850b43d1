"""Real IPython kernels driven over ZMQ as a notebook front end drives them (tests/conftest.py's
``make_kernel`` fixture starts them; tests that need their own start them directly)."""

from __future__ import annotations

import os
import queue
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager


def wait_for_ti_state(db: Path, dag_id: str, task_id: str, state: str,
                      timeout: float = 180) -> None:
    """Poll a session's SQLite metastore until the task's newest task instance (the latest
    run's: ids are UUID7, ordered by time) is in ``state`` (for tests that interrupt or kill
    something while a try runs)."""
    import sqlite3

    seen = None
    deadline = time.monotonic() + timeout
    while seen != state:
        assert time.monotonic() < deadline, f"{dag_id}.{task_id} never got {state} ({seen})"
        time.sleep(0.2)
        with sqlite3.connect(db, timeout=30) as con:
            row = con.execute("SELECT state FROM task_instance WHERE dag_id=? AND task_id=? "
                              "ORDER BY id DESC", (dag_id, task_id)).fetchone()
        seen = row[0] if row else None


@dataclass
class Result:
    """What one execute request produced."""

    status: str
    stdout: str = ""
    stderr: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """Everything a user reads in the cell: streams, plain-text results, the error."""
        parts = [self.stdout, self.stderr]
        for o in self.outputs:
            data = o.get("data", {})
            if "text/plain" in data:
                parts.append(data["text/plain"])
        if self.error:
            parts.append(f"{self.error['ename']}: {self.error['evalue']}")
            parts.extend(self.error.get("traceback", []))
        return "\n".join(parts)

    def summary(self) -> str:
        """One line first (how the cell ended, its error), then all it showed: a failing
        assertion's message stays readable when a report keeps only its start."""
        head = f"cell ended {self.status}"
        if self.error:
            head += f" with {self.error.get('ename')}: {str(self.error.get('evalue'))[:300]}"
        return f"{head}\n{self.text}"

    @property
    def traceback(self) -> str:
        """The error's traceback as plain text (colours removed)."""
        if not self.error:
            return ""
        return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(self.error.get("traceback", [])))

    def data(self, mime: str) -> list[str]:
        """All outputs of one MIME type."""
        return [o["data"][mime] for o in self.outputs if mime in o.get("data", {})]


class Kernel:
    """A real ipykernel, driven over ZMQ like a notebook front end drives it."""

    def __init__(self, notebook: Path, root: Path, cwd: Path, extra_env: dict[str, str]):
        self.notebook = notebook
        env = dict(os.environ)
        env.pop("AIRFLOW_HOME", None)
        env.update({"KYTE_SESSIONS_ROOT": str(root), "JPY_SESSION_NAME": str(notebook),
                    "PYTHONUNBUFFERED": "1"})
        env.update(extra_env)
        self.km = KernelManager(kernel_name="python3")
        self.km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f",
                              "{connection_file}"]
        self.env = env
        self.cwd = cwd
        self.start()

    def start(self) -> None:
        """Start (or start again) the kernel process."""
        self.km.start_kernel(env=self.env, cwd=str(self.cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def restart(self) -> None:
        """Restart the kernel, as JupyterLab's "Restart kernel" does."""
        self.kc.stop_channels()
        self.km.restart_kernel(now=True)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, cell_id: str | None = None, timeout: float = 180) -> Result:
        """Execute one cell and collect what it shows."""
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
        msg = self.kc.session.msg("execute_request", content)
        msg["metadata"]["cellId"] = cell_id or str(uuid.uuid4())
        self.kc.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        result = Result(status="?")
        deadline = time.monotonic() + timeout
        while True:
            try:
                m = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                if not self.km.is_alive():
                    result.status = "dead"
                    return result
                if time.monotonic() > deadline:
                    raise TimeoutError(f"cell did not finish in {timeout}s:\n{code}") from None
                continue
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            kind, c = m["msg_type"], m["content"]
            if kind == "stream":
                if c["name"] == "stdout":
                    result.stdout += c["text"]
                else:
                    result.stderr += c["text"]
            elif kind in ("execute_result", "display_data", "update_display_data"):
                result.outputs.append(c)
            elif kind == "error":
                result.error = c
            elif kind == "status" and c["execution_state"] == "idle":
                break
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        result.status = reply["content"]["status"]
        if result.status == "error" and result.error is None:
            result.error = reply["content"]  # UsageError: shown on stderr, named in the reply
        return result

    def send(self, code: str) -> str:
        """Start executing a cell without waiting for it (to interrupt or kill the kernel
        while it runs); the request's msg id, for :meth:`reply`."""
        msg = self.kc.session.msg("execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True})
        self.kc.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def reply(self, msg_id: str, timeout: float = 120) -> dict[str, Any]:
        """The execute reply's content for a request :meth:`send` made."""
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        return dict(reply["content"])

    def ok(self, code: str, cell_id: str | None = None) -> Result:
        """Execute a cell that must succeed.

        A cell sent just after one that failed can land in ipykernel's stop-on-error window
        and come back ``aborted`` without having run (as a cell queued behind a failing one
        does in JupyterLab); it is sent once more.
        """
        r = self.run(code, cell_id)
        if r.status == "aborted":
            r = self.run(code, cell_id)
        assert r.status == "ok", r.summary()
        return r

    def fails(self, code: str, cell_id: str | None = None) -> Result:
        """Execute a cell that must fail."""
        r = self.run(code, cell_id)
        assert r.status == "error", r.summary()
        return r

    def value(self, expr: str) -> Any:
        """Evaluate an expression in the kernel and return its repr'd, literal value."""
        import ast

        r = self.ok(f"_test_value = {expr}\nprint(repr(_test_value))")
        return ast.literal_eval(r.stdout.strip().splitlines()[-1])

    def shutdown(self) -> None:
        """Stop the kernel process."""
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
