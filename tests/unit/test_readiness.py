"""The deadline loop against a fake target: no Docker, real sockets where a probe needs one."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from envkit import Exec, Healthy, LogLine, ReadinessTimeoutError, Tcp
from envkit.readiness import ContainerState, NotReady, wait_ready


@dataclass
class FakeTarget:
    """A container whose state, logs and exec results the test scripts."""

    service: str = "svc"
    states: list[ContainerState] = field(default_factory=lambda: [ContainerState("running")])
    log_text: str = ""
    exec_codes: list[int] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    inspections: int = 0

    def host_endpoint(self, port: int | str) -> tuple[str, int]:
        return "127.0.0.1", self.ports[f"{port}/tcp"]

    def state(self) -> ContainerState:
        self.inspections += 1
        return self.states[min(self.inspections, len(self.states)) - 1]

    def logs(self) -> str:
        return self.log_text

    def exec(self, command: Sequence[str]) -> tuple[int, str]:
        return (self.exec_codes.pop(0) if self.exec_codes else 0), "out"


def test_log_line_passes_once_it_appears() -> None:
    target = FakeTarget(log_text="booting\nlistener opened on :8554\n")
    wait_ready(target, [LogLine(r"listener .* :8554")], timeout=1)


def test_exec_is_retried_until_it_succeeds() -> None:
    target = FakeTarget(exec_codes=[1, 1, 0])
    wait_ready(target, [Exec(("true",))], timeout=5)
    assert target.exec_codes == []


def test_timeout_carries_check_state_and_log_tail() -> None:
    target = FakeTarget(log_text="\n".join(f"line {i}" for i in range(100)))
    started = time.monotonic()
    with pytest.raises(ReadinessTimeoutError) as info:
        wait_ready(target, [LogLine("never")], timeout=0.3)
    assert time.monotonic() - started < 5, "the deadline was not honoured"
    err = info.value
    assert (err.service, err.check, err.state, err.exit_code) == (
        "svc", "LogLine('never')", "running", None)
    assert err.log_tail[-1] == "line 99" and len(err.log_tail) == 30
    assert "no log line matches 'never' yet" in str(err)


def test_exited_container_ends_the_wait_at_once() -> None:
    target = FakeTarget(states=[ContainerState("exited", exit_code=3, oom_killed=True)],
                        log_text="fatal")
    with pytest.raises(ReadinessTimeoutError) as info:
        wait_ready(target, [LogLine("ready")], timeout=30)
    assert target.inspections <= 2, "an exited container must end the wait at its first look"
    assert (info.value.state, info.value.exit_code, info.value.oom_killed) == ("exited", 3, True)
    assert "exit code 3, OOM-killed" in str(info.value)


def test_lost_port_binding_of_an_exited_container_is_reported_as_exit() -> None:
    target = FakeTarget(states=[ContainerState("exited", exit_code=1)])  # no ports left
    with pytest.raises(ReadinessTimeoutError, match="exit code 1"):
        wait_ready(target, [Tcp(8080)], timeout=5)


def test_healthy_needs_a_healthcheck() -> None:
    with pytest.raises(NotReady, match="no HEALTHCHECK"):
        Healthy().probe(FakeTarget())
    Healthy().probe(FakeTarget(states=[ContainerState("running", health="healthy")]))


def test_tcp_counts_an_immediate_close_as_not_ready() -> None:
    """docker-proxy accepts, then closes when nothing listens in the container."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        target = FakeTarget(ports={"8080/tcp": port})
        client_side: list[socket.socket] = []

        def accept_and_close() -> None:
            conn, _ = server.accept()
            conn.close()

        threading.Thread(target=accept_and_close, daemon=True).start()
        with pytest.raises(NotReady, match="closed the connection at once"):
            Tcp(8080, settle=0.5).probe(target)
        threading.Thread(target=lambda: client_side.append(server.accept()[0]),
                         daemon=True).start()
        Tcp(8080).probe(target)  # accepted and kept open: ready
        for conn in client_side:
            conn.close()
