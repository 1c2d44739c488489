"""Submit-config loading: YAML layers -> one typed, validated :class:`BpsConfig`."""

from __future__ import annotations

from .._exceptions import BpsConfigError
from ._load import BUILTIN_PLACEHOLDERS, TOP_LEVEL_KEYS, default_environ, format_timestamp, load_bps_config
from ._model import (
    BpsConfig,
    FinalJobConfig,
    FinalJobWhen,
    JobResources,
    PayloadConfig,
    SiteConfig,
    TaskResources,
)

__all__ = [
    "BUILTIN_PLACEHOLDERS",
    "TOP_LEVEL_KEYS",
    "BpsConfig",
    "BpsConfigError",
    "FinalJobConfig",
    "FinalJobWhen",
    "JobResources",
    "PayloadConfig",
    "SiteConfig",
    "TaskResources",
    "default_environ",
    "format_timestamp",
    "load_bps_config",
]
