"""Which MediaMTX a stack runs: the upstream image where it can be had, else the stand-in.

An explicit choice (``ENVKIT_MEDIAMTX`` or ``--envkit-mediamtx``: ``upstream``,
``standin``, or an upstream image reference) always wins. Otherwise the upstream image is
used if the engine has it or can pull it within a few seconds, and the locally built
stand-in (``images/mediamtx-standin``) everywhere else, such as on registry-less hosts.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import docker
import docker.errors

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
    """The upstream image with the stack's ``mediamtx.yml`` laid over it."""
    return Build(name="mediamtx", args={"MEDIAMTX_IMAGE": image})


def choose(
    client: docker.DockerClient, setting: str | None, *, pull_timeout: float = 5.0
) -> Choice:
    """Decide the MediaMTX image, consulting the engine only when nothing was chosen."""
    if setting == "standin":
        return Choice(STANDIN, "chosen by setting")
    if setting:
        image = UPSTREAM_IMAGE if setting == "upstream" else setting
        return Choice(upstream(image), "chosen by setting")
    if _present_or_pulled(client, UPSTREAM_IMAGE, pull_timeout):
        return Choice(upstream(), f"{UPSTREAM_IMAGE} available")
    return Choice(STANDIN, f"{UPSTREAM_IMAGE} not available (no registry?)")


def _present_or_pulled(client: docker.DockerClient, image: str, timeout: float) -> bool:
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.DockerException:
        return False
    outcome: list[bool] = []

    def pull() -> None:
        try:
            client.images.pull(image)
            outcome.append(True)
        except docker.errors.DockerException:
            outcome.append(False)

    # A pull that hangs on a slow registry must not hold up the run: give up waiting.
    worker = threading.Thread(target=pull, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(outcome and outcome[0])


def service(
    image: Build, *, environment: Mapping[str, str] | None = None,
    devices: tuple[str, ...] = (), name: str = "mediamtx",
) -> ServiceSpec:
    """MediaMTX as a stack service: RTSP 8554, API 9997, HLS 8888, WebRTC 8889."""
    return ServiceSpec(
        name=name, image=image, ports=list(PORTS), environment=dict(environment or {}),
        devices=list(devices), ready=list(READY), ready_timeout=60.0,
    )
