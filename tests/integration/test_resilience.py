"""The camera team's resilience scenario on the real engine, through public APIs only.

MediaMTX dies, the camera service reports degraded, MediaMTX returns, the paths come back;
a service cut off the network is reported by its dependent; a paused service times out a
client and answers once thawed. Each phase's duration is printed (``-s``); the numbers
in the README come from these runs.

The reference camera service (its README) reports a MediaMTX outage in one of two ways:
by default ``/health/system`` says ``degraded`` and ``/health/ready`` stays 200; with
``HEALTH_READY_REQUIRES_MEDIAMTX`` it cannot serve, so ``/health/ready`` answers 503 and
``/health/system`` says ``unhealthy``. The scenario runs against both.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from envkit import Stack, camera
from envkit.session import Envkit

#: What the camera service reports while MediaMTX is away: (/health/system, /health/ready).
OUTAGE = {False: ("degraded", 200), True: ("unhealthy", 503)}


def _status(url: str, timeout: float = 3.0) -> tuple[int | None, dict[str, Any]]:
    """HTTP status and JSON body, or ``(None, {})`` when nothing answers in time."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), dict(json.load(response))
    except urllib.error.HTTPError as exc:
        return int(exc.code), dict(json.loads(exc.read() or b"{}"))
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, {}


def _until(what: str, condition: Callable[[], bool], timeout: float = 30.0) -> float:
    """Poll *condition* until true; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not {what} after {timeout:g}s"
        time.sleep(0.1)
    took = time.monotonic() - started
    print(f"[resilience] {what}: {took:.2f}s")
    return took


def _system(stack: Stack) -> str:
    return str(_status(camera.health_url(stack, "/health/system"))[1].get("status"))


def _ready(stack: Stack) -> int | None:
    return _status(camera.health_url(stack, "/health/ready"))[0]


def _paths(stack: Stack) -> set[str]:
    code, body = _status(stack.url("mediamtx", 9997, path="/v3/config/paths/list"))
    return {item["name"] for item in body.get("items", [])} if code == 200 else set()


@pytest.fixture(params=[False, True], ids=["default", "ready-needs-mediamtx"])
def cameras(request: pytest.FixtureRequest, envkit_stack_factory,
            envkit_session: Envkit) -> tuple[Stack, tuple[str, int]]:
    """The default stack (optionally readiness tied to MediaMTX) and its outage report."""
    needs = bool(request.param)
    spec = envkit_session.spec("default")
    extra = {"CAMERA_SERVICE_HEALTH_READY_REQUIRES_MEDIAMTX": str(needs).lower()}
    services = [dataclasses.replace(s, environment={**s.environment, **extra})
                if s.name == "camera-service" else s for s in spec.services]
    stack: Stack = envkit_stack_factory(dataclasses.replace(spec, services=services))
    _until("camera0 path in MediaMTX", lambda: "camera0" in _paths(stack))
    _until("healthy at start", lambda: _system(stack) == "healthy")
    return stack, OUTAGE[needs]


def test_mediamtx_killed_degrades_and_recovers_with_paths(
    cameras: tuple[Stack, tuple[str, int]],
) -> None:
    stack, (system, ready) = cameras
    assert _ready(stack) == 200
    killed = time.monotonic()
    stack.kill("mediamtx")
    _until(f"kill -> /health/system {system}", lambda: _system(stack) == system)
    _until(f"kill -> /health/ready {ready}", lambda: _ready(stack) == ready)
    assert _status(camera.health_url(stack, "/health/mediamtx"))[1]["status"] == "unhealthy"
    print(f"[resilience] kill -> both reported: {time.monotonic() - killed:.2f}s")
    started = time.monotonic()
    stack.start("mediamtx")
    print(f"[resilience] start mediamtx -> ready: {time.monotonic() - started:.2f}s")
    _until("start -> /health/system healthy", lambda: _system(stack) == "healthy")
    _until("start -> /health/ready 200", lambda: _ready(stack) == 200)
    # MediaMTX lost its API-made paths with the restart: the camera service re-creates them.
    _until("start -> camera0 path restored", lambda: "camera0" in _paths(stack))
    print(f"[resilience] start -> all restored: {time.monotonic() - started:.2f}s")


def test_cut_off_mediamtx_is_reported_by_the_camera_service(
    cameras: tuple[Stack, tuple[str, int]],
) -> None:
    stack, (system, ready) = cameras
    stack.disconnect("mediamtx")
    _until(f"disconnect -> {system}", lambda: _system(stack) == system)
    _until(f"disconnect -> /health/ready {ready}", lambda: _ready(stack) == ready)
    stack.reconnect("mediamtx")
    _until("reconnect -> healthy", lambda: _system(stack) == "healthy")
    _until("reconnect -> camera0 path", lambda: "camera0" in _paths(stack))


def test_paused_mediamtx_times_out_a_client_and_answers_unpaused(
    cameras: tuple[Stack, tuple[str, int]],
) -> None:
    stack, (system, _) = cameras
    api = stack.url("mediamtx", 9997, path="/v3/paths/list")
    assert _status(api)[0] == 200
    stack.pause("mediamtx")
    started = time.monotonic()
    assert _status(api, timeout=2.0) == (None, {})  # frozen: no answer, no refusal
    assert time.monotonic() - started >= 1.9
    _until(f"pause -> {system}", lambda: _system(stack) == system)
    stack.unpause("mediamtx")
    _until("unpause -> API answers", lambda: _status(api)[0] == 200)
    _until("unpause -> healthy", lambda: _system(stack) == "healthy")


def test_outage_block_on_the_camera_service_dependency(
    cameras: tuple[Stack, tuple[str, int]],
) -> None:
    stack, (system, _) = cameras
    with stack.outage("mediamtx"):
        _until(f"outage -> {system}", lambda: _system(stack) == system)
    _until("after outage -> healthy", lambda: _system(stack) == "healthy")
    _until("after outage -> camera0 path", lambda: "camera0" in _paths(stack))
