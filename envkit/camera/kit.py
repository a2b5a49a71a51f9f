"""The camera kit as envkit sees it: one :class:`~envkit.kits.Kit`, found by entry point.

It is registered exactly as a team's kit would be (``[project.entry-points."envkit.kits"]``
``camera = "envkit.camera.kit:KIT"``), and its factories import their modules on call, so
loading the kit imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from envkit.kits import Finding, Kit, KitContext

if TYPE_CHECKING:
    from envkit.spec import ServiceSpec, StackSpec


def _default(ctx: KitContext) -> StackSpec:
    from envkit.camera.stack import default_for

    return default_for(ctx)


def _mediamtx(ctx: KitContext, options: Mapping[str, Any]) -> ServiceSpec:
    from envkit.camera import mediamtx

    return mediamtx.block(ctx, options)


def _camera_service(ctx: KitContext, options: Mapping[str, Any]) -> ServiceSpec:
    from envkit.camera import stack

    return stack.block(ctx, options)


def _cameras(ctx: KitContext) -> Iterable[Finding]:
    from envkit.camera.devices import camera_findings

    return camera_findings()


KIT = Kit(
    name="camera",
    stacks={"default": _default},
    blocks={"mediamtx": _mediamtx, "camera-service": _camera_service},
    doctor=(_cameras,),
    imports=("envkit.camera.stack", "envkit.camera.mediamtx", "envkit.camera.leases",
             "envkit.camera.hotplug"),
)
