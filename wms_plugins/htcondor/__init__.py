"""The HTCondor WMS plugin: a bps workflow as one DAGMan DAG on an HTCondor pool.

Importing this package does not import the HTCondor bindings (``htcondor2``); only submitting,
cancelling, restarting and asking the schedd do.  See docs/operator-guide.md.
"""

from __future__ import annotations

from ._service import HTCondorService, HTCondorWorkflow
from ._site import HTCondorSiteSettings

__all__ = ["HTCondorService", "HTCondorSiteSettings", "HTCondorWorkflow"]
