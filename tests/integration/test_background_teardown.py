"""Stacks handed to the background remover are gone once the session has waited for it.

The fixtures' finalizers hand their stacks over and return; the run waits for the
removals at its end, before the leak check, so a run of such tests still ends clean.
"""

from __future__ import annotations

import time
import uuid

import pytest

from envkit import labels
from envkit.demo import demo
from envkit.inventory import list_stacks
from envkit.runtime import StackState
from envkit.session import Envkit


def _left(kit: Envkit, stack_id: str) -> list[str]:
    found = list_stacks(kit.engine.client, selector=labels.selector(stack=stack_id))
    return [r for s in found for r in s.resources]


def test_a_stack_handed_over_is_gone_after_the_wait(envkit_session: Envkit) -> None:
    stack = envkit_session.stack(demo()).up()
    started = time.monotonic()
    envkit_session.remove_later(stack)
    handed = time.monotonic() - started
    assert handed < 0.2, f"handing a stack over took {handed:.2f} s"
    assert envkit_session.finish_removals(timeout=60) == []
    assert stack.state is StackState.DOWN
    assert _left(envkit_session, stack.id) == []


def test_a_named_stack_waits_for_its_namesakes_removal(envkit_session: Envkit) -> None:
    name = f"again{uuid.uuid4().hex[:6]}"
    first = envkit_session.stack(demo(), name=name).up()
    envkit_session.remove_later(first)
    second = envkit_session.stack(demo(), name=name)
    assert first.id == second.id and _left(envkit_session, first.id) == []
    with second:
        assert second.state is StackState.UP
    assert envkit_session.finish_removals(timeout=60) == []


SUITE = """
import json, time, urllib.request

import pytest

@pytest.mark.parametrize("n", range(4))
def test_fresh_stack(envkit_stack_factory, n):
    stack = envkit_stack_factory("demo")
    with urllib.request.urlopen(stack.url("client", 8080), timeout=5) as r:
        assert json.load(r)["upstream"]["ok"] is True
"""


@pytest.mark.parametrize("mode", [[], ["--envkit-sync-teardown"]], ids=["background", "sync"])
def test_a_suite_of_fresh_stacks_ends_clean(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, envkit_session: Envkit,
    mode: list[str],
) -> None:
    session = f"bg{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ENVKIT_SESSION", session)
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2",
                                           "--envkit-no-sweep", *mode)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out
    assert "4 passed" in out and "left" not in out and "background removal" not in out
    client = envkit_session.engine.client
    assert client.containers.list(all=True, filters=labels.selector(session=session)) == []
    assert client.networks.list(filters=labels.selector(session=session)) == []
