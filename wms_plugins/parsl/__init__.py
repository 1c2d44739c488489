"""The Parsl WMS plugin: runs a bps workflow on Parsl's local executors (threads or htex).

Importing this package does not import Parsl; only running a workflow does.
"""

from __future__ import annotations

from ._service import ParslService, ParslWorkflow
from ._site import ParslSiteSettings

__all__ = ["ParslService", "ParslSiteSettings", "ParslWorkflow"]
