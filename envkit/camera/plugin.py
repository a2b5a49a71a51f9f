"""The camera kit's pytest plugin: its option and its fixture, through pytest's own hooks.

Installed beside envkit's core plugin (``pytest11`` entry point ``envkit-camera``), as a
team's kit plugin would be. Like the core, it costs nothing until a fixture is used: the
RPC client and its websockets import come with the first ``envkit_rpc``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from envkit.camera.settings import SETTING, SETTING_ENV
from envkit.plugin import kit_options

if TYPE_CHECKING:
    from envkit.camera.rpc import RpcClient
    from envkit.runtime import Stack


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("envkit", "envkit: isolated container stacks per worker")
    group.addoption(
        "--envkit-mediamtx", metavar="upstream|standin|IMAGE", default=None,
        help=f"MediaMTX image of the camera kit's stacks and blocks (default: ${SETTING_ENV}, "
        "else the upstream image if it can be had, else the stand-in built locally)",
    )


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("envkit_mediamtx")
    if chosen:
        kit_options(config)[SETTING] = chosen


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The kit's line, from its setting alone: the header must not reach for the engine."""
    import os

    chosen = kit_options(config).get(SETTING) or os.environ.get(SETTING_ENV)
    how = (f"{chosen} (by setting)" if chosen else
           "auto (upstream where the engine has it, else the stand-in), decided at the "
           "first stack that runs it")
    return [f"envkit camera kit: MediaMTX: {how}"]


@pytest.fixture
def envkit_rpc(envkit_stack: Stack) -> Iterator[RpcClient]:
    """A JSON-RPC client connected to the worker's camera service, authenticated as admin.

    For another role: ``connect_rpc(camera.ws_url(stack), camera.token(stack, role))``.
    """
    from envkit.camera.rpc import connect_rpc
    from envkit.camera.stack import token, ws_url

    with connect_rpc(ws_url(envkit_stack), token(envkit_stack, "admin")) as client:
        yield client
