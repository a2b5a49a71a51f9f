"""Knowing a container exited from the engine's events: a scripted stream, no Docker."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from engine_fakes import FakeTarget

from envkit import Exec, ReadinessTimeoutError
from envkit._exits import SINCE_MARGIN, StackExits, lifetime
from envkit.readiness import ContainerState, wait_ready

WAIT = 10.0


class Stream:
    """What docker-py's ``events(decode=True)`` returns: an iterator that can be closed."""

    def __init__(self) -> None:
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (event := self.events.get(timeout=WAIT)) is not None:
            yield event

    def close(self) -> None:
        self.closed.set()
        self.events.put(None)


class Api:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[dict[str, Any]] = []
        self.stream = Stream()

    def events(self, **kwargs: Any) -> Stream:
        self.calls.append(kwargs)
        if self.fail:
            raise ConnectionError("engine gone")
        return self.stream


def until(predicate: Any) -> None:
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return
        threading.Event().wait(0.01)
    raise AssertionError("never happened")


def test_one_stream_per_stack_opened_on_the_first_question_and_filtered_to_it() -> None:
    api = Api()
    exits = StackExits(api=api, stack="s1-main-demo-1", since=1000.0)
    assert api.calls == []  # nothing asked yet: no request
    assert exits.exited("abc") is False and exits.exited("def") is False
    assert len(api.calls) == 1
    call = api.calls[0]
    assert call["since"] == int(1000.0 - SINCE_MARGIN) and call["decode"] is True
    assert call["filters"] == {"type": "container", "event": ["die"],
                               "label": ["envkit.stack=s1-main-demo-1"]}
    api.stream.events.put({"id": "abc", "status": "die", "Actor": {"ID": "abc"}})
    until(lambda: exits.exited("abc"))
    assert exits.exited("def") is False
    exits.close()
    assert api.stream.closed.is_set() and exits.exited("abc") is None


def test_a_stream_that_fails_or_ends_means_unknown() -> None:
    failing = StackExits(api=Api(fail=True), stack="s", since=0.0)
    assert failing.exited("abc") is None
    api = Api()
    ended = StackExits(api=api, stack="s", since=0.0)
    assert ended.exited("abc") is False
    api.stream.events.put(None)  # the engine closed it
    until(lambda: ended.exited("abc") is None)


def _running_target(**kwargs: Any) -> FakeTarget:
    return FakeTarget(container=SimpleNamespace(attrs={"State": {"Running": True}}), **kwargs)


def test_while_no_exit_is_announced_failed_probes_never_inspect() -> None:
    target = _running_target(exec_codes=[1] * 40)  # ~1 s of failures at 25 ms
    asked: list[int] = []

    def exited() -> bool | None:
        asked.append(1)
        return False

    wait_ready(target, [Exec(("true",))], timeout=30, fresh=True, exited=exited)
    assert target.inspections == 0 and target.exec_codes == []
    assert len(asked) >= 2  # asked from the first due look on, at every failure


def test_an_announced_exit_is_inspected_and_reported_at_once() -> None:
    target = _running_target(states=[ContainerState("exited", exit_code=137, oom_killed=True)],
                             exec_codes=[1] * 10_000, log_text="Killed")
    answers = iter([False, True])
    with pytest.raises(ReadinessTimeoutError) as info:
        wait_ready(target, [Exec(("true",))], timeout=30, fresh=True,
                   exited=lambda: next(answers))
    assert target.inspections == 2  # the look on the announced exit, then the report's
    err = info.value
    assert (err.state, err.exit_code, err.oom_killed, err.log_tail) == (
        "exited", 137, True, ["Killed"])


def test_unknown_falls_back_to_inspecting() -> None:
    target = _running_target(exec_codes=[1] * 40)
    wait_ready(target, [Exec(("true",))], timeout=30, fresh=True, exited=lambda: None)
    assert target.inspections >= 1


def test_lifetime_reads_the_engine_clock() -> None:
    container = SimpleNamespace(attrs={"State": {
        "StartedAt": "2026-12-02T04:00:00.250000000Z", "FinishedAt": "2026-12-02T04:00:02.5Z"}})
    assert lifetime(container) == pytest.approx(2.25)
    assert lifetime(None) is None and lifetime(SimpleNamespace(attrs={})) is None
