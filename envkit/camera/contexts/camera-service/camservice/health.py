"""HTTP health server on its own port (8003).

A separate aiohttp server, not a WebSocket route, so orchestrators and envkit's
readiness probe can use a plain HTTP GET, and so health stays answerable even if
the JSON-RPC side is wedged.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .service import Service


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class HealthServer:
    """Serves /health/ready, /health/system, /health/cameras and /health/mediamtx."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind the health port."""
        app = web.Application()
        app.router.add_get("/health/ready", self.ready)
        app.router.add_get("/health/system", self.system)
        app.router.add_get("/health/cameras", self.cameras)
        app.router.add_get("/health/mediamtx", self.mediamtx)
        app.router.add_get("/health", self.system)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        cfg = self.service.cfg
        await web.TCPSite(self._runner, cfg.health_host, cfg.health_port).start()

    async def stop(self) -> None:
        """Release the port."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def ready(self, request: web.Request) -> web.Response:
        """200 once the service can serve, 503 with the missing pieces before."""
        ready, details = self.service.readiness()
        if ready:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not_ready", "details": details}, status=503)

    def _service_manager(self) -> dict[str, Any]:
        ready, details = self.service.readiness()
        return {
            "status": "healthy" if ready else "unhealthy",
            "details": {
                **details,
                "uptime": round(time.time() - self.service.started_at, 1),
                "connections": len(self.service.connections),
                "authenticated_connections": sum(
                    1 for c in self.service.connections.values() if c.authenticated
                ),
                "notifications_sent": self.service.notifications_sent,
                "recordings_active": sorted(self.service.recorder.active),
            },
        }

    async def system(self, request: web.Request) -> web.Response:
        """Overall status: unhealthy if the service cannot serve, degraded if a part is off."""
        components = {
            "mediamtx": self.service.monitor.health(),
            "camera_monitor": self.service.cameras.health(),
            "service_manager": self._service_manager(),
        }
        statuses = {c["status"] for c in components.values()}
        if components["service_manager"]["status"] != "healthy":
            status = "unhealthy"
        elif statuses == {"healthy"}:
            status = "healthy"
        else:
            status = "degraded"
        return web.json_response({"status": status, "timestamp": _now(), "components": components})

    async def cameras(self, request: web.Request) -> web.Response:
        """Camera discovery state and the camera table."""
        return web.json_response({"timestamp": _now(), **self.service.cameras.health()})

    async def mediamtx(self, request: web.Request) -> web.Response:
        """MediaMTX reachability as last polled; 200 either way (the body says)."""
        return web.json_response({"timestamp": _now(), **self.service.monitor.health()})
