"""The background remover, with fake removals: order, hand-over at once, waits, failures.

Also the plugin's side with fakes: a fixture's teardown hands a stack over (or removes it
itself with ``--envkit-sync-teardown``), a kept stack is left alone, and a named stack
waits for its namesake's removal.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest

from envkit import _plugin_fixtures, plugin
from envkit._remover import RemovalFailure, Remover
from envkit.config import Settings
from envkit.session import Envkit


class FakeStack:
    """A stack whose ``down()`` waits for *gate* and records that it ran."""

    def __init__(self, stack_id: str, gate: threading.Event | None = None,
                 error: Exception | None = None) -> None:
        self.id = stack_id
        self.kept = False
        self.downs = 0
        self._gate = gate
        self._error = error

    def down(self) -> None:
        if self._gate is not None:
            assert self._gate.wait(5), "the test never opened the gate"
        if self._error is not None:
            raise self._error
        self.downs += 1


def test_submit_returns_at_once_and_wait_waits_for_the_removal() -> None:
    gate, remover = threading.Event(), Remover()
    stack = FakeStack("s-1", gate)
    started = time.monotonic()
    remover.submit(stack.id, stack.down)
    assert time.monotonic() - started < 0.1
    assert remover.pending == 1 and stack.downs == 0
    threading.Timer(0.2, gate.set).start()
    assert remover.wait(timeout=5) == []
    assert stack.downs == 1 and remover.pending == 0


def test_removals_run_in_the_order_handed_over() -> None:
    remover, done = Remover(), list[int]()
    for i in range(5):
        remover.submit(f"s-{i}", partial(done.append, i))
    assert remover.wait(timeout=5) == []
    assert done == [0, 1, 2, 3, 4]


def test_a_failed_removal_is_reported_once_and_the_next_still_runs() -> None:
    remover = Remover()
    broken, fine = FakeStack("s-bad", error=RuntimeError("engine said no")), FakeStack("s-ok")
    remover.submit(broken.id, broken.down)
    remover.submit(fine.id, fine.down)
    assert remover.wait(timeout=5) == [RemovalFailure(key="s-bad", message="engine said no")]
    assert fine.downs == 1
    assert remover.wait(timeout=5) == []  # reported once


def test_a_removal_still_running_at_the_deadline_is_a_failure() -> None:
    gate, remover = threading.Event(), Remover()
    stuck = FakeStack("s-stuck", gate)
    remover.submit(stuck.id, stuck.down)
    failures = remover.wait(timeout=0.1)
    assert [f.key for f in failures] == ["s-stuck"] and "still being removed" in failures[0].message
    gate.set()
    assert remover.wait(timeout=5) == []


def test_wait_for_one_key_waits_only_for_that_key() -> None:
    gate, remover = threading.Event(), Remover()
    remover.submit("s-slow", FakeStack("s-slow", gate).down)
    assert remover.wait_for("s-other", timeout=0) is True
    assert remover.wait_for("s-slow", timeout=0.05) is False
    gate.set()
    assert remover.wait_for("s-slow", timeout=5) is True


def test_waiting_with_nothing_handed_over_returns_at_once() -> None:
    assert Remover().wait(timeout=0) == []


# --- the plugin's teardown ----------------------------------------------------------------


def _kit() -> Envkit:
    return Envkit(settings=Settings.from_env({}), environ={}, session="s", worker="gw0")


def _config(kit: Envkit, *, sync: bool = False) -> Any:
    holder = SimpleNamespace(made=kit, streams={})
    options = {"envkit_sync_teardown": sync}
    return SimpleNamespace(stash={plugin.HOLDER_KEY: holder}, getoption=options.__getitem__)


def test_a_fixtures_teardown_hands_the_stack_over_and_returns() -> None:
    kit, gate = _kit(), threading.Event()
    stack = FakeStack("s-gw0-demo-1", gate)
    _plugin_fixtures._down(stack, _config(kit))  # type: ignore[arg-type]
    assert stack.downs == 0  # still going down in the background
    gate.set()
    assert kit.finish_removals(timeout=5) == []
    assert stack.downs == 1


def test_sync_teardown_removes_in_the_fixtures_teardown() -> None:
    kit = _kit()
    stack = FakeStack("s-gw0-demo-1")
    _plugin_fixtures._down(stack, _config(kit, sync=True))  # type: ignore[arg-type]
    assert stack.downs == 1


@pytest.mark.parametrize("sync", [False, True])
def test_a_kept_stack_is_not_removed(sync: bool) -> None:
    kit = _kit()
    stack = FakeStack("s-gw0-demo-1")
    stack.kept = True
    _plugin_fixtures._down(stack, _config(kit, sync=sync))  # type: ignore[arg-type]
    assert kit.finish_removals(timeout=5) == [] and stack.downs == 0


def test_log_followers_stop_after_the_background_removal() -> None:
    kit, order = _kit(), []
    stack = FakeStack("s-gw0-demo-1")
    stack.down = lambda: order.append("down")  # type: ignore[method-assign]
    config = _config(kit)
    config.stash[plugin.HOLDER_KEY].streams[stack.id] = SimpleNamespace(
        stop=lambda: order.append("stop"))
    _plugin_fixtures._down(stack, config)  # type: ignore[arg-type]
    assert kit.finish_removals(timeout=5) == []
    assert order == ["down", "stop"]


def test_a_failed_background_removal_comes_back_from_finish_removals() -> None:
    kit = _kit()
    kit.remove_later(FakeStack("s-gw0-x", error=RuntimeError("busy")))  # type: ignore[arg-type]
    assert kit.finish_removals(timeout=5) == [RemovalFailure(key="s-gw0-x", message="busy")]
