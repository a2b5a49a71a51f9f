"""Reusable checks of a MediaMTX (upstream or envkit stand-in) with real clients.

Why a helper module: the same checks run from ``test_mediamtx.py`` (inside an envkit
stack), from ``bench/bench_relay.py`` and by hand against a bare container. Every Control
API answer is validated against the upstream OpenAPI document with openapi-core, and
RTSP is exercised with the real FFmpeg/ffprobe binaries of the host, never a mock.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

HERE = Path(__file__).resolve().parent
SPEC_CANDIDATES = (
    HERE / "data" / "mediamtx-openapi-v1.20.1.yaml",
    HERE.parents[2] / "shared" / "reference" / "mediamtx-openapi-v1.20.1.yaml",
)
SPEC_HOST = "http://localhost:9997"  # the document's ``servers`` entry


def ffmpeg_available() -> bool:
    """Whether the host has the FFmpeg binaries these checks drive."""
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def publish_args(url: str, fps: int = 15, gop: int | None = None,
                 size: str = "320x240", duration: float | None = None) -> list[str]:
    """FFmpeg arguments publishing a synthetic H.264 test pattern over RTSP.

    ``gop`` defaults to one keyframe per second: a reader joining mid-stream cannot
    decode until the next keyframe (neither upstream nor the stand-in caches a GOP).
    """
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}"]
    if duration is not None:
        args += ["-t", str(duration)]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
             "-g", str(gop or fps), "-f", "rtsp", url]
    return args


# ---------------------------------------------------------------------------- HTTP
@dataclass
class Answer:
    """One HTTP answer of the Control API."""

    method: str
    path: str
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        """Decoded JSON body."""
        return json.loads(self.body)


def api_call(base: str, method: str, path: str, body: Any = None,
             timeout: float = 5.0) -> Answer:
    """Call the Control API with the stdlib (no third-party HTTP client needed)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return Answer(method, path, res.status, res.read(),
                          res.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as err:
        return Answer(method, path, err.code, err.read(), err.headers.get("Content-Type", ""))


def _nullable_refs(node: Any) -> Any:
    """Make ``nullable`` + ``allOf`` mean "null, or valid against allOf".

    Why: the document (OAS 3.0) writes nullable references as
    ``{type: object, allOf: [$ref], nullable: true}``; under OAS 3.0 rules ``nullable``
    does not reach inside ``allOf``, so upstream's own ``"source": null`` (Go nil
    pointer) would be rejected. This rewrite keeps the intended meaning and nothing else.
    """
    if isinstance(node, dict):
        node = {k: _nullable_refs(v) for k, v in node.items()}
        if "PathTrackCodecProps" in node and "oneOf" in node["PathTrackCodecProps"]:
            # The document's one correction: its codecProps members have no required
            # fields, so a real H264 object matches several of them and fails oneOf.
            props = dict(node["PathTrackCodecProps"])
            props["anyOf"] = props.pop("oneOf")
            node["PathTrackCodecProps"] = props
        if node.get("nullable") is True and "allOf" in node:
            return {"oneOf": [{"type": "object", "nullable": True, "enum": [None]},
                              {"allOf": node["allOf"]}]}
        return node
    if isinstance(node, list):
        return [_nullable_refs(v) for v in node]
    return node


@lru_cache(maxsize=1)
def _openapi() -> Any:
    for candidate in SPEC_CANDIDATES:
        if candidate.exists():
            spec = _nullable_refs(yaml.safe_load(candidate.read_text(encoding="utf-8")))
            return OpenAPI.from_dict(spec)
    raise FileNotFoundError("mediamtx-openapi-v1.20.1.yaml not found")


def validate(answer: Answer, request_body: Any = None) -> None:
    """Raise if ``answer`` does not match the OpenAPI document (status, schema)."""
    path, _, query = answer.path.partition("?")
    args = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
    data = json.dumps(request_body).encode() if request_body is not None else None
    request = MockRequest(SPEC_HOST, answer.method.lower(), path, args=args, data=data)
    response = MockResponse(answer.body, status_code=answer.status,
                            content_type=answer.content_type.split(";")[0])
    _openapi().validate_response(request, response)


def checked(base: str, method: str, path: str, body: Any = None,
            expect: int = 200) -> Answer:
    """Call, assert the status, validate against the document; return the answer."""
    answer = api_call(base, method, path, body)
    assert answer.status == expect, (method, path, answer.status, answer.body[:300])
    validate(answer, body)
    return answer


def wait_api(base: str, timeout: float = 20.0) -> None:
    """Wait until ``/v3/info`` answers 200 (upstream has no health endpoint)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if api_call(base, "GET", "/v3/info", timeout=1.0).status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base}/v3/info not answering")
        time.sleep(0.2)


def wait_path_ready(base: str, name: str, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until ``/v3/paths/get/NAME`` reports a ready (available) stream."""
    deadline = time.monotonic() + timeout
    while True:
        answer = api_call(base, "GET", f"/v3/paths/get/{name}")
        if answer.status == 200 and answer.json().get("ready"):
            return dict(answer.json())
        if time.monotonic() > deadline:
            raise TimeoutError(f"path {name} not ready: {answer.status} {answer.body[:200]!r}")
        time.sleep(0.2)


def check_api_contract(base: str) -> list[str]:
    """Exercise the documented operations; every answer is schema-validated.

    Returns the list of operations checked (for reporting).
    """
    done: list[str] = []

    def step(method: str, path: str, body: Any = None, expect: int = 200) -> Answer:
        done.append(f"{method} {path} -> {expect}")
        return checked(base, method, path, body, expect)

    info = step("GET", "/v3/info").json()
    assert info["version"]
    step("GET", "/v3/config/global/get")
    step("GET", "/v3/config/pathdefaults/get")
    name = f"apicheck{int(time.time() * 1000) % 100000}"
    assert step("POST", f"/v3/config/paths/add/{name}", {"source": "publisher"}).json() == {
        "status": "ok"}
    err = step("POST", f"/v3/config/paths/add/{name}", {}, expect=400).json()
    assert err == {"status": "error", "error": "path already exists"}, err
    got = step("GET", f"/v3/config/paths/get/{name}").json()
    assert got["name"] == name and got["source"] == "publisher"
    step("PATCH", f"/v3/config/paths/patch/{name}", {"maxReaders": 5})
    assert step("GET", f"/v3/config/paths/get/{name}").json()["maxReaders"] == 5
    step("POST", f"/v3/config/paths/replace/{name}", {"source": "publisher"})
    listed = step("GET", "/v3/config/paths/list?itemsPerPage=1&page=0").json()
    assert listed["itemCount"] >= 1 and len(listed["items"]) == 1
    assert listed["pageCount"] == listed["itemCount"]
    step("GET", "/v3/config/paths/list?itemsPerPage=0", expect=400)
    path_item = step("GET", f"/v3/paths/get/{name}").json()
    assert path_item["ready"] is False and path_item["source"] is None
    step("GET", "/v3/paths/list")
    step("GET", "/v3/rtspsessions/list")
    assert step("DELETE", f"/v3/config/paths/delete/{name}").json() == {"status": "ok"}
    nf = step("DELETE", f"/v3/config/paths/delete/{name}", expect=404).json()
    assert nf == {"status": "error", "error": "path not found"}, nf
    step("PATCH", f"/v3/config/paths/patch/{name}", {}, expect=404)
    step("GET", f"/v3/config/paths/get/{name}", expect=404)
    # Upstream v1.20.1 keeps the path, now under the stack's all_others configuration.
    assert step("GET", f"/v3/paths/get/{name}").json()["confName"] == "all_others"
    return done


# ---------------------------------------------------------------------------- RTSP
def probe(url: str, timeout: float = 20.0) -> dict[str, Any]:
    """``ffprobe`` the first video stream of an RTSP URL (default transport)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,width,height", "-of", "json", url],
        capture_output=True, text=True, timeout=timeout, check=True)
    streams = json.loads(out.stdout)["streams"]
    return dict(streams[0])


def read_frames(url: str, frames: int = 10, timeout: float = 30.0,
                transport: str | None = None) -> subprocess.CompletedProcess[str]:
    """Decode ``frames`` video frames with ``ffmpeg -i URL -frames:v N -f null -``."""
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error"]
    if transport:
        args += ["-rtsp_transport", transport]
    args += ["-i", url, "-frames:v", str(frames), "-f", "null", "-"]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def read_concurrently(url: str, readers: int, frames: int = 10,
                      timeout: float = 40.0) -> list[subprocess.CompletedProcess[str]]:
    """Run several ``read_frames`` at once (many readers on one path)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=readers) as pool:
        futures = [pool.submit(read_frames, url, frames, timeout) for _ in range(readers)]
        return [f.result() for f in futures]


def logs(stack: Any) -> str:
    """Everything the stack's MediaMTX container wrote so far."""
    return str(stack.container("mediamtx").logs().decode())


def wait_log(stack: Any, pattern: str, timeout: float = 20.0) -> str:
    """Poll MediaMTX's log until *pattern* appears; return the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = logs(stack)
        if re.search(pattern, text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"log line {pattern!r} not seen:\n{logs(stack)[-2000:]}")
