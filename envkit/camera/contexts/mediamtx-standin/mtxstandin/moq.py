"""The MoQ (Media over QUIC) server's listeners, bound as upstream v1.20.1 binds them.

Why: MoQ is on by default in v1.20.1, so with the shipped ``mediamtx.yml`` upstream
takes TCP ``moqHTTP2Address`` (8892, HTTPS for the web client), UDP ``moqHTTP3Address``
(8892, WebTransport) and UDP ``moqQUICAddress`` (8893, native QUIC), and logs
``[MoQ] started with listeners on :8892 (TCP/HTTP2), :8892 (UDP/HTTP3), :8893
(UDP/QUIC)``. A suite that reads the log or finds those ports taken must see the same
here. No TLS, WebTransport or QUIC is spoken: a TCP client is disconnected at once and
datagrams are dropped (the README's "Left out" says so).

Upstream's certificate handling shows in the log too: with the default
``moqServerKey: auto.key`` / ``moqServerCert: auto.crt`` and no such files, it warns that
it generates a certificate and tries to save both files in its working directory
(which fails on a read-only root). The stand-in prints the same lines but writes no file.
"""

from __future__ import annotations

import asyncio
import errno
import os

from . import log

AUTO_KEY, AUTO_CERT = "auto.key", "auto.crt"


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "0.0.0.0", int(port)  # upstream's ":8892" means every address


def go_errno_text(code: int) -> str:
    """Go's text of a syscall error (``no such file or directory``, lower-case)."""
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


def check_certificate(key: str, cert: str) -> None:
    """Log what upstream's certificate loader logs, or fail as it fails.

    :raises OSError: when explicit files are missing (upstream cannot start then).
    """
    if key == AUTO_KEY and cert == AUTO_CERT:
        if os.path.exists(key) and os.path.exists(cert):
            return
        log.warn(f"[MoQ] certificate {key} not found, generating it from scratch")
        if _read_only(os.path.dirname(os.path.abspath(key))):
            # Upstream runs as root: only a read-only file system stops it saving.
            reason = go_errno_text(errno.EROFS)
            log.warn(f"[MoQ] failed to save TLS key to {key}: open {key}: {reason}")
            log.warn(f"[MoQ] failed to save TLS cert to {cert}: open {cert}: {reason}")
        return
    for name in (cert, key):  # Go's tls.LoadX509KeyPair reads the certificate first
        if not os.path.exists(name):
            raise OSError(f"open {name}: {go_errno_text(errno.ENOENT)}")


def _read_only(directory: str) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


async def _hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


class MoQServer:
    """The three listeners of upstream's MoQ server; nothing is served on them."""

    def __init__(self, global_values: dict[str, object]) -> None:
        g = global_values
        self.http2 = str(g["moqHTTP2Address"])
        self.http3 = str(g["moqHTTP3Address"])
        self.quic = str(g["moqQUICAddress"])
        self.key, self.cert = str(g["moqServerKey"]), str(g["moqServerCert"])
        self._tcp: asyncio.base_events.Server | None = None
        self._udp: list[asyncio.DatagramTransport] = []

    async def start(self) -> None:
        """Bind TCP/HTTP2, UDP/HTTP3 and UDP/QUIC, then log upstream's start line."""
        check_certificate(self.key, self.cert)
        loop = asyncio.get_running_loop()
        host, port = _split(self.http2)
        self._tcp = await asyncio.start_server(_hang_up, host, port, reuse_address=True)
        try:
            for address in (self.http3, self.quic):
                transport, _ = await loop.create_datagram_endpoint(
                    asyncio.DatagramProtocol, local_addr=_split(address))
                self._udp.append(transport)
        except OSError:
            self.close_sockets()
            raise
        log.info(f"[MoQ] started with listeners on {self.http2} (TCP/HTTP2), "
                 f"{self.http3} (UDP/HTTP3), {self.quic} (UDP/QUIC)")

    def close_sockets(self) -> None:
        """Release the ports (no waiting: nothing is in flight on them)."""
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        for transport in self._udp:
            transport.close()
        self._udp.clear()

    async def close(self) -> None:
        """Upstream's ``[MoQ] closing``, then the sockets."""
        log.info("[MoQ] closing")
        self.close_sockets()
