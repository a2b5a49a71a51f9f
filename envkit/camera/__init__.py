"""envkit's camera kit, on top of envkit's generic core.

MediaMTX (upstream or stand-in), the reference camera service, the ``default`` stack,
JWTs for it, a JSON-RPC client, per-worker leases of host cameras (:class:`Grant`,
:class:`Lease`, :class:`CameraLeaseError`) and hot-plug (:func:`plug_camera`,
:func:`unplug_camera`).

It reaches the core only through public extension points (a :class:`envkit.Kit` under the
``envkit.kits`` entry point, and a pytest plugin of its own), the ones a team's kit uses.
Names are re-exported lazily, so importing the package imports no docker, websockets or jwt.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "KIT": "envkit.camera.kit",
    "RpcClient": "envkit.camera.rpc",
    "RpcError": "envkit.camera.rpc",
    "RpcTimeoutError": "envkit.camera.rpc",
    "connect_rpc": "envkit.camera.rpc",
    "mint_token": "envkit.camera.auth",
    "new_secret": "envkit.camera.auth",
    "Choice": "envkit.camera.mediamtx",
    "STANDIN": "envkit.camera.mediamtx",
    "UPSTREAM_IMAGE": "envkit.camera.mediamtx",
    "chosen": "envkit.camera.mediamtx",
    "mediamtx_service": "envkit.camera.mediamtx",
    "upstream": "envkit.camera.mediamtx",
    "camera_service": "envkit.camera.stack",
    "default_stack": "envkit.camera.stack",
    "health_url": "envkit.camera.stack",
    "hls_url": "envkit.camera.stack",
    "rtsp_url": "envkit.camera.stack",
    "token": "envkit.camera.stack",
    "ws_url": "envkit.camera.stack",
    "plug_camera": "envkit.camera.hotplug",
    "unplug_camera": "envkit.camera.hotplug",
    "V4L2_RULE": "envkit.camera.hotplug",
    "CameraLeaseError": "envkit.camera.leases",
    "Grant": "envkit.camera.leases",
    "Lease": "envkit.camera.leases",
}
_RENAMED = {"mediamtx_service": "service"}

__all__ = [
    "KIT",
    "STANDIN",
    "UPSTREAM_IMAGE",
    "V4L2_RULE",
    "CameraLeaseError",
    "Choice",
    "Grant",
    "Lease",
    "RpcClient",
    "RpcError",
    "RpcTimeoutError",
    "camera_service",
    "chosen",
    "connect_rpc",
    "default_stack",
    "health_url",
    "hls_url",
    "mediamtx_service",
    "mint_token",
    "new_secret",
    "plug_camera",
    "rtsp_url",
    "token",
    "unplug_camera",
    "upstream",
    "ws_url",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'envkit.camera' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), _RENAMED.get(name, name))


def __dir__() -> list[str]:
    return __all__
