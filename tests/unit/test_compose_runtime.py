"""depends_on conditions in Stack.up(), with the engine calls replaced by fakes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from engine_fakes import FakeEngine, Images

from envkit import Build, EnvkitError, ServiceSpec, StackSpec, _watchdog, runtime
from envkit.readiness import Check, ContainerState


class FakeHandle:
    def __init__(self, service: str, exits: list[int | None]) -> None:
        self.service = service
        self._exits = exits  # states to report: None = running, else the exit code
        self.container = SimpleNamespace(id=f"id-{service}")

    def state(self) -> ContainerState:
        code = self._exits.pop(0) if len(self._exits) > 1 else self._exits[0]
        return ContainerState("running") if code is None else ContainerState("exited", code)

    def logs(self) -> str:
        return "migration 3 failed\n"




def run(monkeypatch: pytest.MonkeyPatch, services: list[ServiceSpec],
        exits: dict[str, list[int | None]], slow: str = "") -> list[str]:
    """Start *services*; return the order of events (created:x, ready:x)."""
    events: list[str] = []
    lock = threading.Lock()
    release = threading.Event()

    def create_service(**kw: Any) -> FakeHandle:
        name = kw["spec"].name
        with lock:
            events.append(f"created:{name}")
        if name != slow:
            release.set()  # the slow service may finish once another one is created
        return FakeHandle(name, list(exits.get(name, [None])))

    def wait_ready(handle: FakeHandle, checks: Sequence[Check], *, timeout: float,
                   cancelled: Callable[[], bool], **_: Any) -> None:
        if handle.service == slow:
            release.wait(5)
        with lock:
            events.append(f"ready:{handle.service}")

    monkeypatch.setattr(runtime, "create_service", create_service)
    monkeypatch.setattr(runtime, "wait_ready", wait_ready)
    monkeypatch.setattr(runtime, "teardown", lambda *a, **kw: 0)
    monkeypatch.setattr(_watchdog, "ensure", lambda *a, **kw: None)
    stack = runtime.Stack(StackSpec(name="s", services=services),
                          engine=FakeEngine(), images=Images(),  # type: ignore[arg-type]
                          session="t", worker="gw0", ready_timeout=5)
    stack.up()
    return events


def svc(name: str, **kw: Any) -> ServiceSpec:
    return ServiceSpec(name=name, image=Build(name="x"), **kw)


def test_started_does_not_wait_for_readiness(monkeypatch: pytest.MonkeyPatch) -> None:
    events = run(monkeypatch, [svc("db"), svc("api", depends_on={"db": "started"})], {},
                 slow="db")
    # api was created while db was still getting ready (db's readiness waited for it).
    assert events.index("created:api") < events.index("ready:db")


def test_healthy_waits_for_readiness(monkeypatch: pytest.MonkeyPatch) -> None:
    events = run(monkeypatch, [svc("db"), svc("api", depends_on=["db"])], {})
    assert events.index("ready:db") < events.index("created:api")


def test_completed_waits_for_exit_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    api = svc("api", depends_on={"migrate": "service_completed_successfully"})
    events = run(monkeypatch, [svc("migrate"), api], {"migrate": [None, None, 0]})
    assert events[-2:] == ["created:api", "ready:api"]


def test_completed_fails_on_a_nonzero_exit_with_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EnvkitError) as info:
        run(monkeypatch, [svc("migrate"), svc("api", depends_on={"migrate": "completed"})],
            {"migrate": [None, 3]})
    assert "service 'migrate' exited 3; 'api' depends on it completing successfully" in str(
        info.value)
    assert "migration 3 failed" in str(info.value)


def test_conditions_survive_replace_and_bad_ones_are_refused() -> None:
    api = svc("api", depends_on={"db": "started", "cache": "healthy"})
    assert api.depends_on == ("db", "cache")
    assert replace(api, user="1").conditions == {"db": "started", "cache": "healthy"}
    assert svc("api", depends_on=["db"]).condition("db") == "healthy"
    with pytest.raises(EnvkitError, match="not a dependency condition"):
        svc("api", depends_on={"db": "soon"})
