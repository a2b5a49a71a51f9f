"""A path: its publisher, its readers, its hooks, and the packet fan-out between them.

Why: this mirrors upstream's ``core/path.go`` state machine closely enough that camera
services see the same behaviour: a publisher makes the stream available, readers attach
to it, ``overridePublisher`` decides whether a second publisher replaces the first,
``runOnDemand`` is started by the first reader and stopped ``runOnDemandCloseAfter``
after the last reader left, and readers are dropped when the publisher goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from . import gofmt, log
from .config import parse_duration
from .hooks import ExternalCmd
from .sdp import SessionDescription


class PathError(Exception):
    """A request the path refuses; ``status`` is the RTSP status upstream answers."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Endpoint(Protocol):
    """A publisher or reader session as the path sees it."""

    uuid: str

    def close(self, reason: str) -> None:
        """Terminate the session (the path no longer serves it)."""

    def api_ref(self) -> dict[str, str]:
        """``{"type": ..., "id": ...}`` for the API's ``source``/``readers``."""

    def deliver(self, track: int, rtcp: bool, payload: bytes) -> int:
        """Queue one packet to a reader; returns bytes accepted (0 if dropped)."""


def now_iso() -> str:
    """Now as Go's ``time.Time`` JSON (RFC 3339, nanoseconds, zeros trimmed)."""
    return gofmt.timestamp()


