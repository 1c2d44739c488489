"""Finding WMS plugins: entry points, dotted paths, and the errors for everything else."""

from __future__ import annotations

import pytest

from bps import WmsPluginError
from bps.wms import ENTRY_POINT_GROUP, available_wms_services, load_wms_service_class
from wms_plugins.parsl import ParslService


def test_entry_point_name() -> None:
    assert ENTRY_POINT_GROUP == "skybatch.wms"
    assert "parsl" in available_wms_services()
    assert load_wms_service_class("parsl") is ParslService


@pytest.mark.parametrize("path", ["wms_plugins.parsl.ParslService", "wms_plugins.parsl:ParslService"])
def test_dotted_class_path(path: str) -> None:
    assert load_wms_service_class(path) is ParslService


def test_dotted_path_outside_any_distribution() -> None:
    from bps_fake_wms import FakeService

    assert load_wms_service_class("bps_fake_wms.FakeService") is FakeService


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(WmsPluginError, match=r"unknown wmsServiceClass 'condor'; available: .*parsl"):
        load_wms_service_class("condor")


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("no_such_module_xyz.Service", "cannot import no_such_module_xyz"),
        ("bps_fake_wms.Missing", "has no attribute 'Missing'"),
        ("bps_fake_wms.NotAService", "not a BaseWmsService subclass"),
    ],
)
def test_bad_dotted_paths(path: str, pattern: str) -> None:
    with pytest.raises(WmsPluginError, match=pattern):
        load_wms_service_class(path)


def test_plugin_error_is_a_lookup_error() -> None:
    assert issubclass(WmsPluginError, LookupError)


def test_importing_the_parsl_plugin_does_not_import_parsl() -> None:
    import subprocess
    import sys

    code = "import sys, wms_plugins.parsl, bps.cli; print('parsl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
