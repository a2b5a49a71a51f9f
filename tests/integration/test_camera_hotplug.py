"""Hot-plug on the real engine: cameras appear in and vanish from a running default stack.

A synthetic camera goes all the way (notification, MediaMTX path added and removed). A
device node stands in for a V4L2 device (this machine has none): it is made with the
V4L2 major (81) and a minor no driver has, so the container gets it through a device cgroup rule and
mknod; the camera service sees it and reports it (as ERROR: no driver answers V4L2's
major 81 on this machine, so opening it gives ENXIO; without the rule it would be EPERM).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from envkit import camera
from envkit.camera.hotplug import plug_camera, unplug_camera
from envkit.camera.rpc import RpcClient, connect_rpc
from envkit.errors import EnvkitError
from envkit.runtime import Stack
from envkit.session import Envkit


@pytest.fixture(scope="module")
def stack(envkit_session: Envkit) -> Iterator[Stack]:
    spec = camera.default_stack(camera.chosen(envkit_session).image, devices=(),
                                hotplug=True)
    with envkit_session.stack(spec) as running:
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[RpcClient]:
    with connect_rpc(camera.ws_url(stack), camera.token(stack, "viewer")) as rpc:
        yield rpc


def _paths(stack: Stack) -> dict[str, Any]:
    url = stack.url("mediamtx", 9997, path="/v3/paths/list")
    with urllib.request.urlopen(url, timeout=5) as reply:
        return {p["name"]: p for p in json.load(reply)["items"]}


def _config_paths(stack: Stack) -> list[str]:
    url = stack.url("mediamtx", 9997, path="/v3/config/paths/list")
    with urllib.request.urlopen(url, timeout=5) as reply:
        return [p["name"] for p in json.load(reply)["items"]]


def _until(what: str, check: Callable[[], bool], timeout: float = 15.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def _status(device: str, status: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda m: (m.get("method") == "camera_status_update"
                      and m["params"]["device"] == device
                      and (status is None or m["params"]["status"] == status))


def test_synthetic_plug_adds_then_removes_the_mediamtx_path(stack: Stack,
                                                            client: RpcClient) -> None:
    start = time.monotonic()
    device = plug_camera(stack)
    path = "camera" + device.removeprefix("/dev/video")
    assert device != "/dev/video0"  # the stack's own synthetic camera keeps its index
    client.wait_notification(_status(device, "CONNECTED"), timeout=10)
    _until(f"{path} ready in MediaMTX", lambda: _paths(stack).get(path, {}).get("ready", False))
    ready_after = time.monotonic() - start
    print(f"plug -> {path} ready in MediaMTX: {ready_after:.2f} s")
    unplug_camera(stack, "camera-service", device)
    client.wait_notification(_status(device, "DISCONNECTED"), timeout=10)
    # The path's configuration goes; the stand-in, like MediaMTX, may list the name a
    # while longer under all_others, no longer ready.
    gone_after = _until(f"{path} gone from MediaMTX", lambda: path not in _config_paths(stack)
                        and not _paths(stack).get(path, {}).get("ready", False))
    print(f"unplug -> {path} gone: {gone_after:.2f} s")
    assert "camera0" in _paths(stack)


def test_device_node_plugs_in_and_out_through_its_cgroup_rule(
    stack: Stack, client: RpcClient, tmp_path: Path
) -> None:
    node = tmp_path / "video7"
    os.mknod(node, 0o600 | 0o020000, os.makedev(81, 250))
    device = plug_camera(stack, "camera-service", str(node))
    assert device == "/dev/video7"
    seen = client.wait_notification(_status(device), timeout=10)
    listed = client.result("get_camera_list")["cameras"]
    assert [c["device"] for c in listed if c["device"] == device] == [device], listed
    unplug_camera(stack, "camera-service", device)
    client.wait_notification(lambda m: _status(device)(m) and m is not seen, timeout=10)
    _until(f"{device} gone from the list", lambda: all(
        c["device"] != device for c in client.result("get_camera_list")["cameras"]))
    assert stack.exec("camera-service", ["ls", "/dev/video7"]).exit_code != 0


def test_a_node_outside_the_rule_is_refused_with_the_fix(stack: Stack, tmp_path: Path) -> None:
    node = tmp_path / "video8"
    os.mknod(node, 0o600 | 0o020000, os.makedev(4, 64))  # a serial port: no rule allows it
    with pytest.raises(EnvkitError, match=r"device_cgroup_rules=\['c 4:\* rmw'\]"):
        plug_camera(stack, "camera-service", str(node))