class Path:
    """Runtime state of one path (created from a path configuration)."""

    def __init__(
        self,
        *,
        name: str,
        conf_name: str,
        conf: dict[str, Any],
        matches: list[str],
        rtsp_port: str,
        on_idle: Callable[[Path], None],
    ) -> None:
        self.name = name
        self.conf_name = conf_name
        self.conf = conf
        self.matches = matches
        self.query = ""
        self.rtsp_port = rtsp_port
        self._on_idle = on_idle
        self.source: Endpoint | None = None
        self.desc: SessionDescription | None = None
        self.available = False
        self.available_time: str | None = None
        self.readers: dict[Endpoint, None] = {}
        self.bytes_received = 0
        self.bytes_sent = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._init_cmd: ExternalCmd | None = None
        self._demand_cmd: ExternalCmd | None = None
        self._demand_state = "initial"  # initial | waiting | ready | closing
        self._ready_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self.closed = False

    # ------------------------------------------------------------------ lifecycle
    def log(self, msg: str) -> None:
        """Log with upstream's ``[path NAME]`` prefix."""
        log.info(f"[path {self.name}] {msg}")

    def env(self) -> dict[str, str]:
        """Hook environment, as upstream's ``ExternalCmdEnv``."""
        env = {"MTX_PATH": self.name, "MTX_QUERY": self.query, "RTSP_PATH": self.name,
               "RTSP_PORT": self.rtsp_port}
        for i, group in enumerate(self.matches[1:], start=1):
            env[f"G{i}"] = group
        return env

    @property
    def is_regex(self) -> bool:
        """Whether the configuration is a regex/all one (such paths die when unused)."""
        return self.conf_name.startswith("~") or self.conf_name in ("all", "all_others")

    def start(self) -> None:
        """Run ``runOnInit`` (upstream starts it when the path is created)."""
        cmd = self.conf.get("runOnInit") or ""
        if cmd:
            self.log("runOnInit command started")
            self._init_cmd = ExternalCmd(
                cmd, self.env(), bool(self.conf.get("runOnInitRestart")),
                lambda why: self.log(f"runOnInit command exited: {why}"),
            )

    def close(self) -> None:
        """Destroy the path: stop hooks, drop publisher and readers, fail waiters."""
        if self.closed:
            return
        self.closed = True
        if self._init_cmd is not None:
            self._init_cmd.close()
            self.log("runOnInit command stopped")
        self._cancel_timers()
        if self._demand_cmd is not None:
            self._stop_on_demand("path destroyed")
        self._fail_waiters(PathError("terminated"))
        if self.source is not None:
            source, self.source = self.source, None
            self._set_not_available()
            source.close("path is closing")
        log.debug(f"[path {self.name}] destroyed")

    def should_close(self) -> bool:
        """Regex paths are destroyed once nobody uses them (upstream's shouldClose)."""
        return (self.is_regex and self.source is None and not self.readers
                and not self._waiters and self._demand_state == "initial")

    def _maybe_idle(self) -> None:
        if self.should_close():
            self._on_idle(self)

    # ------------------------------------------------------------------ on demand
    def _duration(self, key: str) -> float:
        return parse_duration(self.conf.get(key) or "10s")

    def _start_on_demand(self) -> None:
        self.log("runOnDemand command started")
        self._demand_cmd = ExternalCmd(
            self.conf["runOnDemand"], self.env(), bool(self.conf.get("runOnDemandRestart")),
            lambda why: self.log(f"runOnDemand command exited: {why}"),
        )
        self._demand_state = "waiting"
        loop = asyncio.get_running_loop()
        self._ready_timer = loop.call_later(
            self._duration("runOnDemandStartTimeout"), self._on_demand_timed_out
        )

    def _on_demand_timed_out(self) -> None:
        self._ready_timer = None
        self._fail_waiters(PathError(f"source of path '{self.name}' has timed out"))
        self._stop_on_demand("timed out")
        self._maybe_idle()

    def _schedule_on_demand_close(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        loop = asyncio.get_running_loop()
        self._close_timer = loop.call_later(
            self._duration("runOnDemandCloseAfter"), self._on_demand_close
        )
        self._demand_state = "closing"

    def _on_demand_close(self) -> None:
        self._close_timer = None
        self._stop_on_demand("not needed by anyone")
        self._maybe_idle()

    def _stop_on_demand(self, reason: str) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._demand_cmd is not None:
            self._demand_cmd.close()
            self._demand_cmd = None
            self.log(f"runOnDemand command stopped: {reason}")
        self._demand_state = "initial"

    def _cancel_timers(self) -> None:
        for timer in (self._ready_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._ready_timer = self._close_timer = None

    def _fail_waiters(self, exc: Exception) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_exception(exc)
        self._waiters = []

    # ------------------------------------------------------------------ readers
    async def wait_available(self, query: str = "") -> SessionDescription:
        """The stream's description, starting ``runOnDemand`` and waiting if needed.

        :param query: the reader's raw URL query; the hook gets it as ``MTX_QUERY``.
        """
        if self.available and self.desc is not None:
            return self.desc
        if not self.conf.get("runOnDemand"):
            raise PathError(f"no stream is available on path '{self.name}'", 404)
        if self._demand_state == "initial":
            self.query = query
            self._start_on_demand()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
        if not self.available or self.desc is None:
            raise PathError(f"no stream is available on path '{self.name}'", 404)
        return self.desc

    def add_reader(self, reader: Endpoint) -> SessionDescription:
        """Attach a reader to an available stream."""
        if not self.available or self.desc is None:
            raise PathError(f"no stream is available on path '{self.name}'", 404)
        if reader in self.readers:
            return self.desc
        max_readers = int(self.conf.get("maxReaders") or 0)
        if max_readers and len(self.readers) >= max_readers:
            raise PathError("maximum reader count reached")
        self.readers[reader] = None
        if self._demand_state == "closing":
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            self._demand_state = "ready"
        return self.desc

    def remove_reader(self, reader: Endpoint) -> None:
        """Detach a reader; the last one leaving schedules the on-demand close."""
        self.readers.pop(reader, None)
        if not self.readers and self._demand_state == "ready":
            self._schedule_on_demand_close()
        self._maybe_idle()

    # ------------------------------------------------------------------ publisher
    def add_publisher(self, publisher: Endpoint) -> None:
        """Reserve the path for a publisher (at ANNOUNCE), like upstream."""
        if self.conf.get("source", "publisher") != "publisher":
            raise PathError(
                f"can't publish to path '{self.name}' since 'source' is not 'publisher'")
        if self.source is not None and self.source is not publisher:
            if not self.conf.get("overridePublisher", True):
                raise PathError(f"someone is already publishing to path '{self.name}'")
            self.log("closing existing publisher")
            # Assign the new publisher first: while the old one and its readers are
            # being closed, the path must not look unused (regex paths would be removed).
            old, self.source = self.source, publisher
            self._set_not_available()
            old.close("replaced by another publisher")
        self.source = publisher

    def start_publisher(self, publisher: Endpoint, desc: SessionDescription) -> None:
        """Make the stream available (at RECORD) and release waiting readers."""
        if self.source is not publisher:
            raise PathError("publisher is not assigned to this path anymore")
        self.desc = desc
        self.available = True
        self.available_time = now_iso()
        self.log(f"stream is available and online, {desc.tracks_info()}")
        if self._demand_state == "waiting":
            if self._ready_timer is not None:
                self._ready_timer.cancel()
                self._ready_timer = None
            self._schedule_on_demand_close()
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters = []

    def remove_publisher(self, publisher: Endpoint) -> None:
        """Release the path; readers are closed because the stream is gone."""
        if self.source is not publisher:
            return
        self.source = None
        self._set_not_available()
        self._maybe_idle()

    def _set_not_available(self) -> None:
        if self.available:
            self.log("stream is not available anymore")
        self.available = False
        self.available_time = None
        self.desc = None
        readers, self.readers = list(self.readers), {}
        for reader in readers:
            reader.close("stream is not available anymore")

    def write(self, track: int, rtcp: bool, payload: bytes) -> None:
        """Fan one publisher packet out to every reader (never blocks)."""
        self.bytes_received += len(payload)
        if not rtcp and self.desc is not None and track < len(self.desc.medias):
            self.desc.medias[track].watch_rtp(payload)
        sent = 0
        for reader in self.readers:
            sent += reader.deliver(track, rtcp, payload)
        self.bytes_sent += sent

    # ------------------------------------------------------------------ API
    def api_item(self) -> dict[str, Any]:
        """The ``Path`` object of the OpenAPI document (upstream's ``APIPath``)."""
        tracks = self.desc.codecs() if (self.available and self.desc) else []
        return {
            "name": self.name,
            "confName": self.conf_name,
            "ready": self.available,
            "readyTime": self.available_time,
            "available": self.available,
            "availableTime": self.available_time,
            "online": self.source is not None,
            "onlineTime": self.available_time if self.source is not None else None,
            "source": self.source.api_ref() if self.source is not None else None,
            "tracks": tracks,
            "tracks2": self.desc.tracks2() if (self.available and self.desc) else [],
            "readers": [r.api_ref() for r in self.readers],
            "inboundBytes": self.bytes_received,
            "outboundBytes": self.bytes_sent,
            "inboundFramesInError": 0,
            "bytesReceived": self.bytes_received,
            "bytesSent": self.bytes_sent,
        }
