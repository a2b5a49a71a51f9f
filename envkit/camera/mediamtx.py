"""MediaMTX as a building block: the upstream image where it can be had, else the stand-in.

An explicit choice (``ENVKIT_MEDIAMTX`` or ``--envkit-mediamtx``: ``upstream``,
``standin``, or an upstream image reference) always wins. Otherwise the upstream image is
used if the engine has it or can pull it within a few seconds, and the locally built
stand-in (``contexts/mediamtx-standin``, shipped in the wheel) everywhere else, such as
on registry-less hosts. The choice is made once per run and process, when the first stack
that runs MediaMTX is made (:func:`chosen`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envkit.camera.settings import SETTING, SETTING_ENV
from envkit.errors import EngineError, SpecError
from envkit.readiness import Http, Tcp
from envkit.spec import Build, ServiceSpec

if TYPE_CHECKING:
    from envkit.kits import KitContext

UPSTREAM_IMAGE = "bluenviron/mediamtx:1.20.1-ffmpeg"
#: The build contexts the camera kit ships as package data.
CONTEXTS = Path(__file__).resolve().parent / "contexts"
#: Tags of the kit's images are shared by every project on the engine.
NAMESPACE = "camera-kit"
#: Debian packages of the kit's base: what the stand-in and the camera service import.
PACKAGES = ("ffmpeg", "python3-aiohttp", "python3-websockets", "python3-jwt", "python3-yaml")
STANDIN = Build(name="mediamtx-standin", context=CONTEXTS / "mediamtx-standin",
                namespace=NAMESPACE, packages=PACKAGES)
PORTS = (8554, 9997, 8888, 8889)
#: The API first (the stand-in opens its servers before it, so Tcp then passes at its
#: first probe), then Tcp proves RTSP itself listens on 8554 inside the container, read
#: from its own sockets with no engine request. A LogLine for the RTSP listener cost two
#: engine requests per probe instead (docker-py's logs() inspects the container first).
READY = (Http(9997, "/v3/paths/list"), Tcp(8554))


@dataclass(frozen=True)
class Choice:
    """The MediaMTX image a run uses and why (``reason``, for reports and ``doctor``)."""

    image: Build
    reason: str

    @property
    def flavour(self) -> str:
        """``upstream`` or ``standin``."""
        return "standin" if self.image == STANDIN else "upstream"


def upstream(image: str = UPSTREAM_IMAGE) -> Build:
    """The upstream image with the stack's ``mediamtx.yml`` laid over it.

    The pinned default is the Dockerfile's own ``ARG`` default and is not passed as a
    build arg, so the tag is the one ``envkit images`` computes for ``images/mediamtx``.
    """
    return Build(name="mediamtx", context=CONTEXTS / "mediamtx", namespace=NAMESPACE,
                 args={} if image == UPSTREAM_IMAGE else {"MEDIAMTX_IMAGE": image})


def choose(client: Any, setting: str | None, *, pull_timeout: float = 5.0) -> Choice:
    """Decide the MediaMTX image, consulting the engine only when nothing was chosen.

    :param client: a ``docker.DockerClient``.
    """
    from envkit.images import find_image

    if setting == "standin":
        return Choice(STANDIN, "chosen by setting")
    if setting:
        image = UPSTREAM_IMAGE if setting == "upstream" else setting
        return Choice(upstream(image), "chosen by setting")
    try:
        found = find_image(client.api, UPSTREAM_IMAGE, pull=True, pull_timeout=pull_timeout)
    except EngineError as exc:
        # The daemon's message ends with the cause ("no such host"); the URL before it
        # only makes the report header unreadable.
        cause = exc.cause.rstrip('")').rsplit(": ", 1)[-1]
        return Choice(STANDIN, f"{UPSTREAM_IMAGE} cannot be pulled: {cause}")
    if found is not None:
        return Choice(upstream(), f"{UPSTREAM_IMAGE} available")
    return Choice(STANDIN, f"{UPSTREAM_IMAGE} not pulled within {pull_timeout:g}s")


def chosen(ctx: KitContext) -> Choice:
    """The run's MediaMTX: ``--envkit-mediamtx``, else ``ENVKIT_MEDIAMTX``, else a probe.

    Decided on first use and remembered for the run, so every stack of a process runs the
    same MediaMTX, and a run whose stacks have none never probes the engine for it.
    """
    setting = ctx.settings.options.get(SETTING) or ctx.environ.get(SETTING_ENV) or None

    def decide() -> Choice:
        # A setting decides alone: no engine connection for it.
        return choose(None if setting else ctx.engine.client, setting)

    return ctx.memo("camera.mediamtx", decide)


def block(ctx: KitContext, options: Mapping[str, Any]) -> ServiceSpec:
    """The ``mediamtx`` block of stack files: ``use: mediamtx`` (options: ``name``).

    :raises SpecError: for an option the block does not take.
    """
    unknown = sorted(set(options) - {"name"})
    if unknown:
        raise SpecError(stack=None, service=None, field=f"with.{unknown[0]}",
                        value=options[unknown[0]], problem="not an option of block 'mediamtx'",
                        fix="the mediamtx block takes: name")
    return service(chosen(ctx).image, name=str(options.get("name", "mediamtx")))


def service(
    image: Build, *, environment: Mapping[str, str] | None = None,
    devices: tuple[str, ...] = (), name: str = "mediamtx",
) -> ServiceSpec:
    """MediaMTX as a stack service: RTSP 8554, API 9997, HLS 8888, WebRTC 8889."""
    return ServiceSpec(
        name=name, image=image, ports=list(PORTS), environment=dict(environment or {}),
        devices=list(devices), ready=list(READY), ready_timeout=60.0,
        # As the packaged compose file runs it: read-only, writing only to /tmp.
        read_only=True, tmpfs=["/tmp:size=64m"], pids_limit=256,
    )
