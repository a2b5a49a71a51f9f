"""RTSP server: one asyncio task per TCP connection, requests handled in order.

Why: publishers (FFmpeg ``-f rtsp``) and readers (ffprobe, ``ffmpeg -i``, OpenCV...) use
ANNOUNCE/SETUP/RECORD and DESCRIBE/SETUP/PLAY. Media goes interleaved in the TCP
connection, over UDP (``udp.py``) or, for readers, to a multicast group, as
``rtspTransports`` allows; a transport it does not list gets ``461 Unsupported
Transport`` (on which FFmpeg retries with TCP), as upstream answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from typing import Any

from . import log
from .config import parse_duration
from .path import PathError, now_iso
from .paths import PathManager
from .rtsp_proto import (
    Frame,
    ProtocolError,
    Request,
    Transport,
    parse_transport,
    read_message,
    response,
)
from .rtsp_session import SESSION_TIMEOUT, Session
from .sdp import SDPError
from .sdp import parse as parse_sdp
from .udp import MULTICAST_TTL, MulticastGroups, UDPListeners

PUBLIC = "DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, GET_PARAMETER, SET_PARAMETER, TEARDOWN"
_TRACK_SUFFIX = re.compile(r"/trackID=(\d+)$")


class RTSPConn:
    """One client connection and (at most) one session on it."""

    def __init__(self, server: RTSPServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.ip = str(peer[0])
        self.remote = f"{peer[0]}:{peer[1]}"
        self.uuid = str(uuid.uuid4())
        self.created = now_iso()
        self.session: Session | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.user_agent = ""
        # Upstream closes the connection with the error of the last refused request.
        self.last_error = ""

    def api_item(self) -> dict[str, Any]:
        """The ``RTSPConn`` object of the OpenAPI document."""
        return {
            "id": self.uuid, "created": self.created, "remoteAddr": self.remote,
            "session": self.session.uuid if self.session else None, "tunnel": "none",
            "inboundBytes": self.bytes_in, "outboundBytes": self.bytes_out,
            "bytesReceived": self.bytes_in, "bytesSent": self.bytes_out,
        }

    def log(self, msg: str) -> None:
        """Log with upstream's ``[RTSP] [conn ADDR]`` prefix."""
        log.info(f"[RTSP] [conn {self.remote}] {msg}")

    def close_from_path(self, reason: str) -> None:
        """The path dropped our session: end it and close the socket."""
        if self.session is not None:
            self.session.detach(reason)
        self.writer.close()

    async def run(self) -> None:
        """Serve requests and frames until the client goes away."""
        self.log("opened")
        reason = "EOF"
        try:
            while True:
                timeout = None
                if self.session is not None and self.session.recording and \
                        self.session.transport == "TCP":
                    timeout = self.server.read_timeout
                msg = await asyncio.wait_for(read_message(self.reader), timeout)
                if isinstance(msg, Frame):
                    self.bytes_in += len(msg.payload) + 4
                    if self.session is not None:
                        self.session.on_frame(msg.channel, msg.payload)
                    continue
                await self.handle(msg)
                if self.writer.is_closing():
                    reason = "terminated"
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            reason = self.last_error or "EOF"
        except asyncio.CancelledError:
            reason = "terminated"
        except TimeoutError:
            reason = "read timeout"
        except ProtocolError as exc:
            reason = str(exc)
        finally:
            if self.server.closing:
                reason = "terminated"
            if self.session is not None:
                self.session.detach("not in use" if reason == "EOF" else reason)
                self.server.sessions.pop(self.session.uuid, None)
            self.server.conns.pop(self.uuid, None)
            self.writer.close()
            self.log(f"closed: {reason}")

    def send(self, data: bytes) -> None:
        """Write a response (never blocks; responses are small)."""
        if not self.writer.is_closing():
            self.bytes_out += len(data)
            self.writer.write(data)

    async def handle(self, req: Request) -> None:
        """Dispatch one request and answer it (CSeq echoed)."""
        cseq = req.header("cseq", "0")
        self.user_agent = req.header("user-agent") or self.user_agent
        handler = getattr(self, "on_" + req.method.lower(), None)
        if handler is None:
            self.send(response(501, cseq))
            return
        if self.session is not None and req.method not in ("OPTIONS", "DESCRIBE", "ANNOUNCE"):
            given = req.header("session").split(";")[0].strip()
            if given and given != self.session.secret:
                self.send(response(454, cseq))
                return
        try:
            status, headers, body = await handler(req)
        except PathError as exc:
            self.last_error = str(exc)
            status, headers, body = exc.status, {}, b""
        except (SDPError, ValueError) as exc:
            self.last_error = str(exc)
            status, headers, body = 400, {}, b""
        if self.session is not None and req.method != "OPTIONS" and "Session" not in headers:
            headers["Session"] = f"{self.session.secret};timeout={SESSION_TIMEOUT}"
        self.send(response(status, cseq, headers, body))

    def _new_session(self) -> Session:
        if self.session is None:
            self.session = Session(self, self.server.write_queue_size)
            self.server.sessions[self.session.uuid] = self.session
        return self.session

    # ------------------------------------------------------------------ methods
    async def on_options(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        """Capabilities."""
        return 200, {"Public": PUBLIC}, b""

    async def on_get_parameter(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        """Keepalive used by FFmpeg and others."""
        return 200, {"Content-Type": "text/parameters"}, b"\r\n" if req.body else b""

    async def on_set_parameter(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        """Accepted and ignored (keepalive)."""
        return 200, {}, b""

    async def on_describe(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        """Publisher's SDP (controls rewritten), after ``runOnDemand`` if configured."""
        name, query = req.path_and_query
        desc = await self.server.paths.describe(name, query)
        base = req.url.split("?", 1)[0].rstrip("/") + "/"
        return 200, {"Content-Base": base, "Content-Type": "application/sdp"}, \
            desc.for_readers()

    async def on_announce(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        """Reserve the path for this publisher."""
        if self.session is not None and self.session.state != "idle":
            return 455, {}, b""
        desc = parse_sdp(req.body)
        name, query = req.path_and_query
        session = self._new_session()
        session.path = self.server.paths.add_publisher(name, session)
        session.state = "publish"
        session.path_name, session.query, session.announced = name, query, desc
        return 200, {}, b""

    async def on_setup(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        """Per-track transport: TCP interleaved, UDP unicast or (readers) UDP multicast."""
        transport = parse_transport(req.header("transport"))
        if not self.server.accepts(transport.kind):
            return 461, {}, b""
        session = self._new_session()
        if session.playing or session.recording:
            return 455, {}, b""
        if session.transport not in (None, transport.kind) or \
                (transport.kind == "UDP" and transport.client_ports is None):
            return 400, {}, b""
        if session.state == "publish":
            if transport.kind == "UDP-multicast":
                return 461, {}, b""
            assert session.announced is not None
            already = len(session.in_channels) // 2 + len(session.udp_in)
            track = session.announced.track_for_setup(req.url, already)
        else:
            status, track = await self._setup_reader(req, session)
            if status != 200:
                return status, {}, b""
        session.transport = transport.kind
        return 200, {"Transport": self._bind(session, track, transport)}, b""

    async def _setup_reader(self, req: Request, session: Session) -> tuple[int, int]:
        name, query = req.path_and_query
        name, track = _split_track(name)
        if session.path is None:
            session.path = await self.server.paths.add_reader(name, session, query)
            session.state = "read"
            session.path_name, session.query = name, query
        elif session.path.name != name:
            return 400, track
        desc = session.path.desc
        if desc is None or track >= len(desc.medias):
            return 404, track
        return 200, track

    def _bind(self, session: Session, track: int, transport: Transport) -> str:
        """Give the track its channels or ports; return the SETUP's Transport answer."""
        if transport.kind == "TCP":
            return _bind_channels(session, track, transport.interleaved)
        ssrc = ""
        if session.state == "read" and session.path is not None and session.path.desc:
            known = session.path.desc.medias[track].ssrc
            ssrc = f";ssrc={known:08X}" if known is not None else ""
        if transport.kind == "UDP-multicast":
            multicast = self.server.multicast
            assert multicast is not None and session.path is not None
            group = multicast.group(session.path.name, track)
            return (f"RTP/AVP;multicast;destination={group};port={multicast.ports[0]}-"
                    f"{multicast.ports[1]};ttl={MULTICAST_TTL}{ssrc}")
        udp, ports = self.server.udp, transport.client_ports
        assert udp is not None and ports is not None
        if session.state == "publish":
            udp.register(self.ip, ports, lambda d: session.on_udp(track, False, d),
                         lambda d: session.on_udp(track, True, d))
        else:
            session.udp_out[track] = (self.ip, ports[0], ports[1])
            udp.register(self.ip, ports, lambda d: None,
                         lambda d: session.on_udp(track, True, d))
        session.udp_in.append(ports)
        return (f"RTP/AVP;unicast;client_port={ports[0]}-{ports[1]};"
                f"server_port={udp.ports[0]}-{udp.ports[1]}{ssrc}")

    async def on_play(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        """Start relaying packets to this reader."""
        session = self.session
        if session is None or session.state != "read" or session.transport is None:
            return 455, {}, b""
        if not session.playing:
            assert session.path is not None and session.path.desc is not None
            session.playing = True
            session.log(f"is reading from path '{session.path.name}', with "
                        f"{session.transport}, "
                        f"{session.path.desc.tracks_info()}")
        return 200, {"Range": "npt=0.000-"}, b""

    async def on_record(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        """Make the stream available to readers."""
        session = self.session
        if session is None or session.state != "publish" or session.transport is None:
            return 455, {}, b""
        assert session.path is not None and session.announced is not None
        if len(session.in_channels) // 2 + len(session.udp_in) != \
                len(session.announced.medias):
            return 400, {}, b""
        if not session.recording:
            session.path.start_publisher(session, session.announced)
            session.recording = True
            if session.transport == "UDP":
                session.watch_udp(self.server.read_timeout)
            session.log(f"is publishing to path '{session.path.name}'")
        return 200, {}, b""

    async def on_pause(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        """Stop relaying to a reader (publishers are not paused, as in upstream)."""
        if self.session is not None and self.session.state == "read":
            self.session.playing = False
        return 200, {}, b""

    async def on_teardown(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        """End the session; the connection stays open until the client closes it."""
        session = self.session
        if session is not None:
            headers = {"Session": session.secret}
            session.detach(f"torn down by {self.remote}")
            self.server.sessions.pop(session.uuid, None)
            self.session = None
            return 200, headers, b""
        return 200, {}, b""


def _split_track(name: str) -> tuple[str, int]:
    """Split a reader's SETUP path into path name and track (``.../trackID=N``, else 0)."""
    match = _TRACK_SUFFIX.search("/" + name)
    if match is None:
        return name, 0
    return ("/" + name)[: match.start()].strip("/"), int(match.group(1))


def _bind_channels(session: Session, track: int, requested: tuple[int, int] | None) -> str:
    """Give ``track`` an interleaved channel pair and return the SETUP's Transport answer.

    The client's pair is kept unless already taken, in which case the next free pair is
    used, so a client that repeats a pair still gets distinct channels per track.
    """
    used = set(session.in_channels) | {c for t in session.out_channels.values()
                                       for c in (t, t + 1)}
    channels = requested or (2 * track, 2 * track + 1)
    if channels[0] in used:
        channels = (max(used) + 1, max(used) + 2)
    if session.state == "publish":
        session.in_channels[channels[0]] = (track, False)
        session.in_channels[channels[1]] = (track, True)
    else:
        session.out_channels[track] = channels[0]
    # gortsplib answers without a mode (its Transport answer never carries one).
    return f"RTP/AVP/TCP;unicast;interleaved={channels[0]}-{channels[1]}"


class RTSPServer:
    """The RTSP listener, the UDP sockets, and the registry of connections and sessions."""

    def __init__(self, conf: dict[str, Any], paths: PathManager) -> None:
        self.address = str(conf["rtspAddress"])
        self.transports = [str(t) for t in conf["rtspTransports"]]
        self.read_timeout = parse_duration(conf["readTimeout"])
        self.write_queue_size = int(conf["writeQueueSize"])
        self.paths = paths
        self.conns: dict[str, RTSPConn] = {}
        self.sessions: dict[str, Session] = {}
        self._server: asyncio.base_events.Server | None = None
        self.udp: UDPListeners | None = None
        if "udp" in self.transports:
            self.udp = UDPListeners(str(conf["rtpAddress"]), str(conf["rtcpAddress"]))
        self.multicast: MulticastGroups | None = None
        if "multicast" in self.transports:
            self.multicast = MulticastGroups(str(conf["multicastIPRange"]),
                                             int(conf["multicastRTPPort"]),
                                             int(conf["multicastRTCPPort"]))
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def accepts(self, kind: str) -> bool:
        """Whether ``rtspTransports`` allows a SETUP's transport (else 461, as upstream)."""
        needed = {"TCP": "tcp", "UDP": "udp", "UDP-multicast": "multicast"}[kind]
        return needed in self.transports

    async def start(self) -> None:
        """Listen, then log the line readiness checks wait for (upstream's wording)."""
        host, _, port = self.address.rpartition(":")
        self._server = await asyncio.start_server(self._accept, host or None, int(port))
        listeners = f"{self.address} (TCP/RTSP)"
        if self.udp is not None:
            try:
                await self.udp.start()
            except OSError:
                self._server.close()
                raise
            rtp, rtcp = self.udp.addresses
            listeners += f", {rtp} (UDP/RTP), {rtcp} (UDP/RTCP)"
        log.info(f"[RTSP] started with listeners on {listeners}")

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        conn = RTSPConn(self, reader, writer)
        self.conns[conn.uuid] = conn
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await conn.run()
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        log.info("[RTSP] listener is closing")
        self.closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.conns.values()):
            conn.writer.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.udp is not None:
            self.udp.close()
        if self.multicast is not None:
            self.multicast.close()
