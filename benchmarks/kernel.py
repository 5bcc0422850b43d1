"""A small driver for a real IPython kernel, as a notebook front end drives it over ZMQ.

The benchmarks time Kyte's magics inside the kernel (``time.perf_counter`` around the magic,
read back through the execute request's ``user_expressions``) and also the round trip the
front end sees (request sent until the kernel replies and goes idle). The kernel's memory
is read from ``/proc/<pid>/status`` (current RSS and peak ``VmHWM``); the peak can be reset
between measurements by writing ``5`` to ``/proc/<pid>/clear_refs`` (Linux ≥ 4.0).
"""

from __future__ import annotations

import ast
import os
import queue
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager


class CellError(RuntimeError):
    """A benchmark cell failed in the kernel; the message holds what the kernel said."""


@dataclass
class CellResult:
    """What one execute request produced, with its timings."""

    status: str
    round_trip: float
    expressions: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    error: str = ""


class BenchKernel:
    """One ipykernel process for one notebook path, with Kyte's environment set."""

    def __init__(self, notebook: Path, sessions_root: Path, cwd: Path,
                 extra_env: dict[str, str] | None = None) -> None:
        env = dict(os.environ)
        for name in ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "KYTE_SESSION_HOME"):
            env.pop(name, None)
        env.update({
            "KYTE_SESSIONS_ROOT": str(sessions_root),
            "JPY_SESSION_NAME": str(notebook),
            "PYTHONUNBUFFERED": "1",
        })
        env.update(extra_env or {})
        self.notebook = notebook
        self.km = KernelManager(kernel_name="python3")
        # This interpreter's ipykernel, whatever kernelspec is installed (as tests/conftest.py).
        self.km.kernel_cmd = [sys.executable, "-m",  # type: ignore[attr-defined]
                              "ipykernel_launcher", "-f", "{connection_file}"]
        t0 = time.perf_counter()
        self.km.start_kernel(env=env, cwd=str(cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)
        self.start_seconds = time.perf_counter() - t0
        self.pid: int = int(self.value("__import__('os').getpid()"))

    # ---- executing ----------------------------------------------------------------------
    def run(self, code: str, expressions: dict[str, str] | None = None,
            timeout: float = 3600) -> CellResult:
        """Execute one cell; evaluate ``expressions`` in the kernel right after it."""
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": expressions or {}, "allow_stdin": False,
                   "stop_on_error": True}
        msg = self.kc.session.msg("execute_request", content)
        msg["metadata"]["cellId"] = str(uuid.uuid4())
        msg_id = msg["header"]["msg_id"]
        t0 = time.perf_counter()
        self.kc.shell_channel.send(msg)
        result = CellResult(status="?", round_trip=0.0)
        deadline = time.monotonic() + timeout
        idle = False
        reply: dict[str, Any] | None = None
        while not (idle and reply is not None):
            if not idle:
                try:
                    m = self.kc.get_iopub_msg(timeout=1)
                except queue.Empty:
                    self._check_alive(deadline, code)
                    continue
                if m["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, c = m["msg_type"], m["content"]
                if kind == "stream":
                    if c["name"] == "stdout":
                        result.stdout += c["text"]
                    else:
                        result.stderr += c["text"]
                elif kind == "error":
                    result.error = f"{c['ename']}: {c['evalue']}"
                elif kind == "status" and c["execution_state"] == "idle":
                    idle = True
            else:
                try:
                    r = self.kc.get_shell_msg(timeout=1)
                except queue.Empty:
                    self._check_alive(deadline, code)
                    continue
                if r["parent_header"].get("msg_id") == msg_id:
                    reply = r
        result.round_trip = time.perf_counter() - t0
        assert reply is not None
        result.status = reply["content"]["status"]
        if result.status != "ok":
            result.error = result.error or (
                f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}"
            )
            return result
        for name, value in reply["content"].get("user_expressions", {}).items():
            if value.get("status") != "ok":
                raise CellError(f"expression {name!r} failed: {value.get('evalue')}")
            result.expressions[name] = ast.literal_eval(value["data"]["text/plain"])
        return result

    def ok(self, code: str, expressions: dict[str, str] | None = None,
           timeout: float = 3600) -> CellResult:
        """Execute a cell that must succeed, else raise :class:`CellError`."""
        r = self.run(code, expressions, timeout)
        if r.status != "ok":
            raise CellError(f"cell failed: {r.error}\n--- code ---\n{code[:2000]}\n"
                            f"--- stderr ---\n{r.stderr[-3000:]}")
        return r

    def value(self, expr: str) -> Any:
        """A literal value evaluated in the kernel."""
        return self.ok("", {"v": expr}).expressions["v"]

    def _check_alive(self, deadline: float, code: str) -> None:
        if not self.km.is_alive():
            raise CellError(f"the kernel died while running:\n{code[:500]}")
        if time.monotonic() > deadline:
            raise CellError(f"cell did not finish in time:\n{code[:500]}")

    # ---- memory -------------------------------------------------------------------------
    def memory(self) -> dict[str, float]:
        """Current RSS and peak RSS (VmHWM) of the kernel process, in MB."""
        return proc_memory(self.pid)

    def reset_peak(self) -> bool:
        """Reset the kernel's peak RSS so the next reading is the peak of what follows."""
        return reset_peak(self.pid)

    def shutdown(self) -> None:
        """Stop the kernel process (this kernel only)."""
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)


def proc_memory(pid: int) -> dict[str, float]:
    """``{"rss_mb", "peak_mb"}`` of a process from ``/proc`` (psutil as a fallback)."""
    try:
        fields = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(rest.split()[0]) / 1024
        return {"rss_mb": fields["VmRSS"], "peak_mb": fields["VmHWM"]}
    except (OSError, KeyError, ValueError):
        import psutil

        rss = psutil.Process(pid).memory_info().rss / 2**20
        return {"rss_mb": rss, "peak_mb": rss}


def reset_peak(pid: int) -> bool:
    """Reset a process's peak RSS (``VmHWM``); False where the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False
