"""Submit-config loading: YAML layers -> one typed, validated :class:`BpsConfig`."""

from __future__ import annotations

from .._exceptions import BpsConfigError
from ._load import BUILTIN_PLACEHOLDERS, default_environ, format_timestamp, load_bps_config
from ._lsst import TOP_LEVEL_KEYS
from ._model import (
    BUILTIN_CLUSTER_ALGORITHMS,
    DEFAULT_MEMORY_LIMIT_FACTOR,
    BpsConfig,
    ClusteringConfig,
    ClusterSpec,
    CommandTemplates,
    FinalJobConfig,
    FinalJobWhen,
    JobResources,
    PayloadConfig,
    SiteConfig,
    TaskResources,
)

__all__ = [
    "BUILTIN_CLUSTER_ALGORITHMS",
    "BUILTIN_PLACEHOLDERS",
    "DEFAULT_MEMORY_LIMIT_FACTOR",
    "TOP_LEVEL_KEYS",
    "BpsConfig",
    "BpsConfigError",
    "ClusterSpec",
    "ClusteringConfig",
    "CommandTemplates",
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
