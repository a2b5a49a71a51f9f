"""The camera kit's pytest plugin: its option and its fixture, through pytest's own hooks.

Installed beside envkit's core plugin (``pytest11`` entry point ``envkit-camera``), as a
team's kit plugin would be. Like the core, it costs nothing until a fixture is used: the
RPC client and its websockets import come with the first ``envkit_rpc``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from envkit.camera.leases import COUNT, DEFAULT_WAIT, POLICIES, POLICY, WAIT
from envkit.camera.settings import SETTING, SETTING_ENV
from envkit.plugin import kit_options

if TYPE_CHECKING:
    from envkit.camera.leases import Grant
    from envkit.camera.rpc import RpcClient
    from envkit.runtime import Stack
    from envkit.session import Envkit


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("envkit", "envkit: isolated container stacks per worker")
    group.addoption(
        "--envkit-mediamtx", metavar="upstream|standin|IMAGE", default=None,
        help=f"MediaMTX image of the camera kit's stacks and blocks (default: ${SETTING_ENV}, "
        "else the upstream image if it can be had, else the stand-in built locally)",
    )
    group.addoption(
        "--envkit-cameras", metavar="N", type=int, default=0,
        help="host cameras each worker's default stack leases (exclusive per worker; "
        "default 0: synthetic cameras only)",
    )
    group.addoption(
        "--envkit-camera-policy", choices=POLICIES, default="wait",
        help="when no camera is free: wait (up to --envkit-camera-wait), synthetic "
        "(stand in for the missing ones), skip the test, or fail it (default: wait)",
    )
    group.addoption(
        "--envkit-camera-wait", metavar="SECONDS", type=float, default=DEFAULT_WAIT,
        help=f"deadline of the wait policy (default: {DEFAULT_WAIT:g})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "envkit_cameras(n, real=True): lease n host cameras for the test "
        "(the envkit_cameras fixture); real=False asks for synthetic ones")
    chosen = config.getoption("envkit_mediamtx")
    if chosen:
        kit_options(config)[SETTING] = chosen
    options = kit_options(config)
    options[COUNT] = str(config.getoption("envkit_cameras") or 0)
    options[POLICY] = config.getoption("envkit_camera_policy") or "wait"
    options[WAIT] = str(config.getoption("envkit_camera_wait") or DEFAULT_WAIT)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The kit's line, from its setting alone: the header must not reach for the engine."""
    import os

    chosen = kit_options(config).get(SETTING) or os.environ.get(SETTING_ENV)
    how = (f"{chosen} (by setting)" if chosen else
           "auto (upstream where the engine has it, else the stand-in), decided at the "
           "first stack that runs it")
    from envkit.camera.leases import discover

    # QUERYCAP on local nodes only: cheap, and no engine call.
    found = discover(os.environ)
    options = kit_options(config)
    cams = (f"{len(found)} to lease ({', '.join(found)})" if found else
            "none found (synthetic only)")
    return [f"envkit camera kit: MediaMTX: {how}",
            f"envkit camera kit: cameras: {cams}; {options.get(COUNT, '0')} per worker's "
            f"default stack, policy {options.get(POLICY, 'wait')}"]


@pytest.fixture
def envkit_rpc(envkit_stack: Stack) -> Iterator[RpcClient]:
    """A JSON-RPC client connected to the worker's camera service, authenticated as admin.

    For another role: ``connect_rpc(camera.ws_url(stack), camera.token(stack, role))``.
    """
    from envkit.camera.rpc import connect_rpc
    from envkit.camera.stack import token, ws_url

    with connect_rpc(ws_url(envkit_stack), token(envkit_stack, "admin")) as client:
        yield client


@pytest.fixture
def envkit_cameras(request: pytest.FixtureRequest, envkit_session: Envkit) -> Iterator[Grant]:
    """Cameras leased to this test alone, released after it (``@pytest.mark.envkit_cameras``).

    The marker's ``n`` (default 1) and ``real`` (default True) say what to lease; the
    grant's ``devices`` are host nodes to map (``devices=grant.devices``) or to plug
    (:func:`envkit.camera.hotplug.plug_camera`), and ``synthetic`` counts the cameras the
    ``synthetic`` policy made up for missing ones.
    """
    from envkit.camera.leases import CameraLeaseError
    from envkit.camera.leases import request as lease

    count, real = _asked(request.node.get_closest_marker("envkit_cameras"))
    try:
        grant = lease(envkit_session, count, real=real)
    except CameraLeaseError as exc:  # fail or wait past its deadline: say why, no traceback
        refused = f"envkit: {exc}"
    else:
        refused = ""
    if refused:  # outside the except: pytest would show the lease error as a cause
        pytest.fail(refused, pytrace=False)
    try:
        yield grant
    finally:
        grant.release()


def _asked(marker: pytest.Mark | None) -> tuple[int, bool]:
    """The marker's ``(n, real)``, ``(1, True)`` without one; a bad value fails the test."""
    if marker is None:
        return 1, True
    count = marker.args[0] if marker.args else marker.kwargs.get("n", 1)
    real = marker.kwargs.get("real", True)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        pytest.fail(f"envkit: @pytest.mark.envkit_cameras({count!r}): n is not a number of "
                    "cameras\n  fix: write e.g. @pytest.mark.envkit_cameras(1)", pytrace=False)
    if not isinstance(real, bool):
        pytest.fail(f"envkit: @pytest.mark.envkit_cameras(real={real!r}): real is not True or "
                    "False\n  fix: real=True leases host cameras, real=False asks for "
                    "synthetic ones", pytrace=False)
    return count, real


@pytest.fixture(autouse=True)
def _envkit_camera_marker(request: pytest.FixtureRequest) -> None:
    """A test marked ``envkit_cameras`` holds its lease even if it asks for no fixture."""
    if request.node.get_closest_marker("envkit_cameras") is not None:
        request.getfixturevalue("envkit_cameras")
