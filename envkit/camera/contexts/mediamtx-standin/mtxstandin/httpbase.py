"""What every HTTP server of upstream shares: headers, CORS, error bodies, JSON.

Why: upstream's HTTP servers (API, HLS, WebRTC) are gin engines behind one middleware:
``Server: mediamtx``, ``Access-Control-Allow-Origin`` from ``*AllowOrigins``, CORS
preflights answered 204, and gin's plain ``404 page not found`` for unknown routes and
for methods without a route (HEAD included). A client that looks at headers must not be
able to tell the stand-in from upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from . import gofmt, log, web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ALLOW_METHODS = "OPTIONS, GET, POST, PATCH, DELETE"
ALLOW_HEADERS = "Authorization, Content-Type"


def json_response(data: Any, status: int = 200) -> web.Response:
    """Answer like gin's ``ctx.JSON``: compact Go-style JSON."""
    return web.Response(text=gofmt.dumps(data), status=status,
                        content_type="application/json", charset="utf-8")


def error_response(status: int, message: str, tag: str = "API") -> web.Response:
    """Upstream's ``writeError``: logged, then ``{"status":"error","error":...}``."""
    log.error(f"[{tag}] {message}")
    return json_response({"status": "error", "error": message}, status)


def not_found() -> web.Response:
    """Answer as gin does for to a route that does not exist."""
    return web.Response(body=b"404 page not found", status=404, content_type="text/plain")


def make_app(allow_origins: Callable[[], list[str]],
             inner: list[Any] | None = None) -> web.Application:
    """An application with upstream's common middleware in front of ``inner``."""

    @web.middleware
    async def common(request: web.Request, handler: Handler) -> web.StreamResponse:
        origins = allow_origins()
        origin = "*" if "*" in origins else request.headers.get("Origin", "")
        cors = {"Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true"}
        if origin and origin not in origins and "*" not in origins:
            cors = {}
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            return web.Response(status=204, headers={
                **cors, "Server": "mediamtx", "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS})
        try:
            response = await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            response = not_found()
        response.headers.update(cors)
        response.headers["Server"] = "mediamtx"
        return response

    return web.Application(middlewares=[common, *(inner or [])])


async def serve(app: web.Application, address: str) -> web.AppRunner:
    """Bind ``app`` on ``host:port`` (empty host: every interface)."""
    return await web.serve(app, address)
