"""Camera discovery (V4L2 nodes plus synthetic cameras) and their MediaMTX paths.

Cameras come and go at runtime (USB unplug, a test removing a synthetic camera),
and inotify is unavailable in the stdlib, so discovery simply polls: every
``poll_interval`` seconds it globs the device nodes and lists the synthetic marker
directory, diffs against the previous view, and for each difference updates the
MediaMTX path, the FFmpeg publisher, and notifies clients.

Synthetic cameras are marker files ``videoN`` in ``synthetic_dir``; each stands
for a camera ``/dev/videoN`` whose stream is an FFmpeg test pattern.  A real node
with the same name wins, so a synthetic marker never hides a real device.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import v4l2
from .config import Config
from .mediamtx import MediaMTXClient, MediaMTXError
from .publisher import Publisher, device_argv, synthetic_argv

log = logging.getLogger(__name__)

CONNECTED, DISCONNECTED, ERROR = "CONNECTED", "DISCONNECTED", "ERROR"
_NODE = re.compile(r"video(\d+)")
_MARKER_SPEC = re.compile(r"(\d+x\d+)(?:@(\d+))?")

ChangeFn = Callable[["Camera"], Awaitable[None]]


@dataclass
class Camera:
    """One camera as the service sees it right now."""

    index: int
    kind: str  # "v4l2" or "synthetic"
    status: str
    name: str
    resolution: str | None
    fps: int | None
    error: str | None = None
    capabilities: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> str:
        """Device path; synthetic cameras use the node name they stand in for."""
        return f"/dev/video{self.index}"

    @property
    def path(self) -> str:
        """MediaMTX path name."""
        return f"camera{self.index}"

    def signature(self) -> tuple[Any, ...]:
        """What must differ for a rescan to count as a change worth notifying."""
        return (self.kind, self.status, self.name, self.resolution, self.fps, self.error)

    def to_dict(self, cfg: Config) -> dict[str, Any]:
        """The ``camera`` object of the contract (plus ``error``, null unless ERROR)."""
        return {
            "device": self.device,
            "status": self.status,
            "name": self.name,
            "resolution": self.resolution,
            "fps": self.fps,
            "streams": cfg.stream_urls(self.path),
            "error": self.error,
        }


def _synthetic_camera(index: int, spec: str, cfg: Config) -> Camera:
    resolution, fps = cfg.resolution, cfg.fps
    match = _MARKER_SPEC.fullmatch(spec.strip())
    if match is not None:
        resolution = match.group(1)
        fps = int(match.group(2) or fps)
    return Camera(
        index=index,
        kind="synthetic",
        status=CONNECTED,
        name=f"Synthetic Camera {index}",
        resolution=resolution,
        fps=fps,
        capabilities={"synthetic": True, "driver": "lavfi", "source": "testsrc"},
    )


def _v4l2_camera(index: int, result: v4l2.ProbeResult, cfg: Config) -> Camera:
    caps = {
        "synthetic": False,
        "driver": result.driver,
        "card": result.card,
        "bus_info": result.bus_info,
        "version": result.version,
        "capabilities": result.capabilities,
    }
    if result.error is not None:
        return Camera(index, "v4l2", ERROR, f"Camera {index}", None, None, result.error, caps)
    return Camera(
        index, "v4l2", CONNECTED, result.card or f"Camera {index}", cfg.resolution, cfg.fps,
        capabilities=caps,
    )  # fmt: skip


class CameraManager:
    """Owns the camera table, the publishers and the cameraN MediaMTX paths."""

    def __init__(self, cfg: Config, client: MediaMTXClient, on_change: ChangeFn) -> None:
        self.cfg = cfg
        self.client = client
        self._on_change = on_change
        self.on_removed: Callable[[Camera], Awaitable[None]] | None = None
        self.cameras: dict[int, Camera] = {}
        self.publishers: dict[int, Publisher] = {}
        self.path_errors: dict[int, str] = {}
        self._probe_cache: dict[str, tuple[tuple[int, int, int], v4l2.ProbeResult]] = {}
        self._hidden_markers: set[int] = set()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.scanned = asyncio.Event()
        self.scans = 0
        self.last_scan_error: str | None = None

    # -- lifecycle ---------------------------------------------------------
    def prepare_synthetic_dir(self) -> None:
        """Create the marker directory and the markers asked for by the config."""
        os.makedirs(self.cfg.synthetic_dir, exist_ok=True)
        for index in self.cfg.synthetic:
            marker = os.path.join(self.cfg.synthetic_dir, f"video{index}")
            if not os.path.exists(marker):
                with open(marker, "w", encoding="utf-8"):
                    pass

    def start(self) -> None:
        """Begin polling for cameras."""
        self._task = asyncio.create_task(self._run(), name="camera-monitor")

    @property
    def running(self) -> bool:
        """True while the discovery loop is alive."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop discovery and all publishers (paths are left to MediaMTX's lifetime)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*(p.stop() for p in self.publishers.values()))
        self.publishers.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self.scan_once()
                self.last_scan_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_scan_error = f"{type(exc).__name__}: {exc}"
                log.exception("camera scan failed")
            self.scanned.set()
            await asyncio.sleep(self.cfg.poll_interval)

    # -- discovery ---------------------------------------------------------
    def _probe(self, node: str) -> v4l2.ProbeResult:
        """Probe ``node``, re-using the last answer while the node is unchanged."""
        try:
            st = os.stat(node)
        except OSError as exc:
            return v4l2.ProbeResult(is_capture=False, error=f"stat failed: {exc}")
        key = (st.st_rdev, st.st_ino, st.st_mode)
        cached = self._probe_cache.get(node)
        if cached is not None and cached[0] == key:
            return cached[1]
        result = v4l2.probe(node)
        self._probe_cache[node] = (key, result)
        return result

    def discover(self) -> dict[int, Camera]:
        """One blocking scan of device nodes and synthetic markers."""
        found: dict[int, Camera] = {}
        nodes = sorted(glob.glob(self.cfg.device_glob))
        for node in nodes:
            match = _NODE.fullmatch(os.path.basename(node))
            if match is None:
                continue
            result = self._probe(node)
            if result.error is None and not result.is_capture:
                continue  # a valid V4L2 node that is not a camera (e.g. UVC metadata)
            found[int(match.group(1))] = _v4l2_camera(int(match.group(1)), result, self.cfg)
        for stale in set(self._probe_cache) - set(nodes):
            del self._probe_cache[stale]
        try:
            markers = os.listdir(self.cfg.synthetic_dir)
        except FileNotFoundError:
            markers = []
        for marker in sorted(markers):
            match = _NODE.fullmatch(marker)
            if match is None:
                continue
            index = int(match.group(1))
            if index in found:
                if index not in self._hidden_markers:
                    self._hidden_markers.add(index)
                    log.warning("synthetic marker %s ignored: /dev/%s exists", marker, marker)
                continue
            self._hidden_markers.discard(index)
            try:
                with open(os.path.join(self.cfg.synthetic_dir, marker), encoding="utf-8") as f:
                    spec = f.read(64)
            except OSError:
                continue  # removed between listdir and open: gone
            found[index] = _synthetic_camera(index, spec, self.cfg)
        return found

    async def scan_once(self) -> None:
        """Diff a fresh discovery against the table and act on every difference."""
        found = await asyncio.to_thread(self.discover)
        self.scans += 1
        for index in sorted(set(self.cameras) | set(found)):
            old, new = self.cameras.get(index), found.get(index)
            if new is None and old is not None:
                await self._removed(old)
            elif new is not None and (old is None or old.signature() != new.signature()):
                await self._changed(old, new)

    async def _changed(self, old: Camera | None, new: Camera) -> None:
        verb = "appeared" if old is None else "changed"
        log.info("camera %s %s: %s %s", new.device, verb, new.status, new.error or new.name)
        self.cameras[new.index] = new
        if old is not None:
            await self._stop_publisher(new.index)
        if new.status == CONNECTED:
            await self._ensure_path(new)
            self._start_publisher(new)
        elif old is not None and old.status == CONNECTED:
            await self._drop_path(new)  # never delete a path this service did not add
        await self._on_change(new)

    async def _removed(self, old: Camera) -> None:
        log.info("camera %s went away", old.device)
        del self.cameras[old.index]
        if self.on_removed is not None:
            await self.on_removed(old)
        await self._stop_publisher(old.index)
        if old.status == CONNECTED:
            await self._drop_path(old)
        old.status = DISCONNECTED
        old.error = None
        await self._on_change(old)

    # -- MediaMTX paths and publishers ------------------------------------
    async def _ensure_path(self, cam: Camera) -> bool:
        """Add the path; True only if MediaMTX did not have it before."""
        async with self._lock:
            if self.cameras.get(cam.index) is not cam:
                return False  # removed or replaced while waiting for the lock
            try:
                created = await self.client.add_path(cam.path, {"source": "publisher"})
                self.path_errors.pop(cam.index, None)
                return created
            except MediaMTXError as exc:
                self.path_errors[cam.index] = str(exc)
                log.warning("cannot add MediaMTX path %s (will retry): %s", cam.path, exc)
                return False

    async def _drop_path(self, cam: Camera) -> None:
        async with self._lock:
            self.path_errors.pop(cam.index, None)
            try:
                await self.client.delete_path(cam.path)
            except MediaMTXError as exc:
                log.warning("cannot delete MediaMTX path %s: %s", cam.path, exc)

    def _start_publisher(self, cam: Camera) -> None:
        url = self.cfg.rtsp_url(cam.path)
        size, fps = cam.resolution or self.cfg.resolution, cam.fps or self.cfg.fps
        if cam.kind == "synthetic":
            argv = synthetic_argv(self.cfg.ffmpeg, url, size=size, fps=fps)
        else:
            argv = device_argv(
                self.cfg.ffmpeg, cam.device, url,
                size=size, fps=fps, input_format=self.cfg.input_format,
            )  # fmt: skip
        publisher = Publisher(cam.path, argv)
        self.publishers[cam.index] = publisher
        publisher.start()

    async def _stop_publisher(self, index: int) -> None:
        publisher = self.publishers.pop(index, None)
        if publisher is not None:
            await publisher.stop()

    async def reconcile(self, configured: set[str], restarted: bool) -> None:
        """Called by the MediaMTX monitor after each successful poll.

        Re-adds paths that MediaMTX lost (restart) or never got (it was down when
        the camera appeared), and restarts publishers so they reconnect at once
        instead of waiting out their backoff.
        """
        for cam in list(self.cameras.values()):
            if cam.status != CONNECTED:
                continue
            # ``configured`` may predate a path this manager just added, so only a
            # path that really had to be re-created counts as lost.
            created = cam.path not in configured and await self._ensure_path(cam)
            publisher = self.publishers.get(cam.index)
            if publisher is not None and (created or restarted):
                publisher.kick()

    # -- queries -------------------------------------------------------------
    def get(self, device: str) -> Camera | None:
        """Look a camera up by ``/dev/videoN`` (``videoN`` and ``cameraN`` accepted too)."""
        match = re.fullmatch(r"(?:/dev/video|video|camera)(\d+)", device.strip())
        return None if match is None else self.cameras.get(int(match.group(1)))

    def status_of(self, cam: Camera) -> dict[str, Any]:
        """``get_camera_status`` result: the camera plus capabilities and stream state."""
        data = cam.to_dict(self.cfg)
        data["capabilities"] = dict(cam.capabilities)
        publisher = self.publishers.get(cam.index)
        data["stream"] = {
            "path": cam.path,
            "path_error": self.path_errors.get(cam.index),
            **(publisher.state() if publisher else {"publishing": False}),
        }
        return data

    def health(self) -> dict[str, Any]:
        """Details for /health/cameras."""
        cams = list(self.cameras.values())
        errors = [c for c in cams if c.status == ERROR]
        status = "healthy"
        if errors or self.last_scan_error:
            status = "degraded"
        if not self.running:
            status = "unhealthy"
        return {
            "status": status,
            "details": {
                "running": self.running,
                "scans": self.scans,
                "last_scan_error": self.last_scan_error,
                "total": len(cams),
                "connected": sum(1 for c in cams if c.status == CONNECTED),
                "errors": len(errors),
                "synthetic_dir": self.cfg.synthetic_dir,
                "device_glob": self.cfg.device_glob,
                "cameras": [
                    {**c.to_dict(self.cfg), **{"publishing": bool(
                        self.publishers.get(c.index) and self.publishers[c.index].running)}}
                    for c in sorted(cams, key=lambda c: c.index)
                ],
            },
        }
