"""The Kyte jupyter-server extension: per-notebook Airflow homes and the ``/kyte`` REST API."""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Float, List, Unicode, default, validate

from ..session import SessionStore, default_sessions_root
from ..session.metastore import configured_template, is_postgres
from .handlers import handlers
from .kernels import KyteKernelManager
from .service import CONTENTS_SCHEMA_ID, KyteService

KERNEL_MANAGER_CLASS = "kyte_jupyter.server.kernels.KyteKernelManager"
#: The kernel's variable naming the cluster-policy module (read by kyte_jupyter.lint.kernel).
POLICY_ENV = "KYTE_POLICY_MODULE"


class KyteExtensionApp(ExtensionApp):
    """Gives every notebook its own Airflow home and serves the sidebar's REST API.

    Configure it in ``jupyter_server_config.py`` as ``c.KyteExtensionApp.<trait>``, or on the
    command line as ``--KyteExtensionApp.<trait>=...``.
    """

    name = "kyte"
    description = "Kyte for Jupyter: an isolated Apache Airflow per notebook."
    load_other_extensions = True

    sessions_root = Unicode(
        config=True,
        help="""Directory that holds the notebooks' Airflow homes (one sub-directory each).
        Defaults to $KYTE_SESSIONS_ROOT, else <jupyter data dir>/kyte/sessions.""",
    )

    airflow_config = Dict(
        config=True,
        help="""Extra Airflow configuration written into the airflow.cfg of every new home,
        as {section: {key: value}}, e.g. {"core": {"default_task_retries": "1"}}. To change
        existing homes too, use extra_env with AIRFLOW__SECTION__KEY variables.""",
    )

    extra_env = Dict(
        value_trait=Unicode(),
        config=True,
        help="""Environment variables given to every notebook kernel (after AIRFLOW_HOME is
        set), e.g. {"AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1"}. Applies to existing homes
        from their next kernel start.""",
    )

    connections_files = List(
        Unicode(),
        config=True,
        help="""Airflow connection files (JSON, YAML or .env, in the format of
        `airflow connections import`) preloaded into every new home.""",
    )

    variables_files = List(
        Unicode(),
        config=True,
        help="""Airflow variable files (JSON, YAML or .env, in the format of
        `airflow variables import`) preloaded into every new home.""",
    )

    retention_days = Float(
        0.0,
        config=True,
        help="""Delete homes not used for this many days when the server starts
        (0 keeps them forever). Deleting a home deletes its runs, XComs and logs.""",
    )

    notebook_extensions = List(
        Unicode(),
        default_value=[".ipynb"],
        config=True,
        help="""File suffixes whose kernels get a Kyte session (add ".py" for jupytext
        notebooks). Other kernels (consoles, scripts) are started untouched.""",
    )

    autoload_magics = Bool(
        True,
        config=True,
        help="""Start notebooks' ipykernel kernels with the Kyte magics already loaded
        (--IPKernelApp.extra_extensions=kyte_jupyter), so no %load_ext is needed.""",
    )

    publish_targets = Dict(
        value_trait=Unicode(),
        config=True,
        help="""Where users may publish DAG files (`jupyter kyte publish`, the Publish dialog),
        as {name: target}: a folder path, or git+URL#BRANCH[:FOLDER] for a branch of a git
        repository (written with dulwich; one commit per publish). The command line reads the
        same setting from the Jupyter config files.""",
    )

    policy_module = Unicode(
        "",
        config=True,
        help="""Path of the deployment's airflow_local_settings.py whose cluster policies
        (dag_policy, task_policy) the static checks apply to notebook DAGs, as the deployment
        would. Given to notebook kernels as KYTE_POLICY_MODULE (it wins over the same variable
        in extra_env). Empty: no policies are checked.""",
    )

    metastore_url = Unicode(
        "",
        config=True,
        help=(
            "Where session metastores live. Empty (the default): a SQLite file in each "
            "session's home. A PostgreSQL SQLAlchemy URL template, e.g. "
            "'postgresql+psycopg://kyte_{user}:PASSWORD@db:5432/kyte_{user}_{session}': each "
            "session gets its own database, cloned from a template database migrated once "
            "per Airflow version. {user} is the (hub) user, {session} the session id. "
            "Defaults to $KYTE_METASTORE_URL."
        ),
    )

    @default("metastore_url")
    def _default_metastore_url(self) -> str:
        return configured_template() or ""

    @validate("metastore_url")
    def _validate_metastore_url(self, proposal: Any) -> str:
        value = str(proposal["value"] or "")
        if value and not is_postgres(value):
            raise ValueError(
                "metastore_url must be empty (SQLite) or a PostgreSQL URL template "
                "(postgresql+psycopg://…/kyte_{user}_{session})."
            )
        return value

    @default("sessions_root")
    def _default_sessions_root(self) -> str:
        return str(default_sessions_root())

    @validate("airflow_config")
    def _validate_airflow_config(self, proposal: Any) -> dict[str, dict[str, str]]:
        value = proposal["value"]
        out: dict[str, dict[str, str]] = {}
        for section, options in value.items():
            if not isinstance(options, dict):
                raise ValueError(
                    f"airflow_config[{section!r}] must be a mapping of option to value."
                )
            out[str(section)] = {str(k): str(v) for k, v in options.items()}
        return out

    def kernel_extra_env(self) -> dict[str, str]:
        """``extra_env`` plus ``KYTE_POLICY_MODULE`` from ``policy_module``: what every
        notebook kernel gets at each start (so a changed setting reaches existing homes)."""
        env = dict(self.extra_env)
        if self.policy_module:
            path = os.path.abspath(os.path.expanduser(self.policy_module))
            if not os.path.isfile(path):
                self.log.warning(
                    "Kyte: policy_module %s does not exist; kernels will "
                    "report it under each %%%%dag cell",
                    path,
                )
            env[POLICY_ENV] = path
        return env

    def initialize_settings(self) -> None:
        """Build the session store and service; attach them to kernels and contents events."""
        serverapp = self.serverapp
        assert serverapp is not None, "initialize_settings runs after linking to a server"
        store = SessionStore(
            self.sessions_root,
            airflow_config=self.airflow_config,
            env=self.extra_env,
            connections_files=list(self.connections_files),
            variables_files=list(self.variables_files),
            metastore_url=self.metastore_url,
        )
        self.service = KyteService(
            store,
            serverapp.root_dir,
            extra_env=self.kernel_extra_env(),
            notebook_extensions=tuple(self.notebook_extensions),
            autoload_magics=self.autoload_magics,
            log=self.log,
        )
        self.settings["kyte_service"] = self.service
        self.settings["kyte_publish_targets"] = dict(self.publish_targets)

        km = serverapp.kernel_manager
        if isinstance(km, KyteKernelManager):
            km.kyte_service = self.service
            self.service.kernel_manager = km
        else:
            self.log.warning(
                "Kyte: ServerApp.kernel_manager_class is %s.%s, so notebook kernels will not "
                "start in their Airflow home. Set c.ServerApp.kernel_manager_class = %r.",
                type(km).__module__,
                type(km).__qualname__,
                KERNEL_MANAGER_CLASS,
            )
        if serverapp.event_logger is not None:
            serverapp.event_logger.add_listener(
                schema_id=CONTENTS_SCHEMA_ID, listener=self.service.on_contents_event
            )
        for path in [*self.connections_files, *self.variables_files]:
            if not os.path.isfile(path):
                self.log.warning("Kyte: preload file %s does not exist; it will be skipped", path)
        self.service.start_background(self.retention_days)
        self.log.info("Kyte: notebook Airflow homes live in %s", store.root)
        if store.metastore_url:
            self.log.info("Kyte: session metastores are PostgreSQL databases (%s)",
                          store.postgres.url_for("{session}").database if store.postgres else "")

    def initialize_handlers(self) -> None:
        """Register the ``/kyte`` REST API."""
        self.handlers.extend(handlers())

    async def stop_extension(self) -> None:
        """Stop Kyte's worker threads."""
        service = getattr(self, "service", None)
        if service is not None:
            service.shutdown()
