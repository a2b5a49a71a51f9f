"""The HLS server on ``hlsAddress`` (8888): upstream's routes, muxed by the image's FFmpeg.

Why: a camera suite that hands out ``http://host:8888/<path>/index.m3u8`` URLs checks
that a player reads them. Upstream answers the first playlist request with a 302 that
sets a ``cookieCheck`` cookie, then serves a multivariant playlist whose media playlist
and fMP4 segments come from a muxer created on demand (a reader of the path, listed by
``/v3/hlsmuxers``, closed ``hlsMuxerCloseAfter`` after the last request). The stand-in
keeps those routes, statuses and API objects and lets FFmpeg do the muxing: the muxer
forwards the path's RTP packets over loopback UDP to an FFmpeg that reads the path's SDP
and writes fMP4 HLS. FFmpeg's playlists carry no LL-HLS parts; players and ffprobe read
them as they read upstream's (the stand-in's README lists that difference).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import socket
import tempfile
import uuid
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from . import gofmt, log, web
from .config import parse_duration
from .httpbase import json_response, make_app, not_found, serve
from .path import PathError

if TYPE_CHECKING:
    from .core import Core
    from .path import Path
    from .sdp import Media, SessionDescription

# Upstream waits this long before answering a request it refuses (brute-force delay).
PAUSE_AFTER_ERROR = 2.0
MEDIA_PLAYLIST = "video1_stream.m3u8"
_INDEX_HTML = """<!DOCTYPE html>
<html>
<head>
<meta charset="UTF-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
</head>
<body>
<video id="video" muted controls autoplay playsinline></video>
</body>
</html>
"""
_CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".mp4": "video/mp4",
                  ".ts": "video/MP2T"}


def _free_udp_port() -> int:
    """A loopback UDP port pair FFmpeg can bind (RTP on N, RTCP on N+1)."""
    for _ in range(32):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1]) & ~1
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise OSError("no free loopback UDP port pair for the HLS muxer")


def local_sdp(desc: SessionDescription, ports: list[int]) -> str:
    """The path's SDP with every track sent to a loopback port, for FFmpeg to read."""
    out = ["v=0", "o=- 0 0 IN IP4 127.0.0.1", "s=mtxstandin", "c=IN IP4 127.0.0.1", "t=0 0"]
    for media, port in zip(desc.medias, ports, strict=True):
        for line in media.lines:
            if line.startswith("m="):
                kind, _port, *rest = line[2:].split(" ")
                out.append(f"m={kind} {port} {' '.join(rest)}")
            elif not line.startswith(("a=control:", "c=")):
                out.append(line)
    return "\r\n".join(out) + "\r\n"


def _avc_profile(media: Media) -> str:
    """``PPCCLL`` of an H.264 track: from its SPS (in-band or ``sprop-parameter-sets``)."""
    sps = media.sps
    for line in media.lines:
        if not sps and "sprop-parameter-sets=" in line:
            first = line.split("sprop-parameter-sets=", 1)[1].split(",", 1)[0].split(";")[0]
            with contextlib.suppress(ValueError):
                sps = base64.b64decode(first.strip())
    return sps[1:4].hex() if len(sps) >= 4 else ""


def _error(status: int, message: str) -> web.Response:
    """Upstream's ``writeErrorNoLog``: the JSON error body, without a log line."""
    return json_response({"status": "error", "error": message}, status)


