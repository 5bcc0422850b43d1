"""A kernel manager that starts each notebook's kernel inside the notebook's Kyte session.

jupyter-server starts a notebook's kernel through ``ServerApp.kernel_manager_class`` with the
notebook's full path in ``env["JPY_SESSION_NAME"]``. This subclass is made that class by the
extension's own config file, ``etc/jupyter/jupyter_kyte_config.json``: jupyter-server merges an
extension's config into the server's when it links the extension, before it creates the kernel
manager (``jupyter_server_config.d`` files only enable extensions). A ``kernel_manager_class``
the user sets in their server config wins. It adds the session's environment
(``AIRFLOW_HOME``, ``AIRFLOW_CONFIG``, ``KYTE_SESSION_HOME`` and the operator's extra
variables) and, for ipykernel kernels, ``--IPKernelApp.extra_extensions=kyte_jupyter`` so
the magics are loaded before the first cell runs. jupyter_client keeps both in the kernel's
launch arguments, so a restarted kernel gets them again.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.utils import ApiPath
from traitlets import Instance

from .service import AUTOLOAD_ARGUMENT, KyteService


class KyteKernelManager(AsyncMappingKernelManager):
    """``AsyncMappingKernelManager`` that gives notebook kernels their Kyte session.

    Without a Kyte service attached (the server extension disabled) it behaves exactly as
    the stock manager.
    """

    kyte_service = Instance(
        KyteService,
        allow_none=True,
        help="Set by the Kyte server extension when it loads; None leaves kernels untouched.",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self._kyte_sessions: dict[str, str] = {}

    async def start_kernel(  # type: ignore[override]
        self, *, kernel_id: str | None = None, path: ApiPath | None = None, **kwargs: Any
    ) -> str:
        """Start a kernel; a notebook's kernel gets its session's environment and magics."""
        service = self.kyte_service
        session_id = None
        if service is not None and (kernel_id is None or kernel_id not in self):
            env = dict(kwargs.get("env") or {})
            notebook = service.kernel_notebook(env.get("JPY_SESSION_NAME"))
            if notebook is not None:
                try:
                    session = await service.session_for_notebook(notebook)
                except Exception:
                    # The kernel still starts; the magics report the problem when loaded.
                    self.log.exception("Kyte: could not prepare the Airflow home of %s", notebook)
                else:
                    env.update(service.kernel_env(session))
                    kwargs["env"] = env
                    session_id = session.id
                if service.autoload_magics and self._runs_ipykernel(kwargs.get("kernel_name")):
                    extra = list(kwargs.get("extra_arguments") or [])
                    kwargs["extra_arguments"] = [*extra, AUTOLOAD_ARGUMENT]
        started: str = await super().start_kernel(kernel_id=kernel_id, path=path, **kwargs)
        if session_id is not None:
            self._kyte_sessions[started] = session_id
        return started

    def kernels_for_session(self, session_id: str) -> list[str]:
        """Ids of the running kernels started for a session."""
        for kid in [k for k in self._kyte_sessions if k not in self]:
            del self._kyte_sessions[kid]
        return [k for k, s in self._kyte_sessions.items() if s == session_id]

    def _runs_ipykernel(self, kernel_name: str | None) -> bool:
        """Whether the kernel spec launches ipykernel (the only kernel that takes the flag)."""
        ksm = self.kernel_spec_manager
        if ksm is None:
            return False
        try:
            spec = ksm.get_kernel_spec(kernel_name or self.default_kernel_name)
        except Exception:
            return False
        argv = [str(a) for a in getattr(spec, "argv", [])]
        return str(getattr(spec, "language", "")).lower() == "python" and any(
            "ipykernel" in a for a in argv
        )
