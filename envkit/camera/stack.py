"""The camera service block, the ``default`` stack, and what tests need from them.

The default stack is MediaMTX plus a camera service; tests need its URLs and tokens.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from envkit.camera import mediamtx
from envkit.camera.auth import JWT_SECRET_ENV, mint_token, new_secret
from envkit.errors import EnvkitError, SpecError
from envkit.readiness import Http
from envkit.spec import Build, ServiceSpec, StackSpec

if TYPE_CHECKING:
    from envkit.kits import KitContext
    from envkit.runtime import Stack

SERVICE = "camera-service"
IMAGE = Build(name="camera-service", context=mediamtx.CONTEXTS / "camera-service",
              namespace=mediamtx.NAMESPACE, packages=mediamtx.PACKAGES)
WS_PORT, HEALTH_PORT = 8002, 8003


def host_cameras() -> tuple[str, ...]:
    """The V4L2 nodes of this host, passed into the camera service."""
    return tuple(sorted(glob.glob("/dev/video*")))


def camera_service(
    *, secret: str, devices: tuple[str, ...] = (), synthetic: str | None = None,
    image: str | Build = IMAGE, mediamtx_host: str = "mediamtx", name: str = SERVICE,
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
        name=name, image=image, ports=[WS_PORT, HEALTH_PORT], devices=list(devices),
        environment={
            JWT_SECRET_ENV: secret,
            "CAMERA_SERVICE_MEDIAMTX_HOST": mediamtx_host,
            "CAMERA_SERVICE_CAMERAS_SYNTHETIC": synthetic,
            "CAMERA_SERVICE_CAMERAS_POLL_INTERVAL": "0.5",
        },
        ready=[Http(HEALTH_PORT, "/health/ready")], depends_on=[mediamtx_host],
    )


_BLOCK_OPTIONS = ("name", "mediamtx", "synthetic", "secret")


def block(ctx: KitContext, options: Mapping[str, Any]) -> ServiceSpec:
    """The ``camera-service`` block of stack files.

    Options: name, mediamtx, synthetic, secret; by default a fresh secret and one
    synthetic camera, no host devices.

    :raises SpecError: for an option the block does not take.
    """
    unknown = sorted(set(options) - set(_BLOCK_OPTIONS))
    if unknown:
        raise SpecError(stack=None, service=None, field=f"with.{unknown[0]}",
                        value=options[unknown[0]],
                        problem="not an option of block 'camera-service'",
                        fix=f"the camera-service block takes: {', '.join(_BLOCK_OPTIONS)}")
    return camera_service(
        secret=str(options.get("secret") or new_secret()),
        synthetic=None if options.get("synthetic") is None else str(options["synthetic"]),
        mediamtx_host=str(options.get("mediamtx", "mediamtx")),
        name=str(options.get("name", SERVICE)),
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


def default_for(ctx: KitContext) -> StackSpec:
    """The ``default`` stack with the run's MediaMTX choice (the kit's stack factory)."""
    return default_stack(mediamtx.chosen(ctx).image)


def token(stack: Stack, role: str = "viewer", *, ttl: float = 3600.0) -> str:
    """A JWT for *stack*'s camera service, signed with the secret the stack was given.

    :raises EnvkitError: when no service of the stack has a JWT secret.
    """
    for svc in stack.spec.services:
        secret = svc.environment.get(JWT_SECRET_ENV)
        if secret:
            return mint_token(secret, role, ttl=ttl)
    raise EnvkitError(
        f"stack {stack.id} has no service with {JWT_SECRET_ENV} in its environment",
        fix="mint tokens for stacks that run a camera service (the default stack)",
    )


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
