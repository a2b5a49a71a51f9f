"""Readiness on the real engine: a check passes only when the service itself answers.

docker-proxy accepts on a published port whatever the container does; on a loaded
machine its telltale EOF comes after any sensible wait (issue 14: a mute service passed
``Tcp(9999)`` under ``pytest -n 16``). ``settle=0`` models that machine here, every time:
the probe does not wait for the EOF at all, so only its look at the container's own
listening sockets can tell. That look reads this host's ``/proc`` when the engine runs
here (it does for this suite: ``DOCKER_HOST`` unset or ``unix://``), else execs ``cat``;
both views are compared on the same containers below.
"""

from __future__ import annotations

import os
import socket

import pytest

from envkit import Check, Http, LogLine, ReadinessTimeoutError, ServiceSpec, StackSpec, Tcp, labels
from envkit._netstat import PROC_NET_TCP, host_view, listeners
from envkit.demo import TESTSVC
from envkit.inventory import list_stacks
from envkit.runtime import Stack
from envkit.session import Envkit

MUTE = ["sh", "-c", "echo warming up; sleep 600"]
#: Listens on 9999 at 127.0.0.1 inside its container only.
LOOPBACK = ["python3", "-c", "import socket, time; s = socket.socket(); "
            "s.bind(('127.0.0.1', 9999)); s.listen(); print('bound', flush=True); time.sleep(600)"]


def _one(name: str, command: list[str], ready: list[Check], *, timeout: float = 3.0,
         **extra: object) -> StackSpec:
    """One service on port 9999; a short timeout where it must fail, a long one otherwise."""
    return StackSpec(name=name, services=[
        ServiceSpec(name="svc", image=TESTSVC, ports=[9999], command=command, ready=ready,
                    ready_timeout=timeout, **extra),  # type: ignore[arg-type]
    ])


def _raises(kit: Envkit, spec: StackSpec) -> ReadinessTimeoutError:
    stack = kit.stack(spec)
    with pytest.raises(ReadinessTimeoutError) as info:
        stack.up()
    assert list_stacks(kit.engine.client, selector=labels.selector(stack=stack.id)) == []
    return info.value


@pytest.mark.parametrize("check", [Tcp(9999, settle=0.0), Tcp(9999), Http(9999)],
                         ids=["tcp-eof-too-late", "tcp", "http"])
def test_a_service_that_never_listens_is_never_ready(envkit_session: Envkit, check: Check) -> None:
    err = _raises(envkit_session, _one("mute", MUTE, [check]))
    assert err.state == "running" and err.check == check.describe()
    if check == Tcp(9999, settle=0.0):
        assert "nothing listens on port 9999 inside the container" in err.last_error


def test_a_service_listening_only_on_loopback_inside_its_container_is_not_ready(
    envkit_session: Envkit, envkit_stack_factory,
) -> None:
    """Not ready, by design: nothing outside the container can ever reach it.

    docker-proxy (and other services of the stack) dial the container's address, not its
    loopback; the error names the address and says to listen on 0.0.0.0.
    """
    err = _raises(envkit_session, _one("loopback", LOOPBACK, [Tcp(9999, settle=0.0)]))
    assert "only at 127.0.0.1 inside the container" in err.last_error
    assert "listen on 0.0.0.0" in err.last_error
    assert "bound" in err.log_tail
    # The premise: through the published port such a service is unreachable.
    stack: Stack = envkit_stack_factory(_one("loopback", LOOPBACK, []))
    with socket.create_connection(stack.endpoint("svc", 9999), timeout=5) as sock:
        sock.settimeout(5)
        assert sock.recv(1) == b"", "docker-proxy reached a loopback-only listener"


def test_tcp_passes_for_a_service_that_listens(envkit_stack_factory) -> None:
    late = ["sh", "-c", "sleep 0.5; exec python3 /app/svc.py serve --port 9999"]
    stack: Stack = envkit_stack_factory(_one("late", late, [Tcp(9999, settle=0.0)], timeout=60))
    with socket.create_connection(stack.endpoint("svc", 9999), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        assert sock.recv(12).startswith(b"HTTP/1.")


def test_tcp_without_cat_in_the_image_falls_back_to_the_published_port(
    envkit_stack_factory,
) -> None:
    """Without ``cat`` (hidden from PATH here) the exec cannot look; the check still passes.

    (On this machine the host view looks instead; the exec path's fallback decision is
    unit-tested in tests/unit/test_readiness.py.)
    """
    serve = ["/usr/bin/python3", "/app/svc.py", "serve", "--port", "9999"]
    stack: Stack = envkit_stack_factory(
        _one("nocat", serve, [Tcp(9999)], timeout=60, environment={"PATH": "/nowhere"}))
    looked = stack.exec("svc", ["cat", "/proc/net/tcp"])
    assert looked.exit_code != 0 and "not found" in looked.output, looked


def test_the_host_view_and_the_container_own_view_agree(envkit_stack_factory) -> None:
    serve = ["python3", "/app/svc.py", "serve", "--port", "9999"]
    spec = StackSpec(name="views", services=[
        ServiceSpec(name="svc", image=TESTSVC, ports=[9999], command=serve,
                    ready=[Http(9999, "/health")]),
        ServiceSpec(name="lo", image=TESTSVC, ports=[9999], command=LOOPBACK,
                    ready=[LogLine("bound")]),
        ServiceSpec(name="mute", image=TESTSVC, ports=[9999], command=MUTE, ready=[]),
    ])
    stack: Stack = envkit_stack_factory(spec)
    local = os.environ.get("DOCKER_HOST", "unix://").startswith("unix://")
    expected = {"svc": {"0.0.0.0"}, "lo": {"127.0.0.1"}, "mute": set()}
    for service, want in expected.items():
        handle = stack._handle(service)
        inside = stack.exec(service, list(PROC_NET_TCP)).output
        assert listeners(inside, 9999) == want, inside
        view = host_view(handle)
        assert (view is not None) == local, "a local engine's containers are seen from /proc"
        if view is not None:
            assert listeners(view, 9999) == want
