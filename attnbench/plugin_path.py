"""The Hydra search-path plugin that adds installed plugins' config packages (see plugins.py).

Kept apart from plugins.py so that reading plugin YAMLs (`attnbench list`) does not import Hydra.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from attnbench.plugins import PROVIDER, conf_packages


class AttnbenchPluginSearchPath(SearchPathPlugin):
    """Appends every plugin's config package to Hydra's search path (after attnbench's conf/,
    so a plugin cannot shadow a built-in option)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for plugin in conf_packages():
            search_path.append(provider=PROVIDER, path=f"pkg://{plugin.package}")


def register_search_path() -> None:
    """Register the search-path plugin with Hydra (idempotent; Hydra's launchers carry the
    registration to their workers with the rest of Hydra's state)."""
    from hydra.core.plugins import Plugins

    Plugins.instance().register(AttnbenchPluginSearchPath)
