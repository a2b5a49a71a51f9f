"""pytest plugin: a private stack per xdist worker, generic fixtures, diagnostics, leak check.

It costs nothing until a test asks for an envkit fixture: at start it imports only
pytest and envkit's configuration, reads settings and picks the session id, and makes no
engine call (pytest-xdist's plugin keeps its heavy machinery out of the same way). The
engine connection, the kits, the dead-owner sweep and the images are made when the first
fixture needs them; the end-of-run leak check runs only in runs that reached the engine.

This module is the ``pytest11`` entry point and holds no hook itself: it names the
plugin's parts in ``pytest_plugins``, which pytest imports and registers with it (so
``-p no:envkit`` turns them all off), one job each:

- :mod:`envkit._plugin_options`: options, ini values, the settings and ids they resolve to;
- :mod:`envkit._plugin_session`: the run's state, its start, Ctrl-C/SIGTERM, its end and
  the leak check;
- :mod:`envkit._plugin_fixtures`: ``envkit_session``, ``envkit_stack``,
  ``envkit_stack_factory``;
- :mod:`envkit._plugin_report`: the header line and a failed test's evidence.

What a kit's own plugin or a test imports from here stays here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envkit._plugin_fixtures import StackFactory
    from envkit._plugin_options import DEFAULT_POOL, kit_options
    from envkit._plugin_session import HOLDER_KEY

# Re-exported on first use, not at import: pytest must import the modules below itself
# (after marking them for assertion rewriting), or it warns on every run.
__all__ = ["DEFAULT_POOL", "HOLDER_KEY", "StackFactory", "kit_options"]
_EXPORTS = {"DEFAULT_POOL": "envkit._plugin_options", "kit_options": "envkit._plugin_options",
            "HOLDER_KEY": "envkit._plugin_session", "StackFactory": "envkit._plugin_fixtures"}

pytest_plugins = (
    "envkit._plugin_options",
    "envkit._plugin_session",
    "envkit._plugin_fixtures",
    "envkit._plugin_report",
)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'envkit.plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value
