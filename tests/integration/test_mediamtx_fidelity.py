"""What MediaMTX v1.20.1 does, stated as upstream's behaviour (issue 9's measured table).

Every assertion here is upstream's answer, measured side by side with a real v1.20.1;
none accepts what only the stand-in sends. The suite runs against whichever MediaMTX the
run chose (``ENVKIT_MEDIAMTX``), so the CI job with the real image runs it unchanged.
Rows the stand-in does not close yet are marked xfail on the stand-in only.
"""

from __future__ import annotations

import concurrent.futures
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

import mediamtx_checks as mc
import pytest

from envkit import Build, Http, LogLine, ServiceSpec, StackSpec
from envkit.camera.mediamtx import STANDIN, chosen
from envkit.session import Envkit

READY = [LogLine(r"\[RTSP\] .*listener.* :8554"), Http(9997, "/v3/info")]
_CHOSEN: list[Build] = []


@pytest.fixture(autouse=True, scope="module")
def _mediamtx_flavour(envkit_session: Envkit) -> None:
    _CHOSEN[:] = [chosen(envkit_session).image]


def mediamtx(env: Mapping[str, str] | None = None, *, moq: bool = False) -> ServiceSpec:
    ports = [8554, 9997, 8888, 8889] + ([8892] if moq else [])
    return ServiceSpec(name="mediamtx", image=_CHOSEN[0], ports=ports,
                       environment=dict(env or {}), ready=READY)


def publisher(path: str = "cam", transport: str = "tcp") -> ServiceSpec:
    args = mc.publish_args(f"rtsp://mediamtx:8554/{path}")[1:]
    return ServiceSpec(
        name="publisher", image=STANDIN, depends_on=["mediamtx"],
        command=["ffmpeg", "-nostdin", *args[:-1], "-rtsp_transport", transport, args[-1]])




def _raw(url: str, method: str = "GET", headers: Mapping[str, str] | None = None,
         data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers=dict(headers or {}), data=data)
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _error(base: str, method: str, path: str, body: object, status: int) -> str:
    answer = mc.checked(base, method, path, body, expect=status)
    return str(answer.json()["error"])


def test_invalid_values_fields_texts_and_rendering(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(StackSpec(name="mtxfidconf", services=[mediamtx()]))
    base = stack.url("mediamtx", 9997)
    # invalid values
    bogus = {"source": "bogus://x"}
    assert _error(base, "POST", "/v3/config/paths/add/f1", bogus, 400) == \
        "invalid source: 'bogus://x'"
    mc.checked(base, "POST", "/v3/config/paths/add/f1", {})
    assert _error(base, "PATCH", "/v3/config/paths/patch/f1", bogus, 400) == \
        "invalid source: 'bogus://x'"
    assert _error(base, "PATCH", "/v3/config/global/patch", {"logLevel": "nosuch"}, 400) == \
        "invalid log level: 'nosuch'"
    assert _error(base, "PATCH", "/v3/config/pathdefaults/patch", {"recordPath": "./x"},
                  400) == "'recordPath' must contain %path"
    # texts
    assert _error(base, "POST", "/v3/config/paths/add/bad%20name", {}, 400) == (
        "invalid path name 'bad name': can contain only alphanumeric characters, "
        "underscore, dot, minus, slash")
    assert "(or path 'all_others')" in _error(
        base, "POST", "/v3/config/paths/add/~^re$", {"runOnInit": "true"}, 400)
    # fields of v1.20.1
    defaults = mc.checked(base, "GET", "/v3/config/pathdefaults/get").json()
    assert {"moqTransport", "rtspScale", "rtspUDPSourcePortRange", "rpiCameraCamID"} <= \
        set(defaults)
    new_fields = {"rtspScale": "1.0", "moqTransport": defaults["moqTransport"],
                  "rpiCameraWidth": 640}
    mc.checked(base, "PATCH", "/v3/config/paths/patch/f1", new_fields)
    glob = mc.checked(base, "GET", "/v3/config/global/get").json()
    assert {k for k in glob if k.startswith("moq")} >= {"moq", "moqAllowOrigins"}
    mc.checked(base, "PATCH", "/v3/config/global/patch", {"moqAllowOrigins": ["*"]})
    # rendering: Go durations, nanosecond timestamps, compact JSON, authHTTPExclude
    assert defaults["recordSegmentDuration"] == "1h0m0s"
    assert glob["hlsMuxerCloseAfter"] == "1m0s"
    assert glob["authHTTPExclude"] == []
    raw = mc.api_call(base, "GET", "/v3/info").body.decode()
    assert ", " not in raw and '": ' not in raw, raw
    started = mc.checked(base, "GET", "/v3/info").json()["started"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)",
                        started), started


