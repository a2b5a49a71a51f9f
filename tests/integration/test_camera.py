"""The default stack end to end: what the camera-streaming suites need, in parallel.

Runs against each worker's own default stack (MediaMTX + camera service), reached only
through Docker-assigned host ports, with the real ffprobe as the stream reader.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from functools import partial

import camera_checks as cc
import pytest
from websockets.sync.client import connect

from envkit import Stack, StackSpec, camera
from envkit.camera.auth import new_secret
from envkit.camera.rpc import RpcClient, connect_rpc
from envkit.camera.stack import HEALTH_PORT, SERVICE
from envkit.session import Envkit


def tokens(stack: Stack) -> Callable[[str], str]:
    """Mint tokens of *stack* by role (the camera kit's ``token``, bound to the stack)."""
    return partial(camera.token, stack)


def test_camera_list_through_published_websocket(envkit_rpc: RpcClient) -> None:
    listed = envkit_rpc.result("get_camera_list")
    assert listed["total"] >= 1 and listed["connected"] >= 1, listed
    cam = listed["cameras"][0]
    assert cam["status"] == "CONNECTED"
    assert cam["streams"]["rtsp"] == "rtsp://mediamtx:8554/camera0"
    assert envkit_rpc.result("ping") == "pong"


def test_plain_websocket_client_and_ffprobe(envkit_stack: Stack) -> None:
    """No project helper: raw WebSocket JSON-RPC, then ffprobe on the published RTSP port."""
    with connect(camera.ws_url(envkit_stack), open_timeout=10) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "authenticate",
                            "params": {"auth_token": camera.token(envkit_stack, "viewer")}}))
        assert json.loads(ws.recv(timeout=10))["result"]["role"] == "viewer"
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "get_camera_list"}))
        reply = json.loads(ws.recv(timeout=10))
        while "id" not in reply:
            reply = json.loads(ws.recv(timeout=10))
    assert reply["result"]["cameras"], reply
    info = cc.check_rtsp_video(camera.rtsp_url(envkit_stack, "camera0"))
    assert info["codec_type"] == "video"


def test_contract_error_codes(envkit_stack: Stack) -> None:
    cc.check_auth(camera.ws_url(envkit_stack), tokens(envkit_stack))
    with connect_rpc(camera.ws_url(envkit_stack), camera.token(envkit_stack, "viewer")) as viewer:
        assert viewer.call("take_snapshot", {"device": "/dev/video0"})["error"]["code"] == -32003
        assert viewer.call("no_such_method")["error"]["code"] == -32601
    with connect_rpc(camera.ws_url(envkit_stack)) as anonymous:
        assert anonymous.call("get_camera_list")["error"]["code"] == -32001


def test_camera_appears_and_goes_with_notifications_and_paths(envkit_stack: Stack) -> None:
    service = envkit_stack.container(SERVICE)
    api = envkit_stack.url("mediamtx", 9997, path="/v3/config/paths/get/camera17")
    cc.add_synthetic(service, 17)
    try:
        viewer = camera.token(envkit_stack, "viewer")
        with connect_rpc(camera.ws_url(envkit_stack), viewer) as client:
            client.wait_notification(lambda m: m["params"]["device"] == "/dev/video17"
                                     and m["params"]["status"] == "CONNECTED", timeout=15)
            cc.wait_until("path camera17 in MediaMTX", lambda: cc.http_json(api)[0] == 200, 15)
            cc.remove_synthetic(service, 17)
            gone = client.wait_notification(lambda m: m["params"]["device"] == "/dev/video17",
                                            timeout=15)
            assert gone["params"]["status"] == "DISCONNECTED"
            cc.wait_until("path camera17 deleted", lambda: cc.http_json(api)[0] == 404, 15)
    finally:
        cc.remove_synthetic(service, 17)


def test_snapshot_end_to_end(envkit_stack: Stack) -> None:
    result = cc.check_snapshot(camera.ws_url(envkit_stack), tokens(envkit_stack),
                               container=envkit_stack.container(SERVICE))
    assert result["size"] > 1000


def test_mediamtx_restart_recovers(envkit_stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = envkit_stack_factory("default")
    health = stack.url(SERVICE, HEALTH_PORT)
    before = cc.http_json(f"{health}/health/mediamtx")[1]["details"]
    stack.restart("mediamtx")

    def recovered() -> object:
        body = cc.http_json(f"{health}/health/mediamtx")[1]
        details = body["details"]
        noticed = (details["restarts_detected"], details["outages"]) != (
            before["restarts_detected"], before["outages"]) or details.get(
            "started") != before.get("started")
        back = "camera0" in details["configured_paths"] and body["status"] == "healthy"
        return noticed and back

    cc.wait_until("MediaMTX recovery", recovered, 60)
    assert cc.http_json(f"{health}/health/ready")[0] == 200
    cc.check_rtsp_video(camera.rtsp_url(stack, "camera0"))  # new host port, same stream


def test_mapped_non_v4l2_device_reports_querycap_error(
    envkit_stack_factory, envkit_session: Envkit,  # type: ignore[no-untyped-def]
) -> None:
    base = envkit_session.spec("default")
    spec = StackSpec(name="devmap", services=[
        base.service("mediamtx"),
        camera.camera_service(secret=new_secret(), devices=("/dev/zero:/dev/video0",),
                              synthetic="0"),
    ])
    stack = envkit_stack_factory(spec)
    status = cc.check_error_device(camera.ws_url(stack), tokens(stack))
    assert "Inappropriate ioctl" in status["error"]


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_tokens_of_one_stack_carry_their_role(envkit_stack: Stack, role: str) -> None:
    with connect_rpc(camera.ws_url(envkit_stack)) as client:
        got = client.result("authenticate", {"auth_token": camera.token(envkit_stack, role)})
    assert got["authenticated"] is True and got["role"] == role


def test_ffprobe_is_installed() -> None:
    """``make install`` provides ffprobe; a missing one must fail, never skip."""
    assert subprocess.run(["ffprobe", "-version"], capture_output=True, check=False).returncode == 0
