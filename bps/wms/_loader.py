"""Finding a WMS plugin class from ``wmsServiceClass``: an entry-point name or a dotted class path.

Plugins register under the ``skybatch.wms`` entry-point group (``parsl = wms_plugins.parsl:ParslService``),
so bps core never names one.  A dotted path (``pkg.module.Class`` or ``pkg.module:Class``) still
works for plugins that are not installed as distributions.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from .._exceptions import WmsPluginError
from ._service import BaseWmsService

ENTRY_POINT_GROUP = "skybatch.wms"


def available_wms_services() -> list[str]:
    """Names registered in the ``skybatch.wms`` entry-point group, sorted."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_wms_service_class(name: str) -> type[BaseWmsService]:
    """The plugin class for ``name``: an entry-point name first, else a dotted class path."""
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if matches:
        try:
            obj = matches[0].load()
        except Exception as err:
            raise WmsPluginError(
                f"WMS plugin {name!r} ({matches[0].value}) failed to load: {type(err).__name__}: {err}"
            ) from err
        return _check_class(obj, name)
    if "." in name or ":" in name:
        return _check_class(_import_dotted(name), name)
    available = ", ".join(available_wms_services()) or "none installed"
    raise WmsPluginError(
        f"unknown wmsServiceClass {name!r}; available: {available} "
        "(or give a class path such as package.module.ClassName)"
    )


def _import_dotted(path: str) -> object:
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise WmsPluginError(f"wmsServiceClass {path!r} is not a class path like package.module.ClassName")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise WmsPluginError(f"wmsServiceClass {path!r}: cannot import {module_name}: {err}") from err
    try:
        obj: object = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise WmsPluginError(f"wmsServiceClass {path!r}: {module_name} has no attribute {attr!r}") from None
    return obj


def _check_class(obj: object, name: str) -> type[BaseWmsService]:
    if not (isinstance(obj, type) and issubclass(obj, BaseWmsService)):
        raise WmsPluginError(
            f"wmsServiceClass {name!r} resolves to {obj!r}, which is not a BaseWmsService subclass"
        )
    return obj