class Muxer:
    """One path's HLS muxer: a reader of the path that feeds an FFmpeg HLS writer."""

    def __init__(self, server: HLSServer, path: Path, desc: SessionDescription,
                 requester: str) -> None:
        self.server = server
        self.path = path
        self.desc = desc
        # v1.20.1 lists HLS readers as sessions (PathReaderType has no muxer type); the
        # stand-in keeps one session per muxer rather than one per client.
        self.uuid = str(uuid.uuid4())
        self.created = gofmt.timestamp()
        self.last_request = self.created
        self.outbound_bytes = 0
        self.dir = FsPath(tempfile.mkdtemp(prefix="mtxstandin-hls-"))
        self._ports: list[int] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.log(f"created (requested by {requester})")

    def log(self, msg: str) -> None:
        """Log with upstream's ``[HLS] [muxer NAME]`` prefix."""
        log.info(f"[HLS] [muxer {self.path.name}] {msg}")

    def api_ref(self) -> dict[str, str]:
        """How the path lists this reader."""
        return {"type": "hlsSession", "id": self.uuid}

    def api_item(self) -> dict[str, Any]:
        """The ``HLSMuxer`` object of the OpenAPI document."""
        return {"path": self.path.name, "created": self.created,
                "lastRequest": self.last_request, "outboundBytes": self.outbound_bytes,
                "outboundFramesDiscarded": 0, "bytesSent": self.outbound_bytes}

    async def start(self) -> None:
        """Attach to the path and start FFmpeg on its tracks."""
        desc = self.desc
        self._ports = [_free_udp_port() for _ in desc.medias]
        sdp_file = self.dir / "source.sdp"
        sdp_file.write_text(local_sdp(desc, self._ports))
        g = self.server.core.conf.global_values
        segment = parse_duration(str(g.get("hlsSegmentDuration", "1s")))
        count = int(g.get("hlsSegmentCount") or 7)
        self._proc = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-protocol_whitelist", "file,udp,rtp", "-i", str(sdp_file),
            "-c", "copy", "-f", "hls", "-hls_time", f"{segment:g}",
            "-hls_list_size", str(count), "-hls_segment_type", "fmp4",
            "-hls_fmp4_init_filename", "video1_init.mp4",
            "-hls_segment_filename", str(self.dir / "video1_seg%d.mp4"),
            "-hls_flags", "delete_segments+independent_segments+temp_file",
            str(self.dir / MEDIA_PLAYLIST),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        self._udp = transport
        self.path.add_reader(self)
        self.log(f"is converting into HLS, {desc.tracks_info()}")
        self.touch()

    def deliver(self, track: int, rtcp: bool, payload: bytes) -> int:
        """Forward one RTP packet to FFmpeg (RTCP is not needed for muxing)."""
        if rtcp or self._udp is None or track >= len(self._ports):
            return 0
        self._udp.sendto(payload, ("127.0.0.1", self._ports[track]))
        return len(payload)

    def touch(self) -> None:
        """A request arrived: push back the ``hlsMuxerCloseAfter`` deadline."""
        self.last_request = gofmt.timestamp()
        after = parse_duration(str(self.server.core.conf.global_values.get(
            "hlsMuxerCloseAfter", "60s")))
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self.server.core.conf.global_values.get("hlsAlwaysRemux"):
            self._close_timer = asyncio.get_running_loop().call_later(
                after, self.close, "not used anymore")

    async def wait_playlist(self, timeout: float) -> bool:
        """Whether FFmpeg wrote its first playlist (it needs a keyframe) in time."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (self.dir / MEDIA_PLAYLIST).exists():
            if self.closed or asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def multivariant(self) -> bytes:
        """Upstream's multivariant playlist: one video rendition with codec and size.

        FFmpeg's own master playlist lacks ``EXT-X-STREAM-INF`` until it knows the
        bitrate, so the playlist is written here from the SPS and the segments' sizes.
        """
        attrs = [f"BANDWIDTH={self._bandwidth()}"]
        for media in self.desc.medias:
            if media.codec == "H264" and (profile := _avc_profile(media)):
                attrs.append(f'CODECS="avc1.{profile}"')
            if media.props and "width" in media.props:
                attrs.append(f"RESOLUTION={media.props['width']}x{media.props['height']}")
        return ("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n\n"
                f"#EXT-X-STREAM-INF:{','.join(attrs)}\n{MEDIA_PLAYLIST}\n").encode()

    def _bandwidth(self) -> int:
        sizes = [p.stat().st_size for p in self.dir.glob("video1_seg*.mp4")]
        segment = parse_duration(str(self.server.core.conf.global_values.get(
            "hlsSegmentDuration", "1s"))) or 1.0
        return int(max(sizes, default=0) * 8 / segment) or 1

    def close(self, reason: str) -> None:
        """Stop FFmpeg, detach from the path and delete the segments."""
        if self.closed:
            return
        self.closed = True
        if self._close_timer is not None:
            self._close_timer.cancel()
        self.server.muxers.pop(self.path.name, None)
        self.path.remove_reader(self)
        if self._udp is not None:
            self._udp.close()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.log(f"destroyed: {reason}")


class HLSServer:
    """The HLS listener and its muxers."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.address = str(core.conf.global_values["hlsAddress"])
        self.muxers: dict[str, Muxer] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and log the start line."""
        g = self.core.conf.global_values
        app = make_app(lambda: list(g.get("hlsAllowOrigins") or []))
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = await serve(app, self.address)
        log.info(f"[HLS] started with listener on {self.address} (TCP/HTTP)")

    async def close(self) -> None:
        """Close every muxer, then the listener."""
        log.info("[HLS] listener is closing")
        for muxer in list(self.muxers.values()):
            muxer.close("terminated")
        if self._runner is not None:
            await self._runner.cleanup()

    def api_list(self) -> list[dict[str, object]]:
        """Every muxer, for ``/v3/hlsmuxers/list``."""
        return [m.api_item() for m in self.muxers.values()]

    def api_get(self, name: str) -> dict[str, object] | None:
        """One muxer, or None (``muxer not found``)."""
        muxer = self.muxers.get(name)
        return muxer.api_item() if muxer is not None else None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return not_found()
        rel = request.path[1:]
        if rel in ("", "favicon.ico") or rel.endswith(("/hls.min.js", "/hls.min.js.map")):
            return not_found()
        directory, _, fname = rel.rpartition("/")
        if fname.endswith(".m3u8") and fname == "index.m3u8":
            return await self._multivariant(request, directory)
        if fname.endswith((".m3u8", ".ts", ".mp4", ".mp")):
            return await self._file(directory, fname + ("4" if fname.endswith(".mp") else ""))
        if not rel.endswith("/"):
            location = "/" + rel.strip("/") + "/"
            if request.query_string:
                location += "?" + request.query_string
            return web.Response(status=302, headers={"Location": location})
        if self.core.conf.find_path_conf(rel[:-1]) is None:
            return _error(500, f"path '{rel[:-1]}' is not configured")
        return web.Response(text=_INDEX_HTML, content_type="text/html",
                            headers={"Cache-Control": "max-age=3600"})

    async def _multivariant(self, request: web.Request, name: str) -> web.StreamResponse:
        if request.query.get("cookieCheck") != "1":
            query = dict(request.query)
            query["cookieCheck"] = "1"
            response = web.Response(status=302, headers={
                "Location": f"{request.path}?{urlencode(sorted(query.items()))}"})
            response.set_cookie("cookieCheck", "1")
            return response
        try:
            muxer = await self._muxer(name, request.remote or "")
        except PathError as exc:
            return _error(404 if exc.status == 404 else 500, str(exc))
        if not await muxer.wait_playlist(timeout=30.0):
            return _error(404, f"no stream is available on path '{name}'")
        muxer.outbound_bytes += len(body := muxer.multivariant())
        return web.Response(body=body, content_type=_CONTENT_TYPES[".m3u8"],
                            headers={"Cache-Control": "no-cache"})

    async def _muxer(self, name: str, requester: str) -> Muxer:
        existing = self.muxers.get(name)
        if existing is not None:
            existing.touch()
            return existing
        path = await self.core.paths.ready_path(name)
        if name in self.muxers:  # another request created it while this one waited
            return self.muxers[name]
        if path.desc is None:
            raise PathError(f"no stream is available on path '{name}'", 404)
        muxer = Muxer(self, path, path.desc, requester)
        self.muxers[name] = muxer
        await muxer.start()
        return muxer

    async def _file(self, name: str, fname: str) -> web.StreamResponse:
        muxer = self.muxers.get(name)
        if muxer is None or "/" in fname or fname.startswith("."):
            await asyncio.sleep(PAUSE_AFTER_ERROR)
            return _error(401, "authentication error")
        muxer.touch()
        return self._serve(muxer, fname)

    @staticmethod
    def _serve(muxer: Muxer, fname: str) -> web.StreamResponse:
        try:
            body = (muxer.dir / fname).read_bytes()
        except OSError:
            return not_found()
        muxer.outbound_bytes += len(body)
        content_type = _CONTENT_TYPES.get(FsPath(fname).suffix, "application/octet-stream")
        return web.Response(body=body, content_type=content_type,
                            headers={"Cache-Control": "no-cache"})
