"""Chaos tests: the real engine behind a fault-injecting proxy (see engine_proxy.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_proxy import EngineProxy

from envkit import _watchdog, labels
from envkit.demo import TESTSVC
from envkit.session import Envkit


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "chaos" in item.path.parts:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="module")
def real_kit(envkit_session: Envkit) -> Envkit:
    """The worker's Envkit on the real socket, with the demo image built and a watchdog.

    The image is built here, not through the proxy; and the watchdog on the real socket
    reaps this process's chaos stacks if it is killed (the proxy's own dies with it).
    """
    envkit_session.images.resolve(TESTSVC)
    _watchdog.ensure(labels.owner_id(), docker_host=envkit_session.engine.docker_host,
                     environ=envkit_session.engine.environ)
    return envkit_session


@pytest.fixture(scope="module")
def engine_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProxy]:
    """A proxy in front of the real engine's socket, one per worker and module."""
    # A unix socket path must stay under 108 bytes: a short directory of its own.
    folder = Path(tmp_path_factory.mktemp("chaos", numbered=True))
    proxy = EngineProxy(folder / "docker.sock").start()
    try:
        yield proxy
    finally:
        proxy.close()
