"""An RTSP session: publisher or reader state, channels, counters, bounded sending.

Why: upstream distinguishes connections (``rtspConn``) from sessions
(``rtspSession``); the API lists sessions and paths name them as source/readers. Each
reader writes straight into its socket's transport and drops packets when more than
``writeQueueSize`` packets' worth of bytes are already buffered, so a slow reader
loses packets instead of stalling the publisher or the other readers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

from . import log
from .path import Path, now_iso
from .rtsp_proto import frame
from .sdp import SessionDescription

if TYPE_CHECKING:
    from .rtsp_server import RTSPConn

SESSION_TIMEOUT = 60


class Jitter:
    """RFC 3550 section 6.4.1 interarrival jitter of one inbound RTP stream."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.value = 0.0
        self._last: tuple[float, int] | None = None

    def packet(self, payload: bytes) -> None:
        """Account for one RTP packet arriving now."""
        if len(payload) < 12:
            return
        arrival = time.monotonic() * self.clock_rate
        stamp = int.from_bytes(payload[4:8], "big")
        if self._last is not None:
            prev_arrival, prev_stamp = self._last
            delta = (stamp - prev_stamp + 2**31) % 2**32 - 2**31
            d = (arrival - prev_arrival) - delta
            self.value += (abs(d) - self.value) / 16
        self._last = (arrival, stamp)
AVG_PACKET_BYTES = 1500


