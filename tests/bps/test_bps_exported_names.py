"""Pin the public names of bps and the Parsl plugin, so the API changes only on purpose."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "bps": [
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
        "TERMINAL_STATES",
        "WmsError",
        "WmsPluginError",
        "WmsWorkflow",
        "WorkflowBuildError",
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
    ],
    "bps.config": [
        "BUILTIN_CLUSTER_ALGORITHMS",
        "BUILTIN_PLACEHOLDERS",
        "BpsConfig",
        "BpsConfigError",
        "ClusterSpec",
        "ClusteringConfig",
        "CommandTemplates",
        "DEFAULT_MEMORY_LIMIT_FACTOR",
        "FinalJobConfig",
        "FinalJobWhen",
        "JobResources",
        "PayloadConfig",
        "SiteConfig",
        "TOP_LEVEL_KEYS",
        "TaskResources",
        "default_environ",
        "format_timestamp",
        "load_bps_config",
    ],
    "bps.dashboard": [
        "DEFAULT_HOST",
        "DEFAULT_PORT",
        "DashboardError",
        "UnprotectedDashboardError",
        "check_bind",
        "create_app",
        "is_loopback",
        "run_detail",
        "run_list",
        "serve",
    ],
    "bps.wms": [
        "BaseWmsService",
        "ENTRY_POINT_GROUP",
        "JobReport",
        "JobState",
        "JobStatus",
        "PingResult",
        "RunReport",
        "RunState",
        "STATE_FILENAME",
        "STATE_ORDER",
        "TERMINAL_STATES",
        "WmsWorkflow",
        "available_wms_services",
        "load_wms_service_class",
        "read_state",
        "read_versioned_json",
        "summarize_states",
        "utc_now",
        "write_state",
        "write_versioned_json",
    ],
    "bps.workflow": [
        "ClusterFunction",
        "FINAL_LABEL",
        "GenericJob",
        "INIT_LABEL",
        "QuantumCluster",
        "QuantumGraphSummary",
        "WORKFLOW_FILENAME",
        "WorkflowGraph",
        "build_workflow",
        "read_workflow",
        "write_workflow",
    ],
    "wms_plugins.parsl": ["ParslService", "ParslSiteSettings", "ParslWorkflow"],
}


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_exported_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(EXPECTED[module_name])
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_job_states_have_docstrings_and_terminal_set() -> None:
    from bps.wms import TERMINAL_STATES, JobState

    assert [s.value for s in JobState] == [
        "UNREADY",
        "READY",
        "PENDING",
        "RUNNING",
        "HELD",
        "SUCCEEDED",
        "FAILED",
        "PRUNED",
        "DELETED",
    ]
    assert TERMINAL_STATES == {JobState.SUCCEEDED, JobState.FAILED, JobState.PRUNED, JobState.DELETED}
    import ast
    import inspect

    import bps.wms._states as states_module

    tree = ast.parse(inspect.getsource(states_module))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "JobState")
    documented = [
        target.id
        for stmt, doc in zip(cls.body, cls.body[1:], strict=False)
        if isinstance(stmt, ast.Assign) and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
        for target in stmt.targets
        if isinstance(target, ast.Name)
    ]
    assert documented == [s.name for s in JobState]
