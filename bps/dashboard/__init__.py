"""``bps dashboard``: a read-only web page (and JSON API) over every run in the runs index.

The web stack (Starlette on uvicorn) is the optional ``dashboard`` extra, so this package imports
it only when an application is made or served.  :func:`run_list` and :func:`run_detail` are the
API's data, usable without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._exceptions import DashboardError, UnprotectedDashboardError
from ._serve import DEFAULT_HOST, DEFAULT_PORT, check_bind, is_loopback, serve
from ._snapshot import run_detail, run_list

if TYPE_CHECKING:
    from ._app import create_app

__all__ = [
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
]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # imports starlette: only when asked for
        from ._app import create_app

        return create_app
    raise AttributeError(f"module 'bps.dashboard' has no attribute {name!r}")