class Session:
    """One RTSP session, bound to one TCP connection; media interleaved in it or over UDP."""

    def __init__(self, conn: RTSPConn, write_queue_size: int) -> None:
        self.uuid = str(uuid.uuid4())
        self.secret = uuid.uuid4().hex
        self.conn = conn
        self.created = now_iso()
        self.state = "idle"  # idle | read | publish
        self.playing = False
        self.recording = False
        self.path: Path | None = None
        self.path_name = ""
        self.query = ""
        self.announced: SessionDescription | None = None
        self.in_channels: dict[int, tuple[int, bool]] = {}  # channel -> (track, rtcp)
        self.out_channels: dict[int, int] = {}  # track -> rtp channel
        self.max_buffer = max(write_queue_size, 1) * AVG_PACKET_BYTES
        self.inbound_bytes = 0
        self.inbound_rtp = 0
        self.inbound_rtcp = 0
        self.outbound_bytes = 0
        self.outbound_rtp = 0
        self.outbound_rtcp = 0
        self.discarded = 0
        self.jitter: dict[int, Jitter] = {}
        self.transport: str | None = None  # TCP | UDP | UDP-multicast, fixed by SETUP
        self.udp_out: dict[int, tuple[str, int, int]] = {}  # track -> ip, rtp, rtcp port
        self.udp_in: list[tuple[int, int]] = []  # client ports registered as sources
        self.last_udp = time.monotonic()
        self._udp_check: asyncio.TimerHandle | None = None
        self.closed = False
        self.log(f"created by {conn.remote}")

    @property
    def short_id(self) -> str:
        """First 4 bytes of the UUID in hex, as upstream prints sessions."""
        return self.uuid.replace("-", "")[:8]

    def log(self, msg: str) -> None:
        """Log with upstream's ``[RTSP] [session ID]`` prefix."""
        log.info(f"[RTSP] [session {self.short_id}] {msg}")

    # ------------------------------------------------------------------ Endpoint
    def api_ref(self) -> dict[str, str]:
        """Reference used in a path's ``source``/``readers``."""
        return {"type": "rtspSession", "id": self.uuid}

    def close(self, reason: str) -> None:
        """Called by the path: end the session and its connection."""
        if self.closed:
            return
        self.conn.close_from_path(reason)

    def deliver(self, track: int, rtcp: bool, payload: bytes) -> int:
        """Send one packet to this reader, or drop it if the reader is too slow."""
        if not self.playing:
            return 0
        if self.transport in ("UDP", "UDP-multicast"):
            return self._deliver_udp(track, rtcp, payload)
        channel = self.out_channels.get(track)
        transport = self.conn.writer.transport
        if channel is None or transport.is_closing():
            return 0
        if transport.get_write_buffer_size() > self.max_buffer:
            self.discarded += 1
            return 0
        transport.write(frame(channel + (1 if rtcp else 0), payload))
        size = len(payload) + 4
        self.conn.bytes_out += size
        self._count_out(rtcp, size)
        return size

    # ------------------------------------------------------------------ data in
    def _deliver_udp(self, track: int, rtcp: bool, payload: bytes) -> int:
        """Send to the reader's client ports, or once to the track's multicast group."""
        server = self.conn.server
        if self.transport == "UDP-multicast":
            if server.multicast is None or self.path is None:
                return 0
            size = server.multicast.send(server.multicast.group(self.path.name, track),
                                         rtcp, payload)
        else:
            dest = self.udp_out.get(track)
            if dest is None or server.udp is None:
                return 0
            ip, rtp_port, rtcp_port = dest
            if not server.udp.send(rtcp, payload, (ip, rtcp_port if rtcp else rtp_port)):
                return 0
            size = len(payload)
        if size:
            self._count_out(rtcp, size)
        return size

    def _count_out(self, rtcp: bool, size: int) -> None:
        self.outbound_bytes += size
        if rtcp:
            self.outbound_rtcp += 1
        else:
            self.outbound_rtp += 1

    def on_frame(self, channel: int, payload: bytes) -> None:
        """Interleaved data from the client: relay publisher packets, count the rest."""
        self.inbound_bytes += len(payload) + 4
        mapping = self.in_channels.get(channel)
        if mapping is None:
            return
        self._inbound(*mapping, payload)

    def on_udp(self, track: int, rtcp: bool, payload: bytes) -> None:
        """A datagram from one of the client ports this session named in SETUP."""
        self.inbound_bytes += len(payload)
        self.last_udp = time.monotonic()
        self._inbound(track, rtcp, payload)

    def _inbound(self, track: int, rtcp: bool, payload: bytes) -> None:
        if rtcp:
            self.inbound_rtcp += 1
        else:
            self.inbound_rtp += 1
            self.jitter.setdefault(track, Jitter(self.clock_rate(track))).packet(payload)
        if self.recording and self.path is not None:
            self.path.write(track, rtcp, payload)

    def watch_udp(self, read_timeout: float) -> None:
        """Close a UDP publisher that sent nothing for ``readTimeout`` (checked each second).

        Its TCP connection carries no data, so the connection's read timeout cannot tell.
        """
        loop = asyncio.get_running_loop()
        if time.monotonic() - self.last_udp >= read_timeout:
            self._udp_check = None
            self.conn.close_from_path(
                "no UDP packets received recently (maybe there's a firewall/NAT in between)")
            return
        self._udp_check = loop.call_later(1.0, self.watch_udp, read_timeout)

    def detach(self, reason: str) -> None:
        """Leave the path (connection closed, TEARDOWN, or path closing)."""
        if self.closed:
            return
        self.closed = True
        if self._udp_check is not None:
            self._udp_check.cancel()
        udp = self.conn.server.udp
        for ports in self.udp_in:
            if udp is not None:
                udp.unregister(self.conn.ip, ports)
        path, self.path = self.path, None
        if path is not None:
            if self.state == "publish":
                path.remove_publisher(self)
            elif self.state == "read":
                path.remove_reader(self)
        self.log(f"destroyed: {reason}")

    def clock_rate(self, track: int) -> int:
        """RTP clock rate of an announced track (90 kHz for video when unknown)."""
        desc = self.announced
        if desc is None or track >= len(desc.medias):
            return 90000
        return desc.medias[track].clock_rate

    def mean_jitter(self) -> float:
        """Interarrival jitter (RFC 3550, in RTP timestamp units) averaged over tracks."""
        if not self.jitter:
            return 0.0
        return sum(j.value for j in self.jitter.values()) / len(self.jitter)

    # ------------------------------------------------------------------ API
    def api_item(self) -> dict[str, Any]:
        """The ``RTSPSession`` object of the OpenAPI document."""
        transport = self.transport
        return {
            "id": self.uuid,
            "created": self.created,
            "remoteAddr": self.conn.remote,
            "state": self.state,
            "path": self.path_name,
            "query": self.query,
            "user": "",
            "userAgent": self.conn.user_agent,
            "transport": transport,
            "profile": "AVP" if transport else None,
            "conns": [self.conn.uuid],
            "inboundBytes": self.inbound_bytes,
            "inboundRTPPackets": self.inbound_rtp,
            "inboundRTPPacketsLost": 0,
            "inboundRTPPacketsInError": 0,
            "inboundRTPPacketsJitter": self.mean_jitter(),
            "inboundRTCPPackets": self.inbound_rtcp,
            "inboundRTCPPacketsInError": 0,
            "outboundBytes": self.outbound_bytes,
            "outboundRTPPackets": self.outbound_rtp,
            "outboundRTPPacketsReportedLost": 0,
            "outboundRTPPacketsDiscarded": self.discarded,
            "outboundRTCPPackets": self.outbound_rtcp,
            "bytesReceived": self.inbound_bytes,
            "bytesSent": self.outbound_bytes,
            "rtpPacketsReceived": self.inbound_rtp,
            "rtpPacketsSent": self.outbound_rtp,
            "rtpPacketsLost": 0,
            "rtpPacketsInError": 0,
            "rtpPacketsJitter": self.mean_jitter(),
            "rtcpPacketsReceived": self.inbound_rtcp,
            "rtcpPacketsSent": self.outbound_rtcp,
            "rtcpPacketsInError": 0,
        }

