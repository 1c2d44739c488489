"""Serving the dashboard: who may reach it, and uvicorn on an already bound socket.

The dashboard shows run states, log tails and submit configs, so by default it listens on the
loopback address only; any other address needs a token (:func:`check_bind`).  The socket is bound
here, before uvicorn starts, so ``--port 0`` works and the printed address is the real one.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import socket
from collections.abc import Callable

from .._exceptions import DashboardError, UnprotectedDashboardError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
#: The pip extra that brings the web stack.
EXTRA_HINT = "install it with: pip install 'skybatch[dashboard]'"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback ``host`` without a token, and a token that cannot be sent in a header."""
    if token is not None and (not token or any(c.isspace() for c in token) or not token.isprintable()):
        raise UnprotectedDashboardError("--token must be a non-empty string without spaces")
    if token is None and not is_loopback(host):
        raise UnprotectedDashboardError(
            f"--host {host} would show every run, log and submit config to anyone who can reach "
            "this machine; give --token TOKEN (or $SKYBATCH_DASHBOARD_TOKEN), or keep the default "
            f"--host {DEFAULT_HOST}"
        )


def _require_extra() -> None:
    missing = [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise DashboardError(f"the dashboard needs {' and '.join(missing)}, not installed; {EXTRA_HINT}")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: any free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise DashboardError(f"--host {host}: cannot resolve it ({err.strerror})") from err
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise DashboardError(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    token: str | None = None,
    refresh_seconds: float = 2.0,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard until interrupted; ``announce`` gets its address once it is listening."""
    check_bind(host, token)
    _require_extra()
    import uvicorn

    from ._app import create_app

    app = create_app(token=token, refresh_seconds=refresh_seconds)
    sock = bind(host, port)
    try:
        if announce is not None:
            announce(url_of(sock))
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
