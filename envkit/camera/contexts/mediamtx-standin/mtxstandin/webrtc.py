"""The WebRTC server's HTTP surface on ``webrtcAddress`` (8889): page, WHEP/WHIP routes.

Why: camera services advertise ``http://host:8889/<path>`` URLs and a suite may check
that they answer as upstream's do: the player page is 200 HTML, a WHEP endpoint refuses
GET with 405 (JSON error) and answers OPTIONS 204. Media over WebRTC is not produced
(a POSTed offer is refused with 400), which the stand-in's README states.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from . import log, web
from .httpbase import error_response, make_app, not_found, serve

if TYPE_CHECKING:
    from .core import Core

_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="UTF-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name}</title>
</head>
<body>
<video id="video" muted controls autoplay playsinline></video>
</body>
</html>
"""


class WebRTCServer:
    """HTTP listener of the WebRTC server."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.address = str(core.conf.global_values["webrtcAddress"])
        self._runner: web.AppRunner | None = None
        self._ice: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        """Bind and log upstream's start line.

        The ICE UDP socket (``webrtcLocalUDPAddress``) is bound as upstream binds it, so
        the port is taken and the line is true, but no ICE is answered on it.
        """
        g = self.core.conf.global_values
        app = make_app(lambda: list(g.get("webrtcAllowOrigins") or []))
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = await serve(app, self.address)
        listeners = f"{self.address} (TCP/HTTP)"
        ice = str(g.get("webrtcLocalUDPAddress") or "")
        if ice:
            host, _, port = ice.rpartition(":")
            try:
                self._ice, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                    asyncio.DatagramProtocol, local_addr=(host or "0.0.0.0", int(port)))
            except OSError:
                await self._runner.cleanup()
                raise
            listeners += f", {ice} (UDP/ICE)"
        log.info(f"[WebRTC] started with listeners on {listeners}")

    async def close(self) -> None:
        """Stop serving."""
        log.info("[WebRTC] listener is closing")
        if self._ice is not None:
            self._ice.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.strip("/")
        for suffix in ("/whep", "/whip"):
            if path.endswith(suffix):
                return await self._endpoint(request, path[: -len(suffix)])
        if request.method != "GET" or not path:
            return not_found()
        if not request.path.endswith("/"):
            return web.HTTPMovedPermanently(request.path + "/")
        return web.Response(text=_PAGE.format(name=path), content_type="text/html")

    async def _endpoint(self, request: web.Request, name: str) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return web.Response(status=204, headers={
                "Access-Control-Allow-Methods": "OPTIONS, GET, POST, PATCH, DELETE",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
                "Access-Control-Expose-Headers": "Link"})
        if request.method != "POST":
            return error_response(405, "method not allowed", "WebRTC")
        return error_response(400, "WebRTC media is not produced by the envkit stand-in",
                              "WebRTC")
