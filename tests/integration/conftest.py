"""Integration tests run real containers; every test module ends with nothing left behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from envkit import labels
from envkit.session import Envkit


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


def _leftovers(kit: Envkit) -> set[str]:
    """The worker's resources, except those of its shared session stack."""
    client = kit.engine.client
    selector = labels.selector(session=kit.session, worker=kit.worker)
    shared = kit.stack_id(kit.spec().name)
    found = [("container", c) for c in client.containers.list(all=True, filters=selector)]
    found += [("network", n) for n in client.networks.list(filters=selector)]
    found += [("volume", v) for v in client.volumes.list(filters=selector)]
    return {
        f"{kind} {res.name}" for kind, res in found
        if (res.attrs.get("Labels") or res.attrs.get("Config", {}).get("Labels") or {}).get(
            labels.STACK) != shared
    }


@pytest.fixture(autouse=True, scope="module")
def _no_leaks_after_module(envkit_session: Envkit) -> Iterator[None]:
    """After each module, this worker's function-scoped stacks must all be gone."""
    before = _leftovers(envkit_session)
    yield
    after = _leftovers(envkit_session) - before
    assert not after, f"resources leaked by this module: {sorted(after)}"
