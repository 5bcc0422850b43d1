"""Kyte's settings as the Jupyter server's config files give them, for code that runs outside
the server (the ``jupyter kyte`` commands, kernels): ``KyteExtensionApp`` traits such as
``policy_module`` and ``publish_targets``.
"""

from __future__ import annotations

import os


def server_setting(name: str) -> object:
    """A ``KyteExtensionApp`` setting from the Jupyter server config files, read with
    traitlets' loaders, later (more specific) files winning as in jupyter-server."""
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config.loader import Config, JSONFileConfigLoader, PyFileConfigLoader

    merged = Config()
    for folder in reversed(jupyter_config_path()):
        for loader_class, filename in (
            (JSONFileConfigLoader, "jupyter_server_config.json"),
            (PyFileConfigLoader, "jupyter_server_config.py"),
        ):
            if not os.path.isfile(os.path.join(folder, filename)):
                continue
            try:
                merged.merge(loader_class(filename, path=folder).load_config())
            except Exception:  # an unreadable config file is jupyter-server's to report
                continue
    return merged.get("KyteExtensionApp", {}).get(name)
