"""Integration tests run real containers; every test module ends with nothing left behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from envkit import labels
from envkit.inventory import list_stacks
from envkit.runtime import Stack
from envkit.session import Envkit


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


#: Ids of the worker's shared ``envkit_stack``: it outlives every module by design.
_SHARED: set[str] = set()


@pytest.fixture(scope="session")
def envkit_stack(envkit_stack: Stack) -> Stack:
    """The plugin's shared stack, noted so the leak check below leaves it out."""
    _SHARED.add(envkit_stack.id)
    return envkit_stack


def _leftovers(kit: Envkit) -> set[str]:
    """The worker's resources, except its shared session stack's and the pool's spares.

    A spare (a pooled stack no test took) outlives modules; the session removes it.
    """
    found = list_stacks(kit.engine.client,
                        selector=labels.selector(session=kit.session, worker=kit.worker))
    taken = {s.id for s in kit.made}
    spares = {s.stack for s in found if s.pooled and s.stack not in taken}
    return {r for s in found if s.stack not in _SHARED | spares for r in s.resources}


@pytest.fixture(autouse=True, scope="module")
def _no_leaks_after_module(envkit_session: Envkit) -> Iterator[None]:
    """After each module, this worker's function-scoped stacks must all be gone."""
    before = _leftovers(envkit_session)
    yield
    # The module's last stacks may still be going down in the background.
    failed = envkit_session.finish_removals()
    assert not failed, f"background removals failed: {failed}"
    after = _leftovers(envkit_session) - before
    assert not after, f"resources leaked by this module: {sorted(after)}"
