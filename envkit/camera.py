"""The default stack: MediaMTX plus a camera service, and the URLs tests need from it."""

from __future__ import annotations

import glob

from envkit import mediamtx
from envkit.auth import JWT_SECRET_ENV, new_secret
from envkit.readiness import Http
from envkit.runtime import Stack
from envkit.spec import Build, ServiceSpec, StackSpec

SERVICE = "camera-service"
IMAGE = Build(name="camera-service")
WS_PORT, HEALTH_PORT = 8002, 8003


def host_cameras() -> tuple[str, ...]:
    """The V4L2 nodes of this host, passed into the camera service."""
    return tuple(sorted(glob.glob("/dev/video*")))


def camera_service(
    *, secret: str, devices: tuple[str, ...] = (), synthetic: str | None = None,
    image: str | Build = IMAGE,
) -> ServiceSpec:
    """The camera service, finding MediaMTX by its alias on the stack's network.

    :param synthetic: synthetic cameras (count or indexes, see the image's README);
        by default one where *devices* is empty.
    """
    if synthetic is None:
        synthetic = "" if devices else "1"
    if synthetic and devices:
        # Synthetic indexes count from 0; keep them clear of the real nodes.
        synthetic = ",".join(str(90 + i) for i in range(int(synthetic)))
    return ServiceSpec(
        name=SERVICE, image=image, ports=[WS_PORT, HEALTH_PORT], devices=list(devices),
        environment={
            JWT_SECRET_ENV: secret,
            "CAMERA_SERVICE_MEDIAMTX_HOST": "mediamtx",
            "CAMERA_SERVICE_CAMERAS_SYNTHETIC": synthetic,
            "CAMERA_SERVICE_CAMERAS_POLL_INTERVAL": "0.5",
        },
        ready=[Http(HEALTH_PORT, "/health/ready")], depends_on=["mediamtx"],
    )


def default_stack(
    mediamtx_image: Build = mediamtx.STANDIN, *, devices: tuple[str, ...] | None = None,
    synthetic: str | None = None,
) -> StackSpec:
    """MediaMTX and the camera service with a fresh JWT secret and the host's cameras."""
    cams = host_cameras() if devices is None else devices
    return StackSpec(name="default", services=[
        mediamtx.service(mediamtx_image),
        camera_service(secret=new_secret(), devices=cams, synthetic=synthetic),
    ])


def ws_url(stack: Stack) -> str:
    """The camera service's JSON-RPC WebSocket, ``ws://127.0.0.1:<port>/ws``."""
    return stack.url(SERVICE, WS_PORT, scheme="ws", path="/ws")


def health_url(stack: Stack, path: str = "/health/ready") -> str:
    """A URL on the camera service's health server."""
    return stack.url(SERVICE, HEALTH_PORT, path=path)


def rtsp_url(stack: Stack, path: str = "camera0") -> str:
    """A MediaMTX RTSP URL reachable from the host."""
    return stack.url("mediamtx", 8554, scheme="rtsp", path=path)


def hls_url(stack: Stack, path: str = "camera0") -> str:
    """A MediaMTX HLS URL reachable from the host (upstream image only)."""
    return stack.url("mediamtx", 8888, path=f"/{path}/index.m3u8")
