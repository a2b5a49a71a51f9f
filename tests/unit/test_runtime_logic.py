"""Stack.up()'s choice of error and its cleanup, with the engine calls replaced by fakes.

Only the pure orchestration is under test here (which error wins, who is cancelled,
that teardown runs); tests/integration/test_stack.py runs the same paths on the engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from engine_fakes import FakeEngine, Images

from envkit import Build, ReadinessTimeoutError, ServiceSpec, StackSpec, runtime
from envkit.readiness import Cancelled, Check


class FakeHandle:
    def __init__(self, service: str) -> None:
        self.service = service
        self.container = SimpleNamespace(id=f"id-{service}")




def timeout(service: str) -> ReadinessTimeoutError:
    return ReadinessTimeoutError(service=service, check="Http(8080)", timeout=1, last_error="x",
                                 state="exited", exit_code=3, oom_killed=False, log_tail=[])


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {"created": [], "torn_down": [], "cancelled": []}
    monkeypatch.setattr(runtime, "create_service",
                        lambda **kw: seen["created"].append(kw["spec"].name) or FakeHandle(
                            kw["spec"].name))
    monkeypatch.setattr(runtime, "teardown",
                        lambda engine, stack_id, **kw: seen["torn_down"].append(stack_id) or 0)
    monkeypatch.setattr(runtime._watchdog, "ensure", lambda *a, **kw: None)
    return seen


def make_stack(*services: ServiceSpec) -> runtime.Stack:
    return runtime.Stack(StackSpec(name="s", services=services), engine=FakeEngine(),  # type: ignore[arg-type]
                         images=Images(), session="t", worker="gw0")


def svc(name: str, *deps: str) -> ServiceSpec:
    return ServiceSpec(name=name, image=Build(name="x"), depends_on=deps)


def test_root_failure_wins_over_dependents_and_cancelled_siblings(
    patched: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def wait_ready(handle: FakeHandle, checks: Sequence[Check], *, timeout: float,
                   cancelled: Callable[[], bool], **_: Any) -> None:
        if handle.service == "db":
            raise timeout_error
        while not cancelled():  # "slow" waits until the stack calls it off
            release.wait(0.01)
        patched["cancelled"].append(handle.service)
        raise Cancelled("called off")

    timeout_error = timeout("db")
    monkeypatch.setattr(runtime, "wait_ready", wait_ready)
    stack = make_stack(svc("db"), svc("api", "db"), svc("slow"))
    with pytest.raises(ReadinessTimeoutError) as info:
        stack.up()
    assert info.value is timeout_error  # not "a dependency failed", not "cancelled"
    assert "api" not in patched["created"]  # its dependency failed: never created
    assert patched["cancelled"] == ["slow"]
    assert patched["torn_down"] == [stack.id]
    assert stack.state is runtime.StackState.DOWN


def test_interrupt_joins_threads_before_teardown(
    patched: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    running = threading.Event()
    finished: list[str] = []

    def wait_ready(handle: FakeHandle, checks: Sequence[Check], *, timeout: float,
                   cancelled: Callable[[], bool], **_: Any) -> None:
        running.set()
        while not cancelled():
            threading.Event().wait(0.01)
        finished.append(handle.service)
        raise Cancelled("called off")

    monkeypatch.setattr(runtime, "wait_ready", wait_ready)
    seen_at_teardown: list[list[str]] = []
    monkeypatch.setattr(runtime, "teardown", lambda engine, stack_id, **kw:
                        seen_at_teardown.append(list(finished)) or 0)

    def interrupted_wait(*args: Any, **kwargs: Any) -> Any:
        running.wait(5)
        raise KeyboardInterrupt

    monkeypatch.setattr(runtime, "wait", interrupted_wait)
    stack = make_stack(svc("web"))
    with pytest.raises(KeyboardInterrupt):
        stack.up()
    assert seen_at_teardown == [["web"]]  # the thread had ended when teardown ran
