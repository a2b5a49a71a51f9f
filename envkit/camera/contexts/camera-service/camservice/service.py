"""Wires the parts together and runs the WebSocket server.

Start-up order matters for readiness: the health server comes up first (answering
503), then the MediaMTX monitor and camera discovery, then the WebSocket server;
only once discovery has completed one scan and the WebSocket port is listening
does /health/ready answer 200, so a test never connects to a half-started service.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import time
from typing import Any

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed

# websockets 10.4 (Debian bookworm): the "legacy" asyncio implementation is the only
# one, with handler(websocket, path) and process_request(path, headers).
from websockets.legacy.server import WebSocketServer, WebSocketServerProtocol, serve

from . import methods
from .auth import Authenticator
from .cameras import Camera, CameraManager
from .config import Config
from .health import HealthServer
from .media import Recorder
from .mediamtx import MediaMTXClient, MediaMTXMonitor
from .rpc import INTERNAL_ERROR, MAX_FRAME, Connection, Dispatcher, RpcError, notification

log = logging.getLogger(__name__)


class Service:
    """The whole camera service; ``run()`` returns when ``stop`` is set."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.started_at = time.time()
        self.auth = Authenticator(cfg.jwt_secret)
        self.dispatcher = Dispatcher(self.auth)
        self.mediamtx = MediaMTXClient(cfg.mediamtx_api_url)
        self.cameras = CameraManager(cfg, self.mediamtx, self._camera_changed)
        self.monitor = MediaMTXMonitor(
            MediaMTXClient(cfg.mediamtx_api_url), cfg.mediamtx_poll_interval, self.cameras.reconcile
        )
        self.recorder = Recorder(cfg)
        self.cameras.on_removed = self._camera_removed
        self.connections: dict[WebSocketServerProtocol, Connection] = {}
        self.ws_server: WebSocketServer | None = None
        self.health = HealthServer(self)
        self.notifications_sent = 0
        self.stop = asyncio.Event()
        methods.register(self)

    # -- readiness -----------------------------------------------------------
    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details) for /health/ready."""
        details = {
            "websocket_listening": self.ws_server is not None and self.ws_server.is_serving(),
            "camera_scan_done": self.cameras.scanned.is_set(),
            "mediamtx_reachable": self.monitor.reachable,
            "mediamtx_required": self.cfg.ready_requires_mediamtx,
        }
        ready = bool(details["websocket_listening"] and details["camera_scan_done"])
        if self.cfg.ready_requires_mediamtx:
            ready = ready and self.monitor.reachable
        return ready, details

    # -- notifications ---------------------------------------------------------
    async def _camera_changed(self, cam: Camera) -> None:
        data = cam.to_dict(self.cfg)
        frame = notification("camera_status_update", data)
        targets = [ws for ws, conn in self.connections.items() if conn.authenticated]
        for ws in targets:
            try:
                await ws.send(frame)
                self.notifications_sent += 1
            except ConnectionClosed:
                pass
        log.info("camera_status_update %s %s -> %d client(s)", cam.device, cam.status, len(targets))

    async def _camera_removed(self, cam: Camera) -> None:
        if cam.device in self.recorder.active:
            await self.recorder.stop(cam.device)

    # -- WebSocket -------------------------------------------------------------
    async def _process_request(self, path: str, headers: Headers) -> Any:
        if path.split("?", 1)[0] != self.cfg.server_path:
            body = f"not found: use ws://<host>:{self.cfg.server_port}{self.cfg.server_path}\n"
            return http.HTTPStatus.NOT_FOUND, [("Content-Type", "text/plain")], body.encode()
        return None

    async def _handler(self, ws: WebSocketServerProtocol, path: str) -> None:
        remote = f"{ws.remote_address[0]}:{ws.remote_address[1]}" if ws.remote_address else "?"
        conn = Connection(remote, self.cfg.rate_limit, self.cfg.rate_burst)
        self.connections[ws] = conn
        log.info("client %s connected", remote)
        try:
            async for message in ws:
                reply = await self._reply(conn, message)
                if reply is not None:
                    await ws.send(reply)
        except ConnectionClosed:
            pass
        finally:
            self.connections.pop(ws, None)
            log.info("client %s disconnected", remote)

    async def _reply(self, conn: Connection, message: str | bytes) -> str | None:
        """The dispatcher's answer; a bug in it costs one -32603, never the connection."""
        try:
            return await self.dispatcher.handle_text(conn, message)
        except Exception as exc:
            log.exception("frame from %s not handled", conn.remote)
            error = RpcError(INTERNAL_ERROR, "Internal error", {"reason": type(exc).__name__})
            return json.dumps({"jsonrpc": "2.0", "id": None, "error": error.to_dict()})

    # -- lifecycle ---------------------------------------------------------------
    async def run(self) -> None:
        """Start everything, wait for ``stop``, shut down in reverse order."""
        await self.health.start()
        self.cameras.prepare_synthetic_dir()
        self.monitor.start()
        self.cameras.start()
        await self.cameras.scanned.wait()
        ws_server = await serve(
            self._handler,
            self.cfg.server_host,
            self.cfg.server_port,
            process_request=self._process_request,
            max_size=MAX_FRAME,
        )
        self.ws_server = ws_server
        log.info(
            "JSON-RPC on ws://%s:%d%s, health on :%d, MediaMTX API %s",
            self.cfg.server_host, self.cfg.server_port, self.cfg.server_path,
            self.cfg.health_port, self.cfg.mediamtx_api_url,
        )  # fmt: skip
        try:
            await self.stop.wait()
        finally:
            log.info("shutting down")
            ws_server.close()
            await ws_server.wait_closed()
            await self.recorder.stop_all()
            await self.cameras.stop()
            await self.monitor.stop()
            await self.mediamtx.close()
            await self.health.stop()
