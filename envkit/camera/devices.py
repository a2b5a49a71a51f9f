"""Host cameras as ``envkit doctor`` reports them: V4L2 nodes asked for their capabilities."""

from __future__ import annotations

import fcntl
import glob
import os
import struct
from collections.abc import Callable

from envkit.kits import Finding

OK, WARN = "ok", "warn"
#: _IOR('V', 0, struct v4l2_capability), the struct being 104 bytes.
VIDIOC_QUERYCAP = 0x80685600
V4L2_CAP_VIDEO_CAPTURE, V4L2_CAP_DEVICE_CAPS = 0x1, 0x80000000


def camera_findings(pattern: str = "/dev/video*") -> list[Finding]:
    """One finding per V4L2 node, or a warning that there is none."""
    devices = sorted(glob.glob(pattern), key=lambda d: (len(d), d))
    if not devices:
        return [Finding(name="cameras", status=WARN,
                        detail=f"no {pattern}; stacks get synthetic cameras only",
                        fix="attach a camera, or `modprobe v4l2loopback` for a virtual one")]
    return [query_camera(device) for device in devices]


def _querycap(device: str, ioctl: Callable[..., bytes]) -> bytes | Finding:
    """QUERYCAP's raw answer, or the finding that says why there is none."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        return Finding(name=f"camera {device}", status=WARN,
                       detail=f"cannot open: {exc.strerror}",
                       fix=f"add your user to the video group, or check `ls -l {device}`")
    try:
        return ioctl(fd, VIDIOC_QUERYCAP, bytes(104))
    except OSError as exc:
        return Finding(name=f"camera {device}", status=WARN,
                       detail=f"not a V4L2 device ({exc.strerror})", fix="check the driver")
    finally:
        os.close(fd)


def query_camera(device: str, ioctl: Callable[..., bytes] = fcntl.ioctl) -> Finding:
    """Ask *device* for its V4L2 capabilities, proving it is a camera we may open."""
    raw = _querycap(device, ioctl)
    if isinstance(raw, Finding):
        return raw
    driver, card = (struct.unpack_from(f"{n}s", raw, off)[0].split(b"\0")[0].decode()
                    for n, off in ((16, 0), (32, 16)))
    return Finding(name=f"camera {device}", status=OK, detail=f"{card} ({driver})")


def is_capture(device: str, ioctl: Callable[..., bytes] = fcntl.ioctl) -> bool:
    """Whether *device* answers QUERYCAP with the capture capability (leases count it).

    UVC metadata nodes and loopback output nodes answer too, but cannot capture.
    """
    raw = _querycap(device, ioctl)
    if isinstance(raw, Finding):
        return False
    capabilities, device_caps = struct.unpack_from("<II", raw, 84)
    # device_caps describes this node alone, when the driver fills it in.
    caps = device_caps if capabilities & V4L2_CAP_DEVICE_CAPS else capabilities
    return bool(caps & V4L2_CAP_VIDEO_CAPTURE)
