"""Jupyter server configuration for the Kyte UI tests.

!! Never use this configuration in production: it opens the server to anyone on
127.0.0.1 without a token and exposes JupyterLab's objects on `window` for Galata.
"""

import json
import os
import tempfile

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821

# Everything runs as root on the CI machines.
c.ServerApp.allow_root = True  # noqa: F821
c.ServerApp.ip = "127.0.0.1"  # noqa: F821
# Not Galata's 8888: other servers may be running on this machine.
c.ServerApp.port = int(os.environ.get("KYTE_UI_PORT", "8891"))  # noqa: F821
c.ServerApp.open_browser = False  # noqa: F821

# Each test server gets its own, fresh sessions root (notebook Airflow homes).
os.environ["KYTE_SESSIONS_ROOT"] = os.environ.get("KYTE_UI_SESSIONS_ROOT") or tempfile.mkdtemp(
    prefix="kyte-ui-sessions-"
)

# The Publish dialog's target (tests/versions.spec.ts): a folder inside the root, so a test
# reads what was published through the contents API.
os.environ.setdefault(
    "KYTE_PUBLISH_TARGETS",
    json.dumps({"staging": os.path.join(c.ServerApp.root_dir, "published-dags")}),  # noqa: F821
)

# The Kyte server extension and its kernel manager, whether or not the package's own
# jupyter_server_config.d file was installed (editable installs do not install it).
c.ServerApp.jpserver_extensions = {"kyte_jupyter": True}  # noqa: F821
c.ServerApp.kernel_manager_class = "kyte_jupyter.server.kernels.KyteKernelManager"  # noqa: F821

# c.ServerApp.log_level = "DEBUG"
