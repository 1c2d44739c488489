"""bps: batch production. Submit YAML -> QuantumGraph -> WorkflowGraph -> a WMS plugin.

Public names are lifted here from private modules.  The workflow names
are loaded on first use, so ``bps report`` and plugins' workers start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._exceptions import (
    BpsConfigError,
    BpsError,
    EmptyGraphError,
    RunNotFoundError,
    StateFileError,
    SubmitDirError,
    WmsError,
    WmsPluginError,
    WorkflowBuildError,
)
from ._runs import RunRecord, find_run, list_runs, runs_dir
from .config import BpsConfig, load_bps_config
from .wms import (
    TERMINAL_STATES,
    BaseWmsService,
    JobReport,
    JobState,
    RunReport,
    WmsWorkflow,
    available_wms_services,
    load_wms_service_class,
)

if TYPE_CHECKING:
    from ._submit import PreparedRun, prepare, submit_prepared
    from .workflow import GenericJob, WorkflowGraph, build_workflow

_LAZY = {
    "GenericJob": "bps.workflow",
    "WorkflowGraph": "bps.workflow",
    "build_workflow": "bps.workflow",
    "PreparedRun": "bps._submit",
    "prepare": "bps._submit",
    "submit_prepared": "bps._submit",
}

__all__ = [
    "TERMINAL_STATES",
    "BaseWmsService",
    "BpsConfig",
    "BpsConfigError",
    "BpsError",
    "EmptyGraphError",
    "GenericJob",
    "JobReport",
    "JobState",
    "PreparedRun",
    "RunNotFoundError",
    "RunRecord",
    "RunReport",
    "StateFileError",
    "SubmitDirError",
    "WmsError",
    "WmsPluginError",
    "WorkflowBuildError",
    "WmsWorkflow",
    "WorkflowGraph",
    "available_wms_services",
    "build_workflow",
    "find_run",
    "list_runs",
    "load_bps_config",
    "load_wms_service_class",
    "prepare",
    "runs_dir",
    "submit_prepared",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'bps' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
