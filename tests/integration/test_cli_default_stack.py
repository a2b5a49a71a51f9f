"""The default stack driven from a shell: `envkit up --json`, `envkit-camera token`, `down`.

Only public tools on the host side: the console script, a plain WebSocket client and
the real ffprobe.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

ENVKIT = str(Path(sys.executable).with_name("envkit"))
ENVKIT_CAMERA = str(Path(sys.executable).with_name("envkit-camera"))


def _run(*args: str, tool: str = ENVKIT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=300,
                          check=False, env={**os.environ, "ENVKIT_SESSION": "clitest"})


def _rpc(ws, request_id: int, method: str, params: dict | None = None) -> dict:  # type: ignore[no-untyped-def, type-arg]
    ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                        **({"params": params} if params else {})}))
    while True:
        reply = json.loads(ws.recv(timeout=15))
        if reply.get("id") == request_id:
            return dict(reply)


def test_up_token_plain_client_ffprobe_down() -> None:
    up = _run("up", "--json", "--detach")
    assert up.returncode == 0, up.stderr
    doc = json.loads(up.stdout)  # exactly one JSON document on stdout
    stack = doc["stack"]
    try:
        assert set(doc["services"]) == {"mediamtx", "camera-service"}
        ports = {name: svc["ports"] for name, svc in doc["services"].items()}
        assert all(v.startswith("127.0.0.1:") for p in ports.values() for v in p.values())
        token = _run("token", stack, "--role", "viewer", tool=ENVKIT_CAMERA)
        assert token.returncode == 0, token.stderr
        jwt = token.stdout.strip().splitlines()[-1]
        ws_addr = ports["camera-service"]["8002/tcp"]
        with connect(f"ws://{ws_addr}/ws", open_timeout=10) as ws:
            auth = _rpc(ws, 1, "authenticate", {"auth_token": jwt})
            assert auth["result"]["role"] == "viewer", auth
            cams = _rpc(ws, 2, "get_camera_list")["result"]["cameras"]
        assert cams and cams[0]["status"] == "CONNECTED", cams
        path = cams[0]["streams"]["rtsp"].rsplit("/", 1)[-1]
        rtsp = f"rtsp://{ports['mediamtx']['8554/tcp']}/{path}"
        ffprobe = shutil.which("ffprobe")
        assert ffprobe, "ffprobe missing: make install provides it"
        deadline = time.monotonic() + 30
        while True:
            probe = subprocess.run(
                [ffprobe, "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
                 "stream=codec_type", "-of", "json", rtsp],
                capture_output=True, text=True, timeout=20, check=False)
            streams = json.loads(probe.stdout or "{}").get("streams", [])
            if streams or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert {"codec_type": "video"} in streams, probe.stderr
    finally:
        down = _run("down", stack)
    assert down.returncode == 0, down.stderr
    gone = _run("token", stack, tool=ENVKIT_CAMERA)
    assert gone.returncode == 1 and "fix:" in gone.stderr
    assert _run("token", stack).returncode == 2  # the core has no token command


def test_attached_up_holds_the_stack_until_ctrl_c() -> None:
    proc = subprocess.Popen([ENVKIT, "up", "--stack", "demo", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "ENVKIT_SESSION": "cliattached"})
    try:
        assert proc.stdout is not None
        doc = json.loads(proc.stdout.readline())
        web = doc["services"]["web"]["ports"]["8080/tcp"]
        with urllib.request.urlopen(f"http://{web}/health", timeout=5) as response:
            assert response.status == 200
        time.sleep(0.5)
        assert proc.poll() is None, "up without --detach must keep running"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert "removed" in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _run("down", doc["stack"]).returncode == 1  # already gone
