"""The MediaMTX stand-in behaves like MediaMTX v1.20 for real clients, in real stacks.

Publishing and reading use the host's FFmpeg/ffprobe (and FFmpeg inside a second
container of the stack); every Control API answer is validated against the upstream
OpenAPI document (see ``mediamtx_checks``).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping

import mediamtx_checks as mc
import pytest

from envkit import Build, Http, LogLine, ServiceSpec, StackSpec
from envkit.camera.mediamtx import STANDIN, chosen
from envkit.session import Envkit

READY = [LogLine(r"\[RTSP\] .*listener.* :8554"), Http(9997, "/v3/info")]
PATTERN = ("ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc=size=320x240:rate=15 "
           "-c:v libx264 -preset ultrafast -tune zerolatency -g 15 "
           "-f rtsp rtsp://localhost:$RTSP_PORT/$MTX_PATH")


_CHOSEN: list[Build] = []


@pytest.fixture(autouse=True, scope="module")
def _mediamtx_flavour(envkit_session: Envkit) -> None:
    """Run against the image the run chose (ENVKIT_MEDIAMTX: upstream where it can be had)."""
    _CHOSEN[:] = [chosen(envkit_session).image]


def mediamtx(env: Mapping[str, str] | None = None) -> ServiceSpec:
    """The stand-in service, as a stack would declare it."""
    return ServiceSpec(name="mediamtx", image=_CHOSEN[0],
                       ports=[8554, 9997], environment=dict(env or {}), ready=READY)


def publisher(path: str = "cam") -> ServiceSpec:
    """FFmpeg in another container of the stack, publishing by the service alias."""
    return ServiceSpec(
        name="publisher", image=STANDIN, depends_on=["mediamtx"],
        command=["ffmpeg", "-nostdin", *mc.publish_args(f"rtsp://mediamtx:8554/{path}")[1:]],
    )


def _rtsp(stack, path: str) -> str:  # type: ignore[no-untyped-def]
    host, port = stack.endpoint("mediamtx", 8554)
    return f"rtsp://{host}:{port}/{path}"




def test_api_answers_follow_the_openapi_document(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(StackSpec(name="mtxapi", services=[mediamtx()]))
    base = stack.url("mediamtx", 9997)
    checked = mc.check_api_contract(base)
    assert len(checked) > 15
    info = mc.checked(base, "GET", "/v3/info").json()
    if _CHOSEN[0] == STANDIN:
        assert info["version"].endswith("-envkit-standin")
    logs = mc.logs(stack)
    assert re.search(r"(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d INF \[RTSP\] started with "
                     r"listeners on :8554 \(TCP/RTSP\)$", logs), logs
    assert re.search(r"(?m)^\S+ \S+ INF \[API\] started with listener on :9997 "
                     r"\(TCP/HTTP\)$", logs), logs


def test_publisher_container_many_host_readers(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(StackSpec(name="mtxrelay",
                                           services=[mediamtx(), publisher("cam")]))
    base = stack.url("mediamtx", 9997)
    item = mc.wait_path_ready(base, "cam")
    assert item["source"]["type"] == "rtspSession" and item["tracks"] == ["H264"]
    url = _rtsp(stack, "cam")
    assert mc.probe(url) == {"codec_name": "h264", "width": 320, "height": 240}
    # One long-lived reader, so the API shows it while we look.
    watcher = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "quiet", "-i", url,
                                "-f", "null", "-"])
    try:
        results = mc.read_concurrently(url, readers=4, frames=10)
        assert [r.returncode for r in results] == [0] * 4, [r.stderr[-300:] for r in results]
        listed = mc.checked(base, "GET", "/v3/paths/list").json()
        cam = next(i for i in listed["items"] if i["name"] == "cam")
        assert cam["ready"] and len(cam["readers"]) >= 1
        assert cam["bytesReceived"] > 0 and cam["bytesSent"] > 0
        sessions = mc.checked(base, "GET", "/v3/rtspsessions/list").json()["items"]
        assert {"publish", "read"} <= {s["state"] for s in sessions}
    finally:
        watcher.terminate()
        watcher.wait(10)
    mc.wait_log(stack, r"\[path cam\] stream is available and online, 1 track \(H264\)")
    mc.wait_log(stack, r"\[RTSP\] \[session [0-9a-f]{8}\] is reading from path 'cam', with TCP")


def test_transports_missing_paths_and_publisher_override(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(StackSpec(name="mtxrtsp",
                                           services=[mediamtx(), publisher("cam")]))
    base = stack.url("mediamtx", 9997)
    mc.wait_path_ready(base, "cam")
    url = _rtsp(stack, "cam")
    # Default transport: FFmpeg asks UDP, gets 461, falls back to TCP by itself.
    default = mc.read_frames(url)
    assert default.returncode == 0, default.stderr
    assert mc.read_frames(url, transport="tcp").returncode == 0
    udp = mc.read_frames(url, frames=1, timeout=20, transport="udp")
    assert udp.returncode != 0 and "461" in udp.stderr
    missing = mc.read_frames(_rtsp(stack, "nobody"), frames=1, timeout=20)
    assert missing.returncode != 0 and "404" in missing.stderr
    # overridePublisher defaults to yes (v1.20): a second publisher replaces the first.
    second = subprocess.Popen(mc.publish_args(url, fps=10, size="160x120", duration=30),
                              stdin=subprocess.DEVNULL)
    try:
        mc.wait_log(stack, r"\[path cam\] closing existing publisher")
        deadline = time.monotonic() + 20
        while mc.probe(url)["width"] != 160:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    finally:
        second.terminate()
        second.wait(10)


def test_run_on_init_and_run_on_demand(envkit_stack_factory) -> None:
    env = {
        "MTX_PATHS_INIT_RUNONINIT": PATTERN,
        "MTX_PATHS_INIT_RUNONINITRESTART": "yes",
        "MTX_PATHS_DEMAND_RUNONDEMAND": PATTERN,
        "MTX_PATHS_DEMAND_RUNONDEMANDCLOSEAFTER": "2s",
    }
    stack = envkit_stack_factory(StackSpec(name="mtxhooks", services=[mediamtx(env)]))
    base = stack.url("mediamtx", 9997)
    mc.wait_path_ready(base, "init")
    assert mc.read_frames(_rtsp(stack, "init")).returncode == 0
    demand = mc.checked(base, "GET", "/v3/paths/get/demand").json()
    assert demand["ready"] is False
    result = mc.read_frames(_rtsp(stack, "demand"))
    assert result.returncode == 0, result.stderr
    mc.wait_log(stack, r"\[path demand\] runOnDemand command started")
    mc.wait_log(stack, r"\[path demand\] runOnDemand command stopped: not needed by anyone")
    conf = mc.checked(base, "GET", "/v3/config/paths/get/demand").json()
    assert conf["runOnDemandCloseAfter"] == "2s"
