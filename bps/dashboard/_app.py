"""The dashboard's ASGI application: one HTML page and a read-only JSON API.

Routes (GET and HEAD only; anything else is 405, so nothing can change through it)::

    /                    the page: HTML with its CSS and JavaScript inlined (one response, so a
                         token given as ?token=T in the address covers everything the page loads)
    /api/runs            every run in the runs index with its state and job counts
    /api/runs/{run_id}   one run in full: per-label progress and memory, grouped failures with
                         log tails, when each job ended, the submit config

With a token, every request must carry it, as ``Authorization: Bearer T`` or ``?token=T``;
anything else gets 401.  The page reads the token from its own address and sends it as the header.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .._exceptions import RunNotFoundError
from ._snapshot import run_detail, run_list

#: Headers on every response: never cached (the data change), never framed, never sniffed.
_COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


_RUN_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def _static(name: str) -> str:
    return resources.files("bps.dashboard").joinpath("static", name).read_text(encoding="utf-8")


class TokenGate:
    """Pure ASGI middleware: with a token set, requests without it (header or query) get 401."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    def _presented(self, scope: Scope) -> bytes | None:
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                return bytes(value[7:].strip())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        values = query.get("token")
        return values[-1].encode() if values else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = self._presented(scope)
        if presented is not None and hmac.compare_digest(presented, self.token):
            await self.app(scope, receive, send)
            return
        why = "no token given" if presented is None else "wrong token"
        response = JSONResponse(
            {
                "error": f"{why}: this dashboard needs its token, as the header "
                "'Authorization: Bearer TOKEN' or in the address as ?token=TOKEN"
            },
            status_code=401,
            headers={**_COMMON_HEADERS, "WWW-Authenticate": 'Bearer realm="skybatch dashboard"'},
        )
        await response(scope, receive, send)


def _json(data: dict[str, Any], status_code: int = 200) -> Response:
    return JSONResponse(data, status_code=status_code, headers=_COMMON_HEADERS)


def create_app(*, token: str | None = None, refresh_seconds: float = 2.0) -> Starlette:
    """The dashboard application (serve it with uvicorn, or use Starlette's TestClient).

    ``refresh_seconds`` is how often the page polls the API for changes.
    """
    page_template = _static("index.html")
    style = _static("dashboard.css")
    script = _static("dashboard.js")

    def index(request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        page = (
            page_template.replace("%%STYLE%%", style)
            .replace("%%SCRIPT%%", script)
            .replace("%%NONCE%%", nonce)
            .replace("%%REFRESH%%", json.dumps(refresh_seconds))
        )
        policy = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        )
        return HTMLResponse(page, headers={**_COMMON_HEADERS, "Content-Security-Policy": policy})

    def api_runs(request: Request) -> Response:
        return _json(run_list())

    def api_run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if not _RUN_ID.fullmatch(run_id):  # ids and id prefixes only: no paths through the API
            return _json({"error": f"not a run id: {run_id!r}"}, status_code=404)
        try:
            return _json(run_detail(run_id))
        except RunNotFoundError as err:
            return _json({"error": str(err)}, status_code=404)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/api/runs", api_runs, methods=["GET"]),
        Route("/api/runs/{run_id}", api_run, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TokenGate, token=token)])
