"""Supervised FFmpeg processes that publish a camera to MediaMTX over RTSP.

The service, not MediaMTX, runs FFmpeg so that the MediaMTX container needs no
device access and no FFmpeg (the upstream image is ``FROM scratch``).  FFmpeg
exits whenever MediaMTX restarts or the path is not there yet, so the supervisor
restarts it with exponential backoff; ``kick()`` skips the wait once the cause is
known to be fixed (MediaMTX came back, the path was re-created).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

MIN_BACKOFF = 0.5
MAX_BACKOFF = 10.0
STABLE_AFTER = 10.0  # seconds of uptime after which a crash resets the backoff


class Publisher:
    """Keeps one FFmpeg command running until ``stop()``."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.argv = argv
        self.restarts = 0
        self.running = False
        self.last_exit: int | None = None
        self.last_error: str | None = None
        self.started_at: float | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=5)

    def start(self) -> None:
        """Start supervising (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._supervise(), name=f"publisher-{self.name}")

    def kick(self) -> None:
        """Restart FFmpeg now: kill a running one, or cut a backoff wait short."""
        self._kick.set()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()

    async def stop(self) -> None:
        """Stop supervising and terminate FFmpeg (SIGTERM, then SIGKILL)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await terminate(self._proc)
        self._proc = None
        self.running = False

    def state(self) -> dict[str, Any]:
        """Publisher details for get_camera_status and health."""
        return {
            "publishing": self.running,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit,
            "last_error": self.last_error,
            "uptime": round(time.time() - self.started_at, 1)
            if self.running and self.started_at
            else 0.0,
        }

    async def _supervise(self) -> None:
        backoff = MIN_BACKOFF
        while True:
            self._kick.clear()
            started = time.monotonic()
            await self._run_once()
            if time.monotonic() - started >= STABLE_AFTER:
                backoff = MIN_BACKOFF
            self.restarts += 1
            try:
                await asyncio.wait_for(self._kick.wait(), timeout=backoff)
                backoff = MIN_BACKOFF
            except TimeoutError:
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _run_once(self) -> None:
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            self.last_error = f"cannot start ffmpeg: {exc}"
            log.error("%s: %s", self.name, self.last_error)
            return
        self.running = True
        self.started_at = time.time()
        log.info("%s: ffmpeg started (pid %s)", self.name, self._proc.pid)
        try:
            assert self._proc.stderr is not None
            async for raw in self._proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    self._stderr_tail.append(line)
            code = await self._proc.wait()
        finally:
            self.running = False
        self.last_exit = code
        self.last_error = " | ".join(self._stderr_tail) or None
        log.warning("%s: ffmpeg exited with %s: %s", self.name, code, self.last_error)
        self._stderr_tail.clear()


async def terminate(proc: asyncio.subprocess.Process | None, grace: float = 3.0) -> None:
    """Stop ``proc`` politely, then forcefully; safe to call on finished processes."""
    if proc is None or proc.returncode is not None:
        return
    try:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=grace)
    except ProcessLookupError:
        return
    except TimeoutError:
        proc.kill()
        await proc.wait()


def synthetic_argv(cfg_ffmpeg: str, url: str, *, size: str, fps: int) -> list[str]:
    """FFmpeg command publishing a test pattern (no camera on the machine)."""
    return [
        cfg_ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
        "-re", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-pix_fmt", "yuv420p", "-g", str(fps),
        "-f", "rtsp", "-rtsp_transport", "tcp", url,
    ]  # fmt: skip


def device_argv(
    cfg_ffmpeg: str, device: str, url: str, *, size: str, fps: int, input_format: str
) -> list[str]:
    """FFmpeg command publishing a V4L2 device, re-encoded to H.264 for RTSP readers."""
    argv = [cfg_ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "v4l2"]
    if input_format:
        argv += ["-input_format", input_format]
    argv += ["-framerate", str(fps), "-video_size", size, "-i", device]
    argv += [
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-pix_fmt", "yuv420p", "-g", str(fps),
        "-f", "rtsp", "-rtsp_transport", "tcp", url,
    ]  # fmt: skip
    return argv
