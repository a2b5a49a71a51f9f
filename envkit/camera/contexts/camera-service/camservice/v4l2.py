"""Tell V4L2 capture devices apart from other ``/dev/video*`` nodes.

A UVC webcam creates several nodes (capture plus metadata), and a test may map an
arbitrary character device (``--device /dev/zero:/dev/video0``) to exercise the
failure path.  ``VIDIOC_QUERYCAP`` is the cheapest reliable probe: it needs no
streaming, does not claim the device, and fails with ENOTTY on anything that is
not a V4L2 node.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
from dataclasses import dataclass, field

# struct v4l2_capability: driver[16] card[32] bus_info[32] version capabilities
# device_caps reserved[3]  ->  104 bytes; _IOR('V', 0, struct v4l2_capability).
_CAP_STRUCT = struct.Struct("=16s32s32sIII3I")
VIDIOC_QUERYCAP = (2 << 30) | (_CAP_STRUCT.size << 16) | (ord("V") << 8) | 0
assert VIDIOC_QUERYCAP == 0x80685600

V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_VIDEO_OUTPUT = 0x00000002
V4L2_CAP_VIDEO_M2M = 0x00008000
V4L2_CAP_META_CAPTURE = 0x00800000
V4L2_CAP_READWRITE = 0x01000000
V4L2_CAP_STREAMING = 0x04000000
V4L2_CAP_DEVICE_CAPS = 0x80000000

_CAP_NAMES = {
    V4L2_CAP_VIDEO_CAPTURE: "video_capture",
    V4L2_CAP_VIDEO_OUTPUT: "video_output",
    V4L2_CAP_VIDEO_M2M: "video_m2m",
    V4L2_CAP_META_CAPTURE: "meta_capture",
    V4L2_CAP_READWRITE: "readwrite",
    V4L2_CAP_STREAMING: "streaming",
}


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of probing one node.

    ``error`` is set when the node cannot be used at all (the camera is reported as
    ERROR); ``is_capture`` False with no error means a valid V4L2 node that is not
    a camera (e.g. a UVC metadata node), which discovery ignores.
    """

    is_capture: bool
    error: str | None = None
    driver: str = ""
    card: str = ""
    bus_info: str = ""
    version: str = ""
    capabilities: list[str] = field(default_factory=list)


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def parse_capability(buf: bytes) -> ProbeResult:
    """Decode a filled ``struct v4l2_capability`` (split out for unit tests)."""
    driver, card, bus, version, caps, device_caps, *_ = _CAP_STRUCT.unpack(buf)
    # device_caps describes this node; capabilities describes the whole physical
    # device and would mark a UVC metadata node as "capture" too.
    effective = device_caps if caps & V4L2_CAP_DEVICE_CAPS else caps
    names = [name for bit, name in _CAP_NAMES.items() if effective & bit]
    return ProbeResult(
        is_capture=bool(effective & V4L2_CAP_VIDEO_CAPTURE),
        driver=_cstr(driver),
        card=_cstr(card),
        bus_info=_cstr(bus),
        version=f"{version >> 16}.{(version >> 8) & 0xFF}.{version & 0xFF}",
        capabilities=names,
    )


def probe(path: str) -> ProbeResult:
    """Open ``path`` non-blocking and run VIDIOC_QUERYCAP; never raises OSError."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return ProbeResult(is_capture=False, error=f"stat failed: {exc}")
    if not stat.S_ISCHR(st.st_mode):
        return ProbeResult(is_capture=False, error="not a character device")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        return ProbeResult(is_capture=False, error=f"open failed: {exc}")
    try:
        buf = bytearray(_CAP_STRUCT.size)
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf, True)
    except OSError as exc:
        return ProbeResult(is_capture=False, error=f"VIDIOC_QUERYCAP failed: {exc}")
    finally:
        os.close(fd)
    return parse_capability(bytes(buf))
