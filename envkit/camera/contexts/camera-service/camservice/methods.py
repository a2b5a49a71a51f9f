"""The JSON-RPC methods of the contract, registered with their minimum roles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .auth import AuthError
from .cameras import CONNECTED, Camera
from .media import MediaError, take_snapshot
from .mediamtx import MediaMTXError
from .rpc import AUTH_REQUIRED, INTERNAL_ERROR, INVALID_PARAMS, CallContext, RpcError

if TYPE_CHECKING:
    from .service import Service


def _device_param(params: dict[str, Any]) -> str:
    device = params.get("device")
    if not isinstance(device, str) or not device:
        raise RpcError(INVALID_PARAMS, "Invalid params: device (e.g. /dev/video0) is required")
    return device


def _known(service: Service, params: dict[str, Any]) -> Camera:
    device = _device_param(params)
    cam = service.cameras.get(device)
    if cam is None:
        raise RpcError(INVALID_PARAMS, f"Camera not found: {device}", {"device": device})
    return cam


def _usable(service: Service, params: dict[str, Any]) -> Camera:
    cam = _known(service, params)
    if cam.status != CONNECTED:
        raise RpcError(
            INVALID_PARAMS,
            f"Camera {cam.device} is {cam.status}" + (f": {cam.error}" if cam.error else ""),
            {"device": cam.device, "status": cam.status, "error": cam.error},
        )
    return cam


def _stream_entry(item: dict[str, Any]) -> dict[str, Any]:
    """One ``get_streams`` entry; takes either spelling of fields MediaMTX has renamed."""
    source = item.get("source")
    ready = item.get("ready", item.get("available", False))
    return {
        "name": item.get("name"),
        "source": source.get("type") if isinstance(source, dict) else source,
        "ready": bool(ready),
        "readers": len(item.get("readers") or []),
        "bytes_sent": int(item.get("bytesSent", item.get("outboundBytes", 0)) or 0),
    }


class _Methods:
    """The handlers, bound to one service so each stays a small, separately readable method."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.cfg = service.cfg

    async def authenticate(self, ctx: CallContext, params: dict[str, Any]) -> Any:
        """Bind a session to the connection; later calls need no token."""
        try:
            session = self.service.auth.validate(params.get("auth_token"))
        except AuthError as exc:
            raise RpcError(AUTH_REQUIRED, f"Authentication failed: {exc}") from None
        ctx.connection.session = session
        return session.describe()

    async def ping(self, ctx: CallContext, params: dict[str, Any]) -> Any:
        """Liveness check for clients."""
        return "pong"

    async def get_camera_list(self, ctx: CallContext, params: dict[str, Any]) -> Any:
        """Every known camera, ordered by index."""
        ordered = sorted(self.service.cameras.cameras.values(), key=lambda c: c.index)
        cams = [c.to_dict(self.cfg) for c in ordered]
        return {
            "cameras": cams,
            "total": len(cams),
            "connected": sum(1 for c in cams if c["status"] == CONNECTED),
        }

    async def get_camera_status(self, ctx: CallContext, params: dict[str, Any]) -> Any:
        """One camera with capabilities and publisher state."""
        return self.service.cameras.status_of(_known(self.service, params))

    async def get_streams(self, ctx: CallContext, params: dict[str, Any]) -> Any:
        """MediaMTX's runtime paths, asked afresh so the answer is never stale."""
        try:
            paths = await self.service.mediamtx.list_paths()
        except MediaMTXError as exc:
            raise RpcError(INTERNAL_ERROR, "MediaMTX unavailable", {"reason": str(exc)}) from None
        return [_stream_entry(item) for item in paths]

    async def snapshot(self, ctx: CallContext, params: dict[str, Any]) -> Any:
        """One JPEG frame of a connected camera."""
        cam = _usable(self.service, params)
        try:
            return await take_snapshot(self.cfg, cam.path, cam.device, params.get("filename"))
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, f"Invalid params: {exc}") from None
        except MediaError as exc:
            raise RpcError(INTERNAL_ERROR, str(exc), {"device": cam.device}) from None

    async def start_recording(self, ctx: CallContext, params: dict[str, Any]) -> Any:
        """Start recording a connected camera (optionally for ``duration`` seconds)."""
        cam = _usable(self.service, params)
        try:
            return await self.service.recorder.start(cam.path, cam.device, params.get("duration"))
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, f"Invalid params: {exc}") from None
        except MediaError as exc:
            raise RpcError(INVALID_PARAMS, str(exc), {"device": cam.device}) from None

    async def stop_recording(self, ctx: CallContext, params: dict[str, Any]) -> Any:
        """Stop a recording; works for a camera that has gone away meanwhile."""
        device = _device_param(params)
        cam = self.service.cameras.get(device)
        key = cam.device if cam is not None else device
        try:
            return await self.service.recorder.stop(key)
        except MediaError as exc:
            raise RpcError(INVALID_PARAMS, str(exc), {"device": key}) from None


def register(service: Service) -> None:
    """Attach every method to the service's dispatcher, each with its minimum role."""
    rpc = service.dispatcher
    m = _Methods(service)
    rpc.register("authenticate", m.authenticate, None)
    rpc.register("ping", m.ping, "viewer")
    rpc.register("get_camera_list", m.get_camera_list, "viewer")
    rpc.register("get_camera_status", m.get_camera_status, "viewer")
    rpc.register("get_streams", m.get_streams, "viewer")
    rpc.register("take_snapshot", m.snapshot, "operator")
    rpc.register("start_recording", m.start_recording, "operator")
    rpc.register("stop_recording", m.stop_recording, "operator")
