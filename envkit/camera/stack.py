"""The camera service block, the ``default`` stack, and what tests need from them.

The default stack is MediaMTX plus a camera service; tests need its URLs and tokens. It
is defined once, by the compose file the kit ships (:data:`COMPOSE_FILE`): the plugin, the
CLI and a plain ``docker-compose -f`` all run that file, envkit through its compose loader
with the run's MediaMTX choice, a fresh secret and the host's cameras as overrides.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envkit.camera import mediamtx
from envkit.camera.auth import JWT_SECRET_ENV, mint_token, new_secret
from envkit.errors import EnvkitError, SpecError
from envkit.spec import Build, ServiceSpec, StackSpec

if TYPE_CHECKING:
    from envkit.kits import KitContext
    from envkit.runtime import Stack

SERVICE = "camera-service"
#: The default stack, as docker-compose also runs it (package data).
COMPOSE_FILE = Path(__file__).resolve().parent / "compose" / "docker-compose.yml"
IMAGE = Build(name="camera-service", context=mediamtx.CONTEXTS / "camera-service",
              namespace=mediamtx.NAMESPACE, packages=mediamtx.PACKAGES)
WS_PORT, HEALTH_PORT = 8002, 8003


def host_cameras() -> tuple[str, ...]:
    """The V4L2 nodes of this host, passed into the camera service."""
    return tuple(sorted(glob.glob("/dev/video*")))


def _synthetic(devices: tuple[str, ...], synthetic: str | None) -> str:
    """Synthetic cameras: one where *devices* is empty, none otherwise, unless given."""
    if synthetic is None:
        synthetic = "" if devices else "1"
    if synthetic and devices:
        # Synthetic indexes count from 0; keep them clear of the real nodes.
        synthetic = ",".join(str(90 + i) for i in range(int(synthetic)))
    return synthetic


#: plug_camera makes device nodes with mknod in an exec as root, and Docker gives an exec
#: capabilities only when the container's own user is root (a non-root container keeps
#: them in the bounding set alone). So a hot-plug camera service runs as root with MKNOD
#: (from its rule) and DAC_OVERRIDE (its tmpfs directories belong to uid 10001), and
#: nothing else; without hot-plug it stays uid 10001 with no capability.
HOTPLUG_USER = "0:video"
HOTPLUG_CAPS = ("DAC_OVERRIDE",)


def _packaged(overrides: Mapping[str, Mapping[str, Any]]) -> StackSpec:
    """The packaged compose file with *overrides*; the shell's variables are not read."""
    from envkit.compose import load_compose

    return load_compose(COMPOSE_FILE, overrides=overrides, environ={})


def camera_service(
    *, secret: str, devices: tuple[str, ...] = (), synthetic: str | None = None,
    image: str | Build = IMAGE, mediamtx_host: str = "mediamtx", name: str = SERVICE,
) -> ServiceSpec:
    """The camera service of the packaged compose file, finding MediaMTX by its alias.

    :param synthetic: synthetic cameras (count or indexes, see the image's README);
        by default one where *devices* is empty.
    """
    env = {JWT_SECRET_ENV: secret, "CAMERA_SERVICE_MEDIAMTX_HOST": mediamtx_host,
           "CAMERA_SERVICE_CAMERAS_SYNTHETIC": _synthetic(devices, synthetic)}
    svc = _packaged({SERVICE: {"environment": env}}).service(SERVICE)
    return replace(svc, name=name, image=image, devices=list(devices),
                   depends_on={mediamtx_host: svc.condition("mediamtx")})


_BLOCK_OPTIONS = ("name", "mediamtx", "synthetic", "secret", "cameras", "hotplug")


def _block_error(field: str, value: object, problem: str, fix: str) -> SpecError:
    return SpecError(stack=None, service=None, field=f"with.{field}", value=value,
                     problem=problem, fix=fix)


def _count(value: object) -> int:
    """``with.cameras``: a whole number, 0 or more (a digit string from ``${VAR}`` too)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise _block_error("cameras", value, "not a number of cameras (a whole number, 0 or more)",
                       "write e.g. cameras: 1 (host cameras leased to the worker), or 0")


def _flag(value: object) -> bool:
    """``with.hotplug``: true or false (``"true"``/``"false"`` from ``${VAR}`` too)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _block_error("hotplug", value, "not true or false",
                       "write hotplug: true to let plug_camera add real V4L2 devices")


