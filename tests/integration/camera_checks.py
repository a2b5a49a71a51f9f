"""Reusable end-to-end checks against a running camera-service + MediaMTX stack.

Each check takes what a fixture can provide: the WebSocket URL
(``ws://127.0.0.1:<port>/ws``), the health base URL (``http://127.0.0.1:<port>``),
``token_fn(role) -> str`` that mints a JWT with the stack's secret, and docker SDK
``Container`` objects where the check has to act inside a container (add or remove a
synthetic camera, restart MediaMTX).  They raise ``AssertionError`` with the evidence
on failure and return what they observed, so tests can assert more on top.

They are written against the reference service in ``images/camera-service`` (see its
README for the synthetic-camera marker scheme) but use only the public contract,
except ``add_synthetic``/``remove_synthetic`` which use the marker directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from envkit.camera.rpc import RpcClient, connect_rpc

TokenFn = Callable[[str], str]
SYNTHETIC_DIR = "/run/camera-service/synthetic"


class ContainerLike(Protocol):
    """The subset of ``docker.models.containers.Container`` the checks use."""

    name: str

    def exec_run(self, cmd: Any, **kwargs: Any) -> Any: ...

    def restart(self, **kwargs: Any) -> None: ...


@contextmanager
def rpc_session(ws_url: str, token_fn: TokenFn, role: str = "admin") -> Iterator[RpcClient]:
    """An authenticated connection (role bound via ``authenticate``)."""
    with connect_rpc(ws_url) as client:
        result = client.result("authenticate", {"auth_token": token_fn(role)})
        assert result["authenticated"] is True and result["role"] == role, result
        yield client


def http_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    """GET ``url`` and return (status, parsed body); HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``probe`` until it returns a truthy value; its exceptions count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except Exception as exc:  # the thing under test is allowed to be down meanwhile
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


# -- checks ------------------------------------------------------------------


def check_ready(health_url: str, timeout: float = 60.0) -> dict[str, Any]:
    """/health/ready answers 200 {"status": "ready"} (503 with details before)."""

    def probe() -> Any:
        status, body = http_json(f"{health_url}/health/ready")
        assert status in (200, 503), (status, body)
        return body if status == 200 else None

    body = wait_until("/health/ready", probe, timeout)
    assert body == {"status": "ready"}, body
    return dict(body)


def check_auth(ws_url: str, token_fn: TokenFn) -> None:
    """Unauthenticated, invalid and under-privileged calls get -32001 / -32003."""
    with connect_rpc(ws_url) as client:
        assert client.call("ping")["error"]["code"] == -32001
        bad = client.call("authenticate", {"auth_token": "not-a-jwt"})
        assert bad["error"]["code"] == -32001, bad
        viewer = token_fn("viewer")
        assert client.call("ping", {"auth_token": viewer})["result"] == "pong"
        denied = client.call("take_snapshot", {"device": "/dev/video0", "auth_token": viewer})
        assert denied["error"]["code"] == -32003, denied
        result = client.result("authenticate", {"auth_token": token_fn("operator")})
        assert set(result) >= {"authenticated", "role", "permissions", "expires_at", "session_id"}
        assert client.result("ping") == "pong"
        assert client.call("no_such_method")["error"]["code"] == -32601


def check_camera_list(ws_url: str, token_fn: TokenFn, min_connected: int = 1) -> list[Any]:
    """get_camera_list has the contract's shape and enough CONNECTED cameras."""
    with rpc_session(ws_url, token_fn, "viewer") as client:
        listing = client.result("get_camera_list")
    cameras = listing["cameras"]
    assert listing["total"] == len(cameras), listing
    connected = [c for c in cameras if c["status"] == "CONNECTED"]
    assert listing["connected"] == len(connected) >= min_connected, listing
    for cam in cameras:
        assert set(cam) >= {"device", "status", "name", "resolution", "fps", "streams"}, cam
        assert set(cam["streams"]) >= {"rtsp", "hls", "webrtc"}, cam
    return list(cameras)


def add_synthetic(container: ContainerLike, index: int, spec: str = "") -> None:
    """Create synthetic camera /dev/video<index> inside the camera-service container."""
    marker = f"{SYNTHETIC_DIR}/video{index}"
    code, out = container.exec_run(["sh", "-c", f"printf '%s' '{spec}' > {marker}"])
    assert code == 0, out


def remove_synthetic(container: ContainerLike, index: int) -> None:
    """Remove synthetic camera /dev/video<index>."""
    code, out = container.exec_run(["rm", "-f", f"{SYNTHETIC_DIR}/video{index}"])
    assert code == 0, out


