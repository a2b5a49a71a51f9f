"""RTP/RTCP over UDP: the server's unicast sockets and its multicast groups.

Why: with ``udp`` in ``rtspTransports`` upstream (gortsplib) listens on ``rtpAddress``
and ``rtcpAddress`` (8000/8001): a publisher sends its packets there from the client ports
it named in SETUP, and readers get theirs from there. Packets are matched to a session by
source address (IP of the RTSP connection, client port), as gortsplib does; packets from
anyone else are dropped. With ``multicast`` a reader is given a group taken from
``multicastIPRange`` and the stream is sent once to the group's ``multicastRTPPort`` and
``multicastRTCPPort``, whoever and however many listen.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable

Sink = Callable[[bytes], None]
MULTICAST_TTL = 127  # what gortsplib announces (ttl=127) and sets on its sockets


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "0.0.0.0", int(port)  # upstream's ":8000" means every address


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, sinks: dict[tuple[str, int], Sink]) -> None:
        self.sinks = sinks

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        sink = self.sinks.get((str(addr[0]), int(addr[1])))
        if sink is not None:
            sink(data)

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable from a reader gone away: nothing to do (as upstream)."""


class UDPListeners:
    """The two unicast sockets and which client address feeds which session track."""

    def __init__(self, rtp_address: str, rtcp_address: str) -> None:
        self.addresses = (rtp_address, rtcp_address)
        self._sinks: tuple[dict[tuple[str, int], Sink], ...] = ({}, {})
        self._transports: list[asyncio.DatagramTransport] = []

    async def start(self) -> None:
        """Bind both sockets (an error names the address, as upstream's does)."""
        loop = asyncio.get_running_loop()
        for address, sinks in zip(self.addresses, self._sinks, strict=True):
            transport, _ = await loop.create_datagram_endpoint(
                lambda s=sinks: _Receiver(s), local_addr=_split(address))  # type: ignore[misc]
            self._transports.append(transport)

    @property
    def ports(self) -> tuple[int, int]:
        """Server ports told to clients (``server_port=8000-8001``)."""
        return _split(self.addresses[0])[1], _split(self.addresses[1])[1]

    def register(self, ip: str, ports: tuple[int, int], rtp: Sink, rtcp: Sink) -> None:
        """Route packets from ``ip:ports[0]`` (RTP) and ``ip:ports[1]`` (RTCP)."""
        self._sinks[0][(ip, ports[0])] = rtp
        self._sinks[1][(ip, ports[1])] = rtcp

    def unregister(self, ip: str, ports: tuple[int, int]) -> None:
        """Forget a client's ports (its session ended)."""
        self._sinks[0].pop((ip, ports[0]), None)
        self._sinks[1].pop((ip, ports[1]), None)

    def send(self, rtcp: bool, payload: bytes, addr: tuple[str, int]) -> bool:
        """Send from the server's RTP (or RTCP) port; False once closed."""
        index = 1 if rtcp else 0
        if index >= len(self._transports) or self._transports[index].is_closing():
            return False
        self._transports[index].sendto(payload, addr)
        return True

    def close(self) -> None:
        """Close both sockets."""
        for transport in self._transports:
            transport.close()
        self._transports = []


class MulticastGroups:
    """Groups handed out from ``multicastIPRange``, one per path track, sent to once."""

    def __init__(self, ip_range: str, rtp_port: int, rtcp_port: int) -> None:
        self.network = ipaddress.ip_network(ip_range, strict=False)
        self.ports = (rtp_port, rtcp_port)
        self._groups: dict[tuple[str, int], str] = {}
        self._last: dict[str, bytes] = {}
        self._sock: socket.socket | None = None

    def group(self, path: str, track: int) -> str:
        """The group of a path's track (allocated in order, kept while the server runs)."""
        key = (path, track)
        if key not in self._groups:
            used = set(self._groups.values())
            hosts = (str(ip) for ip in self.network.hosts())
            self._groups[key] = next(ip for ip in hosts if ip not in used)
        return self._groups[key]

    def send(self, group: str, rtcp: bool, payload: bytes) -> int:
        """Send a packet to the group once, however many readers fan it out here."""
        key = group + ("/rtcp" if rtcp else "/rtp")
        if self._last.get(key) is payload:
            return 0
        self._last[key] = payload
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
            self._sock.setblocking(False)
        try:
            self._sock.sendto(payload, (group, self.ports[1 if rtcp else 0]))
        except OSError:
            return 0
        return len(payload)

    def close(self) -> None:
        """Close the sending socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._last.clear()