def test_runtime_lists_uuid_and_deleted_path_conf(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(StackSpec(name="mtxfidlist", services=[mediamtx()]))
    base = stack.url("mediamtx", 9997)
    for path in ("/v3/hlsmuxers/list", "/v3/webrtcsessions/list", "/v3/recordings/list"):
        listed = mc.checked(base, "GET", path).json()
        assert listed["items"] == [] and listed["itemCount"] == 0
    assert _error(base, "GET", "/v3/hlsmuxers/get/X", None, 404) == "muxer not found"
    assert _error(base, "GET", "/v3/rtspsessions/get/notauuid", None, 400) == \
        "invalid UUID length: 8"
    # A path's configuration deleted after add, patch, replace: all_others takes it over.
    mc.checked(base, "POST", "/v3/config/paths/add/gone", {})
    mc.checked(base, "PATCH", "/v3/config/paths/patch/gone", {"maxReaders": 3})
    mc.checked(base, "POST", "/v3/config/paths/replace/gone", {"source": "publisher"})
    mc.checked(base, "DELETE", "/v3/config/paths/delete/gone")
    item = mc.checked(base, "GET", "/v3/paths/get/gone").json()
    assert item["confName"] == "all_others"


def test_forward_and_recording_routes(envkit_stack_factory) -> None:
    """Routes of v1.20.1 that a path without forwarding or recording still answers."""
    stack = envkit_stack_factory(StackSpec(name="mtxfidroutes", services=[mediamtx()]))
    base = stack.url("mediamtx", 9997)
    mc.checked(base, "POST", "/v3/config/paths/add/fw", {})
    assert _error(base, "GET", "/v3/paths/forward/list", None, 400) == "invalid path"
    assert _error(base, "GET", "/v3/paths/forward/list?path=nosuch", None, 404) == \
        "path not found"
    listed = mc.checked(base, "GET", "/v3/paths/forward/list?path=fw").json()
    assert listed == {"itemCount": 0, "pageCount": 0, "items": []}
    assert _error(base, "GET", "/v3/paths/forward/get?path=fw", None, 400) == \
        "invalid UUID length: 0"
    some_id = "00000000-0000-0000-0000-000000000001"
    assert _error(base, "GET", f"/v3/paths/forward/get?path=fw&id={some_id}", None, 404) == \
        "forward destination not found"
    assert _error(base, "GET", "/v3/recordings/get/bad%20name", None, 400) == (
        "invalid path name: can contain only alphanumeric characters, underscore, dot, "
        "minus, slash (bad name)")
    assert mc.checked(base, "GET", "/v3/recordings/get/fw").json() == \
        {"name": "fw", "segments": []}
    delete = "/v3/recordings/deletesegment?path=fw&start="
    assert _error(base, "DELETE", delete, None, 400) == (
        "invalid 'start' parameter: parsing time \"\" as \"2006-01-02T15:04:05Z07:00\": "
        "cannot parse \"\" as \"2006\"")
    assert _error(base, "DELETE", delete + "2024-01-02T03:04:05Z", None, 400) == \
        "remove ./recordings/fw/2024-01-02_03-04-05-000000.mp4: no such file or directory"
    status, _, body = _raw(base + "/v3/recordings/deletesegment")  # GET: no such route
    assert (status, body) == (404, b"404 page not found")


def test_http_surface_and_start_lines(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(StackSpec(name="mtxfidhttp", services=[mediamtx(moq=True)]))
    base = stack.url("mediamtx", 9997)
    status, headers, _ = _raw(base + "/v3/paths/list")
    assert status == 200
    assert headers["Server"] == "mediamtx"
    assert headers["Access-Control-Allow-Origin"] == "*"
    status, headers, _ = _raw(base + "/v3/paths/list", "OPTIONS", {
        "Origin": "http://example.com", "Access-Control-Request-Method": "GET"})
    assert status == 204
    status, _, _ = _raw(base + "/v3/paths/list", "HEAD")
    assert status == 404
    # WebRTC's HTTP surface on 8889
    web = stack.url("mediamtx", 8889)
    assert _raw(web + "/cam/")[0] == 200
    status, headers, body = _raw(web + "/cam/whep")
    assert status == 405 and headers["Content-Type"].startswith("application/json"), body
    assert _raw(web + "/cam/whep", "OPTIONS", {
        "Origin": "http://example.com", "Access-Control-Request-Method": "POST"})[0] == 204
    logs = mc.logs(stack)
    version = mc.checked(base, "GET", "/v3/info").json()["version"]
    assert re.search(rf"INF MediaMTX {re.escape(version)}, linux, \w+\n"
                     r".*INF configuration loaded from /mediamtx\.yml\n", logs), logs
    assert re.search(r"INF \[RTSP\] started with listeners on :8554 \(TCP/RTSP\)\n", logs), logs
    assert re.search(r"INF \[API\] started with listener on :9997 \(TCP/HTTP\)\n", logs), logs
    assert re.search(r"INF \[HLS\] started with listener on :8888 \(TCP/HTTP\)\n", logs), logs
    assert re.search(r"INF \[WebRTC\] started with listeners on :8889 \(TCP/HTTP\), "
                     r":8189 \(UDP/ICE\)\n", logs), logs
    # MoQ is on by default in v1.20.1: its certificate is generated (auto.key is not in
    # the image), then it listens; the TCP listener takes connections.
    assert re.search(r"(?s)WAR \[MoQ\] certificate auto\.key not found, generating it from "
                     r"scratch\n.*INF \[MoQ\] started with listeners on :8892 \(TCP/HTTP2\), "
                     r":8892 \(UDP/HTTP3\), :8893 \(UDP/QUIC\)\n", logs), logs
    assert "not implemented" not in logs, logs
    with socket.create_connection(stack.endpoint("mediamtx", 8892), timeout=5):
        pass
    # Shutdown: one line per server, in upstream's order, then the hook pool's.
    stack.container("mediamtx").stop(timeout=10)
    logs = mc.logs(stack)
    assert re.search(r"(?s)INF shutting down gracefully\n.*INF \[API\] listener is closing\n"
                     r".*INF \[MoQ\] closing\n.*INF \[WebRTC\] listener is closing\n"
                     r".*INF \[HLS\] listener is closing\n.*INF \[RTSP\] listener is closing\n"
                     r".*INF waiting for running hooks\n", logs), logs


def test_codec_props_sessions_and_log_lines(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(StackSpec(name="mtxfidpub",
                                           services=[mediamtx(), publisher("cam0")]))
    base = stack.url("mediamtx", 9997)
    item = mc.wait_path_ready(base, "cam0")
    assert item["tracks2"] == [{"codec": "H264", "codecProps": {
        "width": 320, "height": 240, "profile": "High 4:4:4 Predictive", "level": "1.2"}}]
    mc.checked(base, "GET", "/v3/paths/get/cam0")
    time.sleep(2)  # let RTP packets arrive, so jitter has something to measure
    sessions = mc.checked(base, "GET", "/v3/rtspsessions/list").json()["items"]
    pub = next(s for s in sessions if s["state"] == "publish")
    assert re.fullmatch(r"Lavf\d+\.\d+\.\d+", pub["userAgent"]), pub["userAgent"]
    assert pub["inboundRTPPacketsJitter"] > 0
    host, port = stack.endpoint("mediamtx", 8554)
    assert mc.read_frames(f"rtsp://{host}:{port}/cam0", frames=3).returncode == 0
    missing = mc.read_frames(f"rtsp://{host}:{port}/nobody", frames=1, timeout=20)
    assert missing.returncode != 0
    mc.wait_log(stack, r"\[RTSP\] \[session [0-9a-f]{8}\] is publishing to path 'cam0'\n")
    mc.wait_log(stack, r"\[RTSP\] \[session [0-9a-f]{8}\] destroyed: torn down by "
                     r"\d+\.\d+\.\d+\.\d+:\d+")
    mc.wait_log(stack, r"\[RTSP\] \[conn [\d.]+:\d+\] closed: no stream is available on path "
                     r"'nobody'")


def test_global_patch_restarts_servers(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(StackSpec(name="mtxfidglob",
                                           services=[mediamtx(), publisher("cam")]))
    base = stack.url("mediamtx", 9997)
    mc.wait_path_ready(base, "cam")
    mc.checked(base, "PATCH", "/v3/config/global/patch", {"readTimeout": "11s"})
    mc.wait_log(stack, r"INF reloading configuration \(API request\)")
    mc.wait_log(stack, r"\[RTSP\] \[session [0-9a-f]{8}\] destroyed: terminated")
    assert mc.checked(base, "GET", "/v3/config/global/get").json()["readTimeout"] == "11s"
    mc.wait_log(stack, r"(?s)started with listeners on :8554.*reloading configuration.*"
                     r"started with listeners on :8554")


def test_hook_environment_has_the_query(envkit_stack_factory) -> None:
    hook = ("sh -c 'echo hook-query=[$MTX_QUERY]; exec ffmpeg -hide_banner -loglevel error "
            "-re -f lavfi -i testsrc=size=320x240:rate=15 -c:v libx264 -preset ultrafast "
            "-tune zerolatency -g 15 -f rtsp rtsp://localhost:$RTSP_PORT/$MTX_PATH'")
    env = {"MTX_PATHS_DEMAND_RUNONDEMAND": hook}
    stack = envkit_stack_factory(StackSpec(name="mtxfidhook", services=[mediamtx(env)]))
    host, port = stack.endpoint("mediamtx", 8554)
    result = mc.read_frames(f"rtsp://{host}:{port}/demand?x%3D1", frames=3)
    assert result.returncode == 0, result.stderr
    mc.wait_log(stack, r"hook-query=\[x%3D1\]")


@pytest.mark.skipif("not mc.ffmpeg_available()")
def test_hls_plays_a_ready_path(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(StackSpec(name="mtxfidhls",
                                           services=[mediamtx(), publisher("cam")]))
    api = stack.url("mediamtx", 9997)
    mc.wait_path_ready(api, "cam")
    url = stack.url("mediamtx", 8888) + "/cam/index.m3u8"
    # Upstream's first answer is a 302 that sets the cookieCheck cookie.
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(url, timeout=5)
    assert redirect.value.code == 302
    assert redirect.value.headers["Location"] == "/cam/index.m3u8?cookieCheck=1"
    assert "cookieCheck=1" in redirect.value.headers["Set-Cookie"]
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=codec_name,width,height", "-of", "csv=p=0", url],
                         capture_output=True, text=True, timeout=60, check=False)
    # ffprobe lists the stream once under the variant's program and once on its own.
    assert set(out.stdout.split()) == {"h264,320,240"}, out.stderr
    muxers = mc.checked(api, "GET", "/v3/hlsmuxers/list", None, expect=200).json()
    assert [m["path"] for m in muxers["items"]] == ["cam"]
    path = mc.checked(api, "GET", "/v3/paths/get/cam", None, expect=200).json()
    # The HLS reader is listed as a session (PathReaderType of v1.20.1 has no muxer type).
    assert [r["type"] for r in path["readers"]] == ["hlsSession"]


def test_hls_of_a_path_without_a_stream(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(StackSpec(name="mtxfidhls404", services=[mediamtx()]))
    base = stack.url("mediamtx", 8888)
    status, _, body = _raw(base + "/nostream/index.m3u8?cookieCheck=1")
    assert (status, body) == (404, b'{"status":"error","error":"no stream is available '
                                   b'on path \'nostream\'"}')
    with pytest.raises(urllib.error.HTTPError) as redirect:
        urllib.request.build_opener(_NoRedirect).open(base + "/nostream", timeout=5)
    assert (redirect.value.code, redirect.value.headers["Location"]) == (302, "/nostream/")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


UDP_ENV = {"MTX_RTSPTRANSPORTS": "udp,multicast,tcp"}


def _read_in_network(stack, transport: str) -> tuple[int, str, dict[str, object]]:  # type: ignore[no-untyped-def]
    """Read 30 frames from inside the stack's network; return (exit code, output, session).

    The reader is FFmpeg run in the publisher's container (on the stack's network, as a
    camera service would be); its session is caught from the API while it plays.
    """
    base = stack.url("mediamtx", 9997)
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-rtsp_transport",
           transport, "-i", "rtsp://mediamtx:8554/cam", "-frames:v", "30", "-f", "null", "-"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(stack.container("publisher").exec_run, cmd)
        session: dict[str, object] = {}
        deadline = time.monotonic() + 30
        while not session and time.monotonic() < deadline and not running.done():
            items = mc.checked(base, "GET", "/v3/rtspsessions/list").json()["items"]
            session = next((s for s in items if s["state"] == "read"), {})
            time.sleep(0.1)
        result = running.result(timeout=60)
    return result.exit_code, result.output.decode(errors="replace"), session


def test_rtsp_over_udp_publish_and_read_in_the_stack_network(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(StackSpec(name="mtxfidudp", services=[
        mediamtx(UDP_ENV), publisher("cam", transport="udp")]))
    base = stack.url("mediamtx", 9997)
    mc.wait_path_ready(base, "cam")
    mc.wait_log(stack, r"INF \[RTSP\] started with listeners on :8554 \(TCP/RTSP\), "
                     r":8000 \(UDP/RTP\), :8001 \(UDP/RTCP\)\n")
    time.sleep(1)
    items = mc.checked(base, "GET", "/v3/rtspsessions/list").json()["items"]
    pub = next(s for s in items if s["state"] == "publish")
    assert pub["transport"] == "UDP" and pub["inboundRTPPackets"] > 0, pub
    code, output, session = _read_in_network(stack, "udp")
    assert code == 0, output
    assert session.get("transport") == "UDP" and session.get("path") == "cam", session
    # Multicast: a reader in the same bridge network joins the path's group.
    code, output, session = _read_in_network(stack, "udp_multicast")
    assert code == 0, output
    assert session.get("transport") == "UDP-multicast", session
