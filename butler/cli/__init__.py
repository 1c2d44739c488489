"""The ``butler`` command line (console script ``butler = butler.cli:main``).

Commands are thin typed wrappers over library calls; heavy imports (sqlalchemy, the Butler)
happen inside the commands, so ``butler --help`` starts fast.
"""

from __future__ import annotations

from ._group import PluginGroup
from ._main import PLUGIN_GROUP, main

__all__ = ["PLUGIN_GROUP", "PluginGroup", "main"]
