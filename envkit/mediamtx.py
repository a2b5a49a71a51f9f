"""Which MediaMTX a stack runs: the upstream image where it can be had, else the stand-in.

An explicit choice (``ENVKIT_MEDIAMTX`` or ``--envkit-mediamtx``: ``upstream``,
``standin``, or an upstream image reference) always wins. Otherwise the upstream image is
used if the engine has it or can pull it within a few seconds, and the locally built
stand-in (``images/mediamtx-standin``) everywhere else, such as on registry-less hosts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import docker

from envkit.errors import EngineError
from envkit.images import find_image
from envkit.readiness import Http, LogLine
from envkit.spec import Build, ServiceSpec

UPSTREAM_IMAGE = "bluenviron/mediamtx:1.20.1-ffmpeg"
STANDIN = Build(name="mediamtx-standin")
PORTS = (8554, 9997, 8888, 8889)
READY = (LogLine(r"\[RTSP\] .*listener.* :8554"), Http(9997, "/v3/paths/list"))


@dataclass(frozen=True)
class Choice:
    """The MediaMTX image a run uses and why (shown in the pytest report header)."""

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
    return Build(name="mediamtx",
                 args={} if image == UPSTREAM_IMAGE else {"MEDIAMTX_IMAGE": image})


def choose(
    client: docker.DockerClient, setting: str | None, *, pull_timeout: float = 5.0
) -> Choice:
    """Decide the MediaMTX image, consulting the engine only when nothing was chosen."""
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


def setting_for(choice: Choice) -> str:
    """The ``mediamtx`` setting that makes :func:`choose` return *choice* without a pull.

    The controller hands it to xdist workers, so that every worker runs the same MediaMTX.
    """
    if choice.image == STANDIN:
        return "standin"
    return choice.image.args.get("MEDIAMTX_IMAGE", UPSTREAM_IMAGE)


def service(
    image: Build, *, environment: Mapping[str, str] | None = None,
    devices: tuple[str, ...] = (), name: str = "mediamtx",
) -> ServiceSpec:
    """MediaMTX as a stack service: RTSP 8554, API 9997, HLS 8888, WebRTC 8889."""
    return ServiceSpec(
        name=name, image=image, ports=list(PORTS), environment=dict(environment or {}),
        devices=list(devices), ready=list(READY), ready_timeout=60.0,
    )
