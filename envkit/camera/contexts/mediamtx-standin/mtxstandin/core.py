"""The core: owns the live configuration and every server, and applies changes.

Why: upstream's ``Core`` restarts servers when the global configuration changes (a
``PATCH /v3/config/global/patch`` logs ``reloading configuration (API request)``, ends
every session as ``terminated`` and opens the listeners again) while path-only changes
reach just the affected paths. The API asks the core for the current servers, so it
always answers for the ones that are running.
"""

from __future__ import annotations

import asyncio

from . import log
from .api import API
from .config import Conf
from .hls import HLSServer
from .moq import MoQServer
from .paths import PathManager
from .rtsp_server import RTSPServer
from .webrtc import WebRTCServer


class Core:
    """Configuration plus the servers built from it."""

    def __init__(self, conf: Conf) -> None:
        self.conf = conf
        self.paths = PathManager(conf)
        self.rtsp: RTSPServer | None = None
        self.webrtc: WebRTCServer | None = None
        self.hls: HLSServer | None = None
        self.moq: MoQServer | None = None
        self.api: API | None = None
        self._reloads: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Open the listeners in upstream's order, then create the static paths."""
        await self._start_servers()
        if self.conf.global_values.get("api"):
            self.api = API(self)
            await self.api.start()
        self.paths.start()

    async def _start_servers(self) -> None:
        g = self.conf.global_values
        if g.get("rtsp", True):
            self.rtsp = RTSPServer(g, self.paths)
            await self.rtsp.start()
        if g.get("hls"):
            self.hls = HLSServer(self)
            await self.hls.start()
        if g.get("webrtc"):
            self.webrtc = WebRTCServer(self)
            await self.webrtc.start()
        if g.get("moq"):
            self.moq = MoQServer(g)
            await self.moq.start()

    async def _close_servers(self) -> None:
        # Upstream's order: MoQ, WebRTC, HLS, RTSP (the reverse of start-up).
        if self.moq is not None:
            await self.moq.close()
            self.moq = None
        if self.webrtc is not None:
            await self.webrtc.close()
            self.webrtc = None
        if self.hls is not None:
            await self.hls.close()
            self.hls = None
        if self.rtsp is not None:
            await self.rtsp.close()
            self.rtsp = None
        self.paths.close()

    async def close(self) -> None:
        """Reverse of start-up: the API first, so no change arrives mid-shutdown."""
        for task in list(self._reloads):
            await task
        if self.api is not None:
            await self.api.close()
        await self._close_servers()

    def apply(self, new_conf: Conf) -> None:
        """A path configuration changed: only the affected paths are recreated."""
        self.conf = new_conf
        self.paths.reload(new_conf)

    def apply_global(self, new_conf: Conf) -> None:
        """A global value changed: restart every server (after the API has answered)."""
        log.info("reloading configuration (API request)")
        self.conf = new_conf
        task = asyncio.get_running_loop().create_task(self._restart())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _restart(self) -> None:
        await self._close_servers()
        log.set_level(str(self.conf.global_values.get("logLevel", "info")))
        self.paths = PathManager(self.conf)
        try:
            await self._start_servers()
        except OSError as exc:
            log.error(f"{exc}")
            return
        self.paths.start()