def _leased(ctx: KitContext, name: str, count: int) -> tuple[tuple[str, ...], str | None]:
    """Devices to map and the synthetic setting for a block asking for *count* cameras."""
    if count == 0:
        return (), None
    from envkit.camera.leases import container_mapping, stack_grant

    grant = stack_grant(ctx, name, count)
    synthetic = str(grant.synthetic) if grant.synthetic else "0"
    return tuple(container_mapping(d) for d in grant.devices), synthetic


def block(ctx: KitContext, options: Mapping[str, Any]) -> ServiceSpec:
    """The ``camera-service`` block of stack files.

    Options: name, mediamtx, synthetic, secret, cameras, hotplug; by default a fresh
    secret and one synthetic camera, no host devices. ``cameras: N`` leases N host
    cameras to the worker (as ``--envkit-cameras`` does for the default stack, under
    the run's camera policy) and maps them alone; ``hotplug: true`` gives the service
    the V4L2 device cgroup rule :func:`~envkit.camera.hotplug.plug_camera` needs.

    :raises SpecError: for an option the block does not take, or a bad value.
    :raises CameraLeaseError: when the cameras cannot be leased and the policy says so.
    """
    unknown = sorted(set(options) - set(_BLOCK_OPTIONS))
    if unknown:
        raise _block_error(unknown[0], options[unknown[0]],
                           "not an option of block 'camera-service'",
                           f"the camera-service block takes: {', '.join(_BLOCK_OPTIONS)}")
    name = str(options.get("name", SERVICE))
    hotplug = _flag(options.get("hotplug", False))
    devices, synthetic = _leased(ctx, name, _count(options.get("cameras", 0)))
    if options.get("synthetic") is not None:
        synthetic = str(options["synthetic"])
    svc = camera_service(
        secret=str(options.get("secret") or new_secret()), devices=devices,
        synthetic=synthetic, mediamtx_host=str(options.get("mediamtx", "mediamtx")),
        name=name,
    )
    if not hotplug:
        return svc
    from envkit.camera.hotplug import V4L2_RULE

    return replace(svc, device_cgroup_rules=[*svc.device_cgroup_rules, V4L2_RULE],
                   user=HOTPLUG_USER, cap_add=[*svc.cap_add, *HOTPLUG_CAPS])


def default_stack(
    mediamtx_image: Build = mediamtx.STANDIN, *, devices: tuple[str, ...] | None = None,
    synthetic: str | None = None, hotplug: bool | Sequence[str] = False,
) -> StackSpec:
    """The packaged compose file with this MediaMTX, a fresh JWT secret and the cameras.

    :param devices: host nodes to map; ``None`` maps every ``/dev/video*`` (outside
        pytest; the plugin passes the worker's leased devices instead).
    :param hotplug: let :func:`~envkit.camera.hotplug.plug_camera` add real V4L2
        devices while the stack runs (``True``: the rule ``c 81:* rmw``), or the device
        cgroup rules to give the camera service.
    """
    from envkit.camera.hotplug import V4L2_RULE

    cams = host_cameras() if devices is None else devices
    rules = ([V4L2_RULE] if hotplug is True else [] if hotplug is False else list(hotplug))
    service: dict[str, Any] = {
        "devices": list(cams), "device_cgroup_rules": rules, "environment": {
            JWT_SECRET_ENV: new_secret(),
            "CAMERA_SERVICE_CAMERAS_SYNTHETIC": _synthetic(cams, synthetic)}}
    if rules:
        service.update(user=HOTPLUG_USER, cap_add=list(HOTPLUG_CAPS))
    return _packaged({"mediamtx": {"image": mediamtx_image}, SERVICE: service})


def default_for(ctx: KitContext) -> StackSpec:
    """The ``default`` stack with the run's MediaMTX choice and the worker's leased cameras.

    Under pytest the worker leases ``--envkit-cameras`` devices once (see
    :mod:`envkit.camera.leases`) and its default stack maps those alone.
    """
    from envkit.camera.leases import container_mapping, worker_grant

    grant = worker_grant(ctx)
    if grant is None:
        return default_stack(mediamtx.chosen(ctx).image)
    synthetic = str(grant.synthetic) if grant.synthetic else "0" if grant.devices else None
    return default_stack(mediamtx.chosen(ctx).image, synthetic=synthetic,
                         devices=tuple(container_mapping(d) for d in grant.devices))


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