def check_hotplug_notifications(
    ws_url: str, token_fn: TokenFn, container: ContainerLike, index: int = 10
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Adding then removing a synthetic camera yields CONNECTED then DISCONNECTED."""
    device = f"/dev/video{index}"

    def about(status: str) -> Callable[[dict[str, Any]], bool]:
        return lambda m: (
            m.get("method") == "camera_status_update"
            and m["params"]["device"] == device
            and m["params"]["status"] == status
        )

    with rpc_session(ws_url, token_fn, "viewer") as client:
        add_synthetic(container, index)
        try:
            appeared = client.wait_notification(about("CONNECTED"), timeout=10)
            assert appeared["params"]["streams"]["rtsp"].endswith(f"/camera{index}"), appeared
            listed = client.result("get_camera_list")["cameras"]
            assert any(c["device"] == device for c in listed), listed
        finally:
            remove_synthetic(container, index)
        gone = client.wait_notification(about("DISCONNECTED"), timeout=10)
        listed = client.result("get_camera_list")["cameras"]
        assert all(c["device"] != device for c in listed), listed
    return appeared, gone


def check_snapshot(
    ws_url: str, token_fn: TokenFn, device: str = "/dev/video0",
    container: ContainerLike | None = None,
) -> dict[str, Any]:  # fmt: skip
    """take_snapshot returns a non-empty JPEG (checked in the container if given)."""
    with rpc_session(ws_url, token_fn, "operator") as client:
        # The publisher may still be connecting right after start-up: retry briefly.
        def attempt() -> Any:
            response = client.call("take_snapshot", {"device": device}, timeout=40)
            return response.get("result")

        result = wait_until(f"a snapshot of {device}", attempt, timeout=60)
    assert result["device"] == device and result["status"] == "completed", result
    assert result["size"] > 0 and result["filename"].endswith(".jpg"), result
    if container is not None and "path" in result:
        code, out = container.exec_run(["head", "-c", "2", result["path"]])
        assert code == 0 and out == b"\xff\xd8", (code, out)  # JPEG SOI marker
    return dict(result)


def check_recording(
    ws_url: str, token_fn: TokenFn, device: str = "/dev/video0", seconds: float = 3.0
) -> dict[str, Any]:
    """start_recording then stop_recording gives a non-empty file."""
    with rpc_session(ws_url, token_fn, "operator") as client:
        started = client.result("start_recording", {"device": device})
        assert started["status"] == "recording" and started["filename"], started
        time.sleep(seconds)
        stopped = client.result("stop_recording", {"device": device})
    assert stopped["filename"] == started["filename"], (started, stopped)
    assert stopped.get("size", 1) > 0, stopped
    return dict(stopped)


def check_rtsp_video(rtsp_url: str, timeout: float = 30.0) -> dict[str, Any]:
    """The host's ffprobe sees a video stream at ``rtsp_url`` (MediaMTX, published)."""
    ffprobe = shutil.which("ffprobe")
    assert ffprobe, "ffprobe is not installed on the host"
    argv = [
        ffprobe, "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
        "-show_entries", "stream=codec_type,codec_name,width,height", "-of", "json", rtsp_url,
    ]  # fmt: skip

    def probe() -> Any:
        out = subprocess.run(argv, capture_output=True, timeout=20, check=False)
        streams = json.loads(out.stdout or b"{}").get("streams") or []
        return streams[0] if streams and streams[0].get("codec_type") == "video" else None

    return dict(wait_until(f"video at {rtsp_url}", probe, timeout))


def check_mediamtx_restart(
    health_url: str, mediamtx: ContainerLike, paths: tuple[str, ...] = ("camera0",),
    timeout: float = 60.0,
) -> dict[str, Any]:  # fmt: skip
    """Restarting MediaMTX drops its paths; the service notices and re-creates them.

    Host ports published as ephemeral may change on restart: re-read them from the
    container afterwards before probing RTSP again.
    """
    before = http_json(f"{health_url}/health/mediamtx")[1]["details"]
    mediamtx.restart(timeout=5)

    def recovered() -> Any:
        body = http_json(f"{health_url}/health/mediamtx")[1]
        details = body["details"]
        noticed = (
            details["restarts_detected"] > before["restarts_detected"]
            or details["outages"] > before["outages"]
            or (details.get("started") or "") != (before.get("started") or "")
        )
        ok = body["status"] == "healthy" and set(paths) <= set(details["configured_paths"])
        return body if ok and noticed else None

    body = wait_until("MediaMTX recovery in /health/mediamtx", recovered, timeout)
    return dict(body)


def check_error_device(
    ws_url: str, token_fn: TokenFn, device: str = "/dev/video0",
    reason: str = "VIDIOC_QUERYCAP failed",
) -> dict[str, Any]:  # fmt: skip
    """A non-V4L2 node mapped as ``device`` is listed with status ERROR and the reason."""
    with rpc_session(ws_url, token_fn, "viewer") as client:
        listed = {c["device"]: c for c in client.result("get_camera_list")["cameras"]}
        assert device in listed, listed
        assert listed[device]["status"] == "ERROR", listed[device]
        status = client.result("get_camera_status", {"device": device})
    assert status["status"] == "ERROR" and reason in (status.get("error") or ""), status
    return dict(status)


def check_error_notification(
    ws_url: str, token_fn: TokenFn, container: ContainerLike, index: int = 5
) -> dict[str, Any]:
    """A bogus node appearing at runtime is announced as ERROR, then DISCONNECTED.

    ``mknod /dev/videoN c 1 5`` creates a /dev/zero node inside the container
    (allowed by Docker's default device cgroup), which fails VIDIOC_QUERYCAP.
    """
    device = f"/dev/video{index}"
    with rpc_session(ws_url, token_fn, "viewer") as client:
        code, out = container.exec_run(["mknod", device, "c", "1", "5"])
        assert code == 0, out
        try:
            failed = client.wait_notification(lambda m: m["params"]["device"] == device)
        finally:
            container.exec_run(["rm", "-f", device])
        assert failed["params"]["status"] == "ERROR", failed
        assert "VIDIOC_QUERYCAP failed" in (failed["params"].get("error") or ""), failed
        gone = client.wait_notification(lambda m: m["params"]["device"] == device)
        assert gone["params"]["status"] == "DISCONNECTED", gone
    return failed
