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


def register(service: Service) -> None:
    """Attach every method to the service's dispatcher."""
    rpc = service.dispatcher
    cfg = service.cfg

    async def authenticate(ctx: CallContext, params: dict[str, Any]) -> Any:
        try:
            session = service.auth.validate(params.get("auth_token"))
        except AuthError as exc:
            raise RpcError(AUTH_REQUIRED, f"Authentication failed: {exc}") from None
        ctx.connection.session = session
        return session.describe()

    async def ping(ctx: CallContext, params: dict[str, Any]) -> Any:
        return "pong"

    async def get_camera_list(ctx: CallContext, params: dict[str, Any]) -> Any:
        ordered = sorted(service.cameras.cameras.values(), key=lambda c: c.index)
        cams = [c.to_dict(cfg) for c in ordered]
        return {
            "cameras": cams,
            "total": len(cams),
            "connected": sum(1 for c in cams if c["status"] == CONNECTED),
        }

    async def get_camera_status(ctx: CallContext, params: dict[str, Any]) -> Any:
        return service.cameras.status_of(_known(service, params))

    async def get_streams(ctx: CallContext, params: dict[str, Any]) -> Any:
        try:
            paths = await service.mediamtx.list_paths()
        except MediaMTXError as exc:
            raise RpcError(INTERNAL_ERROR, "MediaMTX unavailable", {"reason": str(exc)}) from None
        streams = []
        for item in paths:
            source = item.get("source")
            ready = item.get("ready", item.get("available", False))
            streams.append({
                "name": item.get("name"),
                "source": source.get("type") if isinstance(source, dict) else source,
                "ready": bool(ready),
                "readers": len(item.get("readers") or []),
                "bytes_sent": int(item.get("bytesSent", item.get("outboundBytes", 0)) or 0),
            })  # fmt: skip
        return streams

    async def snapshot(ctx: CallContext, params: dict[str, Any]) -> Any:
        cam = _usable(service, params)
        try:
            return await take_snapshot(cfg, cam.path, cam.device, params.get("filename"))
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, f"Invalid params: {exc}") from None
        except MediaError as exc:
            raise RpcError(INTERNAL_ERROR, str(exc), {"device": cam.device}) from None

    async def start_recording(ctx: CallContext, params: dict[str, Any]) -> Any:
        cam = _usable(service, params)
        try:
            return await service.recorder.start(cam.path, cam.device, params.get("duration"))
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, f"Invalid params: {exc}") from None
        except MediaError as exc:
            raise RpcError(INVALID_PARAMS, str(exc), {"device": cam.device}) from None

    async def stop_recording(ctx: CallContext, params: dict[str, Any]) -> Any:
        device = _device_param(params)
        cam = service.cameras.get(device)
        key = cam.device if cam is not None else device
        try:
            return await service.recorder.stop(key)
        except MediaError as exc:
            raise RpcError(INVALID_PARAMS, str(exc), {"device": key}) from None

    rpc.register("authenticate", authenticate, None)
    rpc.register("ping", ping, "viewer")
    rpc.register("get_camera_list", get_camera_list, "viewer")
    rpc.register("get_camera_status", get_camera_status, "viewer")
    rpc.register("get_streams", get_streams, "viewer")
    rpc.register("take_snapshot", snapshot, "operator")
    rpc.register("start_recording", start_recording, "operator")
    rpc.register("stop_recording", stop_recording, "operator")
