"""The WMS plugin interface, job states and plugin lookup."""

from __future__ import annotations

from .._jsonfile import read_versioned as read_versioned_json
from .._jsonfile import write_versioned_json
from ._loader import ENTRY_POINT_GROUP, available_wms_services, load_wms_service_class
from ._service import BaseWmsService, JobReport, PingResult, RunReport, WmsWorkflow
from ._state_file import STATE_FILENAME, JobStatus, RunState, read_state, utc_now, write_state
from ._states import STATE_ORDER, TERMINAL_STATES, JobState, summarize_states

__all__ = [
    "ENTRY_POINT_GROUP",
    "STATE_FILENAME",
    "STATE_ORDER",
    "TERMINAL_STATES",
    "BaseWmsService",
    "JobReport",
    "JobStatus",
    "JobState",
    "PingResult",
    "RunReport",
    "RunState",
    "WmsWorkflow",
    "available_wms_services",
    "load_wms_service_class",
    "read_state",
    "read_versioned_json",
    "summarize_states",
    "utc_now",
    "write_state",
    "write_versioned_json",
]
