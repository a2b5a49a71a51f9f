"""Snapshots and recordings, both taken from the camera's RTSP stream on MediaMTX.

Reading from MediaMTX instead of the device keeps the device owned by exactly one
process (the publisher) and makes synthetic and real cameras behave the same.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from .config import Config
from .publisher import terminate

log = logging.getLogger(__name__)

SNAPSHOT_TIMEOUT = 20.0
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class MediaError(Exception):
    """A snapshot or recording could not be made (message is client-facing)."""


def safe_filename(name: Any, default: str, extension: str) -> str:
    """Validate a client-supplied file name: a plain name, never a path."""
    if name is None or name == "":
        return default
    if not isinstance(name, str) or _SAFE_NAME.fullmatch(name) is None or ".." in name:
        raise ValueError(
            "filename must be 1-128 characters of letters, digits, '.', '_' or '-', "
            "not starting with '.' or '-'"
        )
    return name if "." in name else name + extension


def _stamp() -> str:
    return time.strftime("%Y%m%d_%H%M%S", time.gmtime()) + f"_{int(time.time() * 1000) % 1000:03d}"


async def take_snapshot(
    cfg: Config, path: str, device: str, filename: str | None
) -> dict[str, Any]:
    """Grab one frame of ``rtsp://<mediamtx>/<path>`` into the snapshots dir as JPEG."""
    name = safe_filename(filename, f"snapshot_{path}_{_stamp()}.jpg", ".jpg")
    os.makedirs(cfg.snapshots_dir, exist_ok=True)
    target = os.path.join(cfg.snapshots_dir, name)
    argv = [
        cfg.ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-rtsp_transport", "tcp", "-i", cfg.rtsp_url(path),
        "-frames:v", "1", "-q:v", "3", "-f", "image2", "-update", "1", target,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=SNAPSHOT_TIMEOUT)
    except TimeoutError:
        await terminate(proc, grace=1.0)
        raise MediaError(f"snapshot of {device} timed out after {SNAPSHOT_TIMEOUT:.0f}s") from None
    if proc.returncode != 0 or not os.path.exists(target):
        detail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise MediaError(
            f"snapshot of {device} failed (ffmpeg exit {proc.returncode}): {detail[0]}"
        )
    return {
        "device": device,
        "filename": name,
        "status": "completed",
        "size": os.path.getsize(target),
        "path": target,
    }


@dataclass
class Recording:
    """A running FFmpeg stream copy."""

    device: str
    filename: str
    target: str
    proc: asyncio.subprocess.Process
    started: float
    duration: float | None
    task: asyncio.Task[None] | None = None


class Recorder:
    """At most one recording per camera; ends on stop, on ``duration``, or on removal."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.active: dict[str, Recording] = {}

    async def start(self, path: str, device: str, duration: Any) -> dict[str, Any]:
        """Start copying the RTSP stream of ``path`` to a Matroska file."""
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration <= 0
        ):
            raise ValueError("duration must be a positive number of seconds")
        if device in self.active:
            raise MediaError(f"{device} is already recording to {self.active[device].filename}")
        os.makedirs(self.cfg.recordings_dir, exist_ok=True)
        # Matroska stays playable when FFmpeg is interrupted, unlike a plain MP4.
        name = f"recording_{path}_{_stamp()}.mkv"
        target = os.path.join(self.cfg.recordings_dir, name)
        argv = [
            self.cfg.ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-rtsp_transport", "tcp", "-i", self.cfg.rtsp_url(path), "-map", "0", "-c", "copy",
        ]  # fmt: skip
        if duration is not None:
            argv += ["-t", str(duration)]
        argv += ["-f", "matroska", target]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        rec = Recording(device, name, target, proc, time.time(), duration)
        rec.task = asyncio.create_task(self._reap(rec), name=f"recording-{path}")
        self.active[device] = rec
        log.info("recording %s to %s", device, target)
        return {"device": device, "status": "recording", "filename": name, "duration": duration}

    async def _reap(self, rec: Recording) -> None:
        code = await rec.proc.wait()
        if self.active.get(rec.device) is rec:
            del self.active[rec.device]
            log.info("recording of %s ended by itself (exit %s)", rec.device, code)

    async def stop(self, device: str) -> dict[str, Any]:
        """Stop a recording (SIGINT lets FFmpeg finish the file) and report it."""
        rec = self.active.pop(device, None)
        if rec is None:
            raise MediaError(f"{device} is not recording")
        if rec.proc.returncode is None:
            try:
                rec.proc.send_signal(2)
                await asyncio.wait_for(rec.proc.wait(), timeout=5.0)
            except ProcessLookupError:
                pass
            except TimeoutError:
                await terminate(rec.proc, grace=1.0)
        size = os.path.getsize(rec.target) if os.path.exists(rec.target) else 0
        return {
            "device": device,
            "status": "stopped",
            "filename": rec.filename,
            "duration": round(time.time() - rec.started, 2),
            "size": size,
        }

    async def stop_all(self) -> None:
        """Stop every recording (shutdown)."""
        for device in list(self.active):
            await self.stop(device)
