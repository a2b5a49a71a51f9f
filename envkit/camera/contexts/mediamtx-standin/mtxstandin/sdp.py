"""Just enough SDP handling to relay a publisher's description to readers.

Why: the stand-in never decodes media. It keeps the publisher's SDP, rewrites only the
``a=control`` attributes so readers can SETUP each track (``trackID=N``, as upstream's
gortsplib does), and names the codecs for logs and the API (``tracks``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .h264 import SPSError, parse_sps, sps_from_fmtp, sps_in_rtp

# rtpmap encoding name (upper case) -> codec name of the OpenAPI ``PathTrackCodec`` enum
_CODECS = {
    "H264": "H264",
    "H265": "H265",
    "AV1": "AV1",
    "VP8": "VP8",
    "VP9": "VP9",
    "MP4V-ES": "MPEG-4 Video",
    "JPEG": "M-JPEG",
    "MPV": "MPEG-1/2 Video",
    "MPA": "MPEG-1/2 Audio",
    "MPEG4-GENERIC": "MPEG-4 Audio",
    "MP4A-LATM": "MPEG-4 Audio LATM",
    "OPUS": "Opus",
    "PCMU": "G711",
    "PCMA": "G711",
    "L8": "LPCM",
    "L16": "LPCM",
    "L24": "LPCM",
    "AC3": "AC3",
    "G722": "G722",
    "SPEEX": "Speex",
    "VORBIS": "Vorbis",
    "MP2T": "MPEG-TS",
    "SMPTE336M": "KLV",
}
_STATIC_PT = {0: "G711", 8: "G711", 9: "G722", 14: "MPEG-1/2 Audio", 26: "M-JPEG",
              32: "MPEG-1/2 Video", 33: "MPEG-TS"}


class SDPError(ValueError):
    """The body of an ANNOUNCE is not a usable SDP."""


@dataclass
class Media:
    """One ``m=`` section: its lines, its control attribute and its codec name."""

    lines: list[str]
    control: str = ""
    codec: str = "Generic"
    # ``codecProps`` of the API (H.264: from the SPS); None where upstream has none.
    props: dict[str, Any] | None = None
    sps: bytes = b""
    clock_rate: int = 90000
    # The publisher's RTP SSRC (readers over UDP are told it in the SETUP answer).
    ssrc: int | None = None

    def watch_rtp(self, payload: bytes) -> None:
        """Note the SSRC; follow in-band SPS changes of an H.264 track, as upstream does."""
        if self.ssrc is None and len(payload) >= 12:
            self.ssrc = int.from_bytes(payload[8:12], "big")
        if self.codec != "H264" or len(payload) < 13:
            return
        nalu = sps_in_rtp(payload)
        if nalu is None or nalu == self.sps:
            return
        self.sps = nalu
        try:
            self.props = parse_sps(nalu).codec_props()
        except SPSError:
            return


@dataclass
class SessionDescription:
    """A parsed SDP: session-level lines and media sections."""

    session_lines: list[str] = field(default_factory=list)
    medias: list[Media] = field(default_factory=list)

    def codecs(self) -> list[str]:
        """Codec of each track, in order."""
        return [m.codec for m in self.medias]

    def tracks2(self) -> list[dict[str, Any]]:
        """The API's ``tracks2``: codec and codec properties of each track."""
        return [{"codec": m.codec, "codecProps": m.props} for m in self.medias]

    def tracks_info(self) -> str:
        """Upstream's wording, e.g. ``1 track (H264)`` or ``2 tracks (H264, Opus)``."""
        n = len(self.medias)
        return f"{n} track{'s' if n != 1 else ''} ({', '.join(self.codecs())})"

    def for_readers(self) -> bytes:
        """The SDP given to readers: same media, controls rewritten to ``trackID=N``."""
        out = [ln for ln in self.session_lines if not ln.startswith("a=control:")]
        for i, media in enumerate(self.medias):
            out.extend(ln for ln in media.lines if not ln.startswith("a=control:"))
            out.append(f"a=control:trackID={i}")
        return ("\r\n".join(out) + "\r\n").encode()

    def track_for_setup(self, url: str, already: int) -> int:
        """Which track a publisher's SETUP URL names (by its control attribute)."""
        base = url.split("?", 1)[0].rstrip("/")
        for i, media in enumerate(self.medias):
            ctl = media.control
            if not ctl or ctl == "*":
                continue
            if ctl.startswith("rtsp://") or ctl.startswith("rtsps://"):
                if base == ctl.split("?", 1)[0].rstrip("/"):
                    return i
            elif base.endswith("/" + ctl.rstrip("/")):
                return i
        if already < len(self.medias):
            return already
        raise SDPError("invalid SETUP path")


def _codec_of(m_line: str, lines: list[str]) -> str:
    parts = m_line.split()
    fmts = parts[3:] if len(parts) > 3 else []
    if not fmts:
        return "Generic"
    first = fmts[0]
    for ln in lines:
        match = re.match(r"a=rtpmap:(\d+)\s+([^/\s]+)", ln)
        if match and match.group(1) == first:
            return _CODECS.get(match.group(2).upper(), "Generic")
    if first.isdigit():
        return _STATIC_PT.get(int(first), "Generic")
    return "Generic"


def parse(body: bytes) -> SessionDescription:
    """Parse an SDP body; refuse one without any media (upstream does too)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SDPError("invalid SDP: not UTF-8") from exc
    desc = SessionDescription()
    current: list[str] | None = None
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("m="):
            current = [line]
            desc.medias.append(Media(lines=current))
        elif current is None:
            desc.session_lines.append(line)
        else:
            current.append(line)
    if not desc.session_lines or not desc.session_lines[0].startswith("v="):
        raise SDPError("invalid SDP: missing v= line")
    if not desc.medias:
        raise SDPError("invalid SDP: no media")
    for media in desc.medias:
        for ln in media.lines:
            if ln.startswith("a=control:"):
                media.control = ln[len("a=control:"):].strip()
        media.codec = _codec_of(media.lines[0], media.lines)
        media.clock_rate = _clock_rate(media.lines)
        if media.codec == "H264":
            media.props = _h264_props(media.lines)
    return desc


def _h264_props(lines: list[str]) -> dict[str, Any] | None:
    for ln in lines:
        if ln.startswith("a=fmtp:"):
            sps = sps_from_fmtp(ln.partition(" ")[2])
            if sps is not None:
                return sps.codec_props()
    return None


def _clock_rate(lines: list[str]) -> int:
    for ln in lines:
        match = re.match(r"a=rtpmap:\d+\s+[^/\s]+/(\d+)", ln)
        if match:
            return int(match.group(1))
    return 90000
