"""RTSP 1.0 message framing: requests in, responses out, interleaved frames.

Why: the stand-in speaks RTSP over plain asyncio streams (no third-party RTSP library
exists in the base image). Only what publishers and readers such as FFmpeg send is
handled: request line, headers, Content-Length body, and ``$``-framed binary data.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "RTSP Version Not Supported",
}
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not RTSP; the connection is closed."""


@dataclass
class Request:
    """An RTSP request with case-insensitive header access."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str, default: str = "") -> str:
        """Header value by case-insensitive name."""
        return self.headers.get(name.lower(), default)

    @property
    def path_and_query(self) -> tuple[str, str]:
        """Path (without leading/trailing slash) and raw query of the request URL."""
        parts = urlsplit(self.url)
        return parts.path.strip("/"), parts.query


@dataclass
class Frame:
    """One interleaved binary frame (``$``, channel, 16-bit length, payload)."""

    channel: int
    payload: bytes


async def read_message(reader: asyncio.StreamReader) -> Request | Frame:
    """Read the next request or interleaved frame from a connection."""
    first = await reader.readexactly(1)
    if first == b"$":
        head = await reader.readexactly(3)
        channel, length = struct.unpack("!BH", head)
        payload = await reader.readexactly(length)
        return Frame(channel, payload)
    try:
        raw = first + await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError("request headers too long") from exc
    lines = raw.decode("utf-8", errors="replace").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("RTSP/"):
        raise ProtocolError(f"invalid request line: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY_BYTES:
        raise ProtocolError("body too long")
    body = await reader.readexactly(length) if length else b""
    return Request(parts[0], parts[1], headers, body)


def response(
    status: int, cseq: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """Serialize a response; CSeq is echoed as every RTSP client expects."""
    lines = [f"RTSP/1.0 {status} {REASONS.get(status, 'Unknown')}", f"CSeq: {cseq}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    lines.append("Server: gortsplib")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def frame(channel: int, payload: bytes) -> bytes:
    """Serialize an interleaved frame."""
    return struct.pack("!cBH", b"$", channel, len(payload)) + payload


@dataclass
class Transport:
    """The parts of a ``Transport`` header the stand-in cares about."""

    protocol: str  # "TCP" or "UDP"
    multicast: bool
    interleaved: tuple[int, int] | None
    record: bool
    client_ports: tuple[int, int] | None = None

    @property
    def kind(self) -> str:
        """Upstream's name of the transport: ``TCP``, ``UDP`` or ``UDP-multicast``."""
        if self.protocol == "TCP":
            return "TCP"
        return "UDP-multicast" if self.multicast else "UDP"


def parse_transport(value: str) -> Transport:
    """Parse the first transport spec of a SETUP's ``Transport`` header."""
    spec = value.split(",", 1)[0].strip()
    params = spec.split(";")
    proto = params[0].upper()
    protocol = "TCP" if proto.endswith("/TCP") else "UDP"
    interleaved: tuple[int, int] | None = None
    client_ports: tuple[int, int] | None = None
    multicast = False
    record = False
    for param in params[1:]:
        key, _, val = param.strip().partition("=")
        key = key.lower()
        if key == "interleaved" and val:
            lo, _, hi = val.partition("-")
            interleaved = (int(lo), int(hi) if hi else int(lo) + 1)
        elif key == "client_port" and val:
            lo, _, hi = val.partition("-")
            client_ports = (int(lo), int(hi) if hi else int(lo) + 1)
        elif key == "multicast":
            multicast = True
        elif key == "mode":
            record = val.strip('"').lower() == "record"
    return Transport(protocol, multicast, interleaved, record, client_ports)
