"""The core promise on the real engine: private, concurrent, ephemeral stacks."""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
import urllib.request
from datetime import datetime

import pytest

from envkit import (
    Http,
    ReadinessTimeoutError,
    ServiceSpec,
    Stack,
    StackSpec,
    StackStateError,
    Tcp,
    labels,
)
from envkit.demo import TESTSVC, demo
from envkit.inventory import StackInfo, list_stacks
from envkit.session import Envkit


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return dict(json.load(response))


def _left_of(kit: Envkit, stack: Stack) -> list[StackInfo]:
    """Whatever of *stack* is still on the engine: containers, networks or volumes."""
    return list_stacks(kit.engine.client, selector=labels.selector(stack=stack.id))


def test_dependent_reaches_dependency_by_alias(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(demo())
    body = _get_json(stack.url("client", 8080))
    assert body["service"] == "client"
    assert body["upstream"] == {"service": "web", "ok": True}


def test_ports_are_bound_on_loopback_and_answer(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(demo())
    bindings = stack.container("web").attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    host, port = stack.endpoint("web", 8080)
    assert (host, port) == ("127.0.0.1", int(bindings[0]["HostPort"]))
    assert _get_json(stack.url("web", 8080, path="health"))["ok"] is True


def test_two_stacks_of_one_spec_do_not_collide(envkit_stack_factory) -> None:
    first = envkit_stack_factory(demo())
    second = envkit_stack_factory(demo())
    assert first.network != second.network
    assert first.endpoint("web", 8080) != second.endpoint("web", 8080)
    for stack in (first, second):
        assert _get_json(stack.url("client", 8080))["upstream"] == {"service": "web", "ok": True}
    # Each client's alias "web" resolves inside its own network only.
    a = first.container("client").attrs["NetworkSettings"]["Networks"]
    assert list(a) == [first.network]


def test_resources_carry_the_label_contract(envkit_stack_factory, envkit_session: Envkit) -> None:
    stack = envkit_stack_factory(demo())
    container = stack.container("web")
    got = container.labels
    assert got[labels.SESSION] == envkit_session.session
    assert got[labels.WORKER] == envkit_session.worker
    assert got[labels.STACK] == stack.id
    assert got[labels.SERVICE] == "web"
    assert got[labels.OWNER].endswith(f":{__import__('os').getpid()}")
    assert got[labels.CREATED].endswith("+00:00")
    net = envkit_session.engine.client.networks.get(stack.network)
    assert net.attrs["Labels"][labels.STACK] == stack.id
    assert container.attrs["HostConfig"]["Privileged"] is False
    assert container.attrs["HostConfig"]["Init"] is True


def test_down_removes_everything_and_is_idempotent(envkit_session: Envkit) -> None:
    stack = envkit_session.stack(demo())
    stack.up()
    client = envkit_session.engine.client
    selector = labels.selector(stack=stack.id)
    assert len(client.containers.list(all=True, filters=selector)) == 2
    stack.down()
    stack.down()
    assert client.containers.list(all=True, filters=selector) == []
    assert client.networks.list(filters=selector) == []


def test_never_ready_service_raises_with_state_and_logs(envkit_session: Envkit) -> None:
    spec = StackSpec(name="broken", services=[
        ServiceSpec(name="web", image=TESTSVC, ports=[8080],
                    ready=[Http(8080, "/health")]),
        ServiceSpec(name="mute", image=TESTSVC, ports=[9999],
                    command=["sh", "-c", "echo warming up; echo still warming; sleep 600"],
                    ready=[Tcp(9999)], ready_timeout=2.0),
    ])
    stack = envkit_session.stack(spec)
    with pytest.raises(ReadinessTimeoutError) as info:
        stack.up()
    err = info.value
    assert err.service == "mute" and err.check == "Tcp(9999)"
    assert err.state == "running" and err.exit_code is None
    assert "still warming" in err.log_tail
    assert "not ready after 2.0s" in str(err)
    assert _left_of(envkit_session, stack) == []


def test_service_that_exits_is_reported_at_once(envkit_session: Envkit) -> None:
    spec = StackSpec(name="crash", services=[
        ServiceSpec(name="dies", image=TESTSVC, ports=[8080],
                    command=["sh", "-c", "echo fatal: no config >&2; exit 3"],
                    ready=[Http(8080)], ready_timeout=30.0),
    ])
    stack = envkit_session.stack(spec)
    with pytest.raises(ReadinessTimeoutError) as info:
        stack.up()
    assert info.value.exit_code == 3
    assert info.value.state == "exited"
    assert "fatal: no config" in info.value.log_tail
    assert _left_of(envkit_session, stack) == []


def test_a_crash_report_quotes_the_log_but_not_the_service_s_secret(
        envkit_session: Envkit) -> None:
    secret = f"jwt-{secrets.token_hex(12)}"
    spec = StackSpec(name="leaky", services=[
        ServiceSpec(name="talks", image=TESTSVC, ports=[8080],
                    environment={"APP_JWT_SECRET": secret},
                    command=["sh", "-c", 'echo "config: secret=$APP_JWT_SECRET"; exit 3'],
                    ready=[Http(8080)], ready_timeout=30.0),
    ])
    stack = envkit_session.stack(spec)
    with pytest.raises(ReadinessTimeoutError) as info:
        stack.up()
    assert "config: secret=<redacted>" in info.value.log_tail, info.value.log_tail
    assert secret not in str(info.value)
    assert _left_of(envkit_session, stack) == []


def test_independent_services_start_concurrently(envkit_stack_factory) -> None:
    slow = ["sh", "-c", "sleep 1.5; exec python3 /app/svc.py serve --port 8080"]
    spec = StackSpec(name="pair", services=[
        ServiceSpec(name=n, image=TESTSVC, ports=[8080], command=slow,
                    ready=[Http(8080, "/health")]) for n in ("a", "b")
    ])
    stack = envkit_stack_factory(spec)
    started = [
        stack.container(n).attrs["State"]["StartedAt"] for n in ("a", "b")
    ]
    # Both were started before either became ready (1.5 s): they overlap.
    times = sorted(datetime.fromisoformat(s[:26]) for s in started)
    # Started one after the other's readiness, they would be at least 1.5 s apart.
    assert (times[1] - times[0]).total_seconds() < 1.5


def test_stack_methods_refuse_misuse(envkit_session: Envkit) -> None:
    stack = envkit_session.stack(demo())
    with pytest.raises(StackStateError, match="not up"):
        stack.endpoint("web", 8080)
    with stack:
        with pytest.raises(StackStateError, match="up\\(\\) runs once"):
            stack.up()
        with pytest.raises(KeyError, match="does not publish 9/tcp"):
            stack.endpoint("web", 9)
        with pytest.raises(KeyError, match="no service 'nope'"):
            stack.endpoint("nope", 8080)


def test_host_ports_held_elsewhere_do_not_matter(envkit_stack_factory) -> None:
    holders = []
    try:
        for port in (8002, 8003, 8554, 9997, 8080):
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
                holders.append(sock)
            except OSError:
                sock.close()  # someone else holds it already: just as good
        stack = envkit_stack_factory(demo())
        assert stack.endpoint("web", 8080)[1] not in (8002, 8003, 8554, 9997, 8080)
        assert _get_json(stack.url("client", 8080))["upstream"]["ok"] is True
    finally:
        for sock in holders:
            sock.close()


def test_session_stack_is_the_default_stack_of_this_worker(
    envkit_stack: Stack, envkit_session: Envkit
) -> None:
    assert envkit_stack.spec.name == "default"
    assert envkit_stack.id == envkit_session.stack_id("default")
    info = _get_json(envkit_stack.url("mediamtx", 9997, path="/v3/info"))
    assert "version" in info


def test_first_failure_calls_off_the_other_services_waits(envkit_session: Envkit) -> None:
    """A sibling with a 60 s deadline must not hold up the report of a crashed service."""
    spec = StackSpec(name="calloff", services=[
        ServiceSpec(name="crashes", image=TESTSVC, ports=[8080],
                    command=["sh", "-c", "sleep 1; exit 4"], ready=[Http(8080)]),
        ServiceSpec(name="slow", image=TESTSVC, ports=[8080],
                    command=["sleep", "600"], ready=[Http(8080)], ready_timeout=60.0),
    ])
    stack = envkit_session.stack(spec)
    started = time.monotonic()
    with pytest.raises(ReadinessTimeoutError) as info:
        stack.up()
    assert info.value.service == "crashes" and info.value.exit_code == 4
    assert time.monotonic() - started < 30, "the sibling's wait was not called off"
    assert _left_of(envkit_session, stack) == []


def test_a_taken_stack_id_is_refused_and_the_other_stack_left_alone(
    envkit_stack_factory, envkit_session: Envkit  # type: ignore[no-untyped-def]
) -> None:
    first = envkit_stack_factory(demo(), name="twin")
    second = envkit_session.stack(demo(), name="twin")
    with pytest.raises(StackStateError, match="already exists on this engine"):
        second.up()
    assert _get_json(first.url("client", 8080))["upstream"]["ok"] is True


def test_long_spec_names_still_give_distinct_stacks(envkit_stack_factory) -> None:  # type: ignore[no-untyped-def]
    long = StackSpec(name="a" * 63, services=demo().services)
    one, two = envkit_stack_factory(long), envkit_stack_factory(long)
    assert one.id != two.id


def test_containers_use_envkits_engine_not_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, envkit_session: Envkit
) -> None:
    """Testcontainers reads os.environ; envkit must use the environment it was given."""
    given = {**os.environ}
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # nothing answers there
    kit = Envkit(settings=envkit_session.settings, environ=given,
                 session=envkit_session.session, worker=envkit_session.worker)
    with kit.stack(demo()) as stack:
        assert _get_json(stack.url("client", 8080))["upstream"]["ok"] is True
