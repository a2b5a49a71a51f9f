"""The deadline loop against a fake target: no Docker, real sockets where a probe needs one."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from engine_fakes import FakeTarget
from hypothesis import given
from hypothesis import strategies as st

from envkit import Exec, Healthy, LogLine, ReadinessTimeoutError, Tcp
from envkit._netstat import PROC_NET_TCP, host_view, listeners
from envkit.errors import EngineError
from envkit.readiness import ContainerState, NotReady, wait_ready


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


def _inspected(running: bool) -> SimpleNamespace:
    """A container handle as runtime's is right after its start: its inspect kept."""
    return SimpleNamespace(attrs={"State": {"Running": running}})


@pytest.mark.parametrize(("fresh", "inspections"), [(True, 0), (False, 1)])
def test_a_fresh_inspect_spares_the_first_failed_probe_its_own(
    fresh: bool, inspections: int,
) -> None:
    target = FakeTarget(exec_codes=[1, 1, 0])
    target.container = _inspected(running=True)  # type: ignore[attr-defined]
    wait_ready(target, [Exec(("true",))], timeout=5, fresh=fresh)
    assert target.exec_codes == [] and target.inspections == inspections


def test_a_container_that_exits_after_its_fresh_inspect_is_still_reported() -> None:
    target = FakeTarget(states=[ContainerState("exited", exit_code=2, oom_killed=True)],
                        log_text="killed", exec_codes=[1] * 10_000)
    target.container = _inspected(running=True)  # type: ignore[attr-defined]
    with pytest.raises(ReadinessTimeoutError) as info:
        wait_ready(target, [Exec(("true",))], timeout=30, fresh=True)
    assert len(target.commands) > 1  # probed a while on the fresh inspect, then looked
    assert (info.value.state, info.value.exit_code, info.value.oom_killed) == ("exited", 2, True)
    assert info.value.log_tail == ["killed"]


def test_a_fresh_inspect_that_shows_an_exit_is_not_trusted_to_wait() -> None:
    target = FakeTarget(states=[ContainerState("exited", exit_code=1)], exec_codes=[1] * 100)
    target.container = _inspected(running=False)  # type: ignore[attr-defined]
    with pytest.raises(ReadinessTimeoutError, match="exit code 1"):
        wait_ready(target, [Exec(("true",))], timeout=30, fresh=True)
    assert len(target.commands) == 1 and target.inspections >= 1


def test_healthy_needs_a_healthcheck() -> None:
    with pytest.raises(NotReady, match="no HEALTHCHECK"):
        Healthy().probe(FakeTarget())
    Healthy().probe(FakeTarget(states=[ContainerState("running", health="healthy")]))


HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
          "   uid  timeout inode")


def _hex(address: str) -> str:
    """The kernel's spelling of *address*: 32-bit words in (little-endian) host order."""
    packed = ipaddress.ip_address(address).packed
    words = struct.unpack(f">{len(packed) // 4}I", packed)
    return "".join(f"{struct.unpack('<I', struct.pack('>I', w))[0]:08X}" for w in words)


def table(*rows: tuple[str, int, str]) -> str:
    """``/proc/net/tcp`` text (and a ``tcp6`` one for IPv6 rows), rows of (address, port, st)."""
    lines = {4: [HEADER], 6: [HEADER]}
    for n, (address, port, state) in enumerate(rows):
        version = ipaddress.ip_address(address).version
        remote = _hex("0.0.0.0" if version == 4 else "::")
        lines[version].append(f"  {n:3d}: {_hex(address)}:{port:04X} {remote}:0000 {state} "
                              "00000000:00000000 00:00000000 00000000     0        0 27431 1")
    return "\n".join(lines[4] + lines[6]) + "\n"


def test_listeners_reads_both_tables_and_only_listening_sockets_on_the_port() -> None:
    text = table(("0.0.0.0", 8080, "0A"), ("127.0.0.11", 40507, "0A"),  # Docker's DNS
                 ("172.18.0.2", 8080, "01"), ("::1", 8080, "0A"), ("::", 9090, "0A"))
    assert listeners(text, 8080) == {"0.0.0.0", "::1"}
    assert listeners(text, 9090) == {"::"}
    assert listeners(text, 40507) == {"127.0.0.11"}
    assert listeners(text, 1234) == set()


def test_listeners_real_kernel_text_and_mapped_addresses() -> None:
    # As a container on this engine printed it: a service bound to 127.0.0.1:9999.
    text = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
            "  timeout inode\n   0: 0100007F:270F 00000000:0000 0A 00000000:00000000 "
            "00:00000000 00000000     0        0 27431 1 00000000c0e7701b 100 0 0 10 0\n")
    assert listeners(text, 9999) == {"127.0.0.1"}
    mapped = HEADER + "\n 0: 0000000000000000FFFF00000100007F:270F 0000:0000 0A 0\n"
    assert listeners(mapped, 9999) == {"127.0.0.1"}


@pytest.mark.parametrize("output", [
    "",
    'OCI runtime exec failed: exec failed: unable to start container process: exec: "cat": '
    "executable file not found in $PATH: unknown\r\n",
    "cat: /proc/net/tcp: No such file or directory\n",
])
def test_listeners_is_none_without_a_socket_table(output: str) -> None:
    assert listeners(output, 8080) is None


def test_listeners_tolerates_a_missing_tcp6_and_garbage_rows() -> None:
    text = table(("0.0.0.0", 8080, "0A")) + "cat: /proc/net/tcp6: No such file\n 9: zz:zz x 0A\n"
    assert listeners(text, 8080) == {"0.0.0.0"}


@given(st.lists(st.tuples(st.ip_addresses(), st.integers(1, 65535),
                          st.sampled_from(["0A", "01", "06"])), max_size=8),
       st.integers(1, 65535))
def test_listeners_finds_exactly_the_listening_addresses(
    rows: list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, str]], port: int,
) -> None:
    def plain(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        mapped = getattr(a, "ipv4_mapped", None)
        return str(mapped or a)

    expected = {plain(a) for a, p, state in rows if p == port and state == "0A"}
    assert listeners(table(*((str(a), p, s) for a, p, s in rows)), port) == expected


@pytest.fixture
def proxy() -> Iterator[tuple[socket.socket, int]]:
    """A listener standing in for docker-proxy: it accepts whatever the container does."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server, server.getsockname()[1]


def test_tcp_counts_an_immediate_close_as_not_ready_without_asking_the_engine(
    proxy: tuple[socket.socket, int],
) -> None:
    """docker-proxy accepts, then closes when nothing listens in the container."""
    server, port = proxy
    target = FakeTarget(ports={"8080/tcp": port})

    def accept_and_close() -> None:
        conn, _ = server.accept()
        conn.close()

    threading.Thread(target=accept_and_close, daemon=True).start()
    with pytest.raises(NotReady, match="closed the connection at once"):
        Tcp(8080, settle=0.5).probe(target)
    assert target.commands == [], "a failed connect must not cost an exec"


@pytest.mark.parametrize(("rows", "error"), [
    ([], "nothing listens on port 8080 inside the container"),
    ([("0.0.0.0", 9090, "0A"), ("172.18.0.2", 8080, "01")], "nothing listens on port 8080"),
    ([("127.0.0.1", 8080, "0A"), ("::1", 8080, "0A")],
     r"only at 127\.0\.0\.1, ::1 inside the container.*listen on 0\.0\.0\.0"),
])
def test_tcp_is_not_ready_while_docker_proxy_answers_for_a_service_that_does_not_listen(
    proxy: tuple[socket.socket, int], rows: list[tuple[str, int, str]], error: str,
) -> None:
    """The lie of issue 14: the published port holds the connection, the service is mute."""
    target = FakeTarget(ports={"8080/tcp": proxy[1]}, sockets=lambda: (0, table(*rows)))
    with pytest.raises(NotReady, match=error):
        Tcp(8080).probe(target)
    assert target.commands == [PROC_NET_TCP]


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "172.18.0.2"])
def test_tcp_is_ready_when_the_service_listens_beyond_loopback(
    proxy: tuple[socket.socket, int], address: str,
) -> None:
    target = FakeTarget(ports={"8080/tcp": proxy[1]},
                        sockets=lambda: (1, table((address, 8080, "0A"))))  # tcp6 missing: 1
    Tcp("8080/tcp").probe(target)


NO_CAT = (126, 'OCI runtime exec failed: exec: "cat": executable file not found in $PATH')


def test_tcp_falls_back_to_a_held_connection_in_an_image_without_cat(
    proxy: tuple[socket.socket, int],
) -> None:
    target = FakeTarget(ports={"8080/tcp": proxy[1]}, sockets=lambda: NO_CAT)
    started = time.monotonic()
    Tcp(8080, settle=0.0).probe(target)  # held open (in the backlog): ready
    assert time.monotonic() - started >= 0.25, "the fallback waits FALLBACK_SETTLE for an EOF"


def test_tcp_fallback_counts_a_late_close_as_not_ready(proxy: tuple[socket.socket, int]) -> None:
    server, port = proxy

    def hold_first_close_second() -> None:
        held = server.accept()[0]  # the probe's first connection, past its settle of 0
        server.accept()[0].close()  # the fallback's: closed, as docker-proxy would
        held.close()

    threading.Thread(target=hold_first_close_second, daemon=True).start()
    target = FakeTarget(ports={"8080/tcp": port}, sockets=lambda: NO_CAT)
    with pytest.raises(NotReady, match="closed the connection at once"):
        Tcp(8080, settle=0.0).probe(target)


def test_tcp_engine_error_during_the_look_inside_is_not_ready(
    proxy: tuple[socket.socket, int],
) -> None:
    def refused() -> tuple[int, str]:
        raise EngineError(action="exec in svc", cause="container is not running")

    target = FakeTarget(ports={"8080/tcp": proxy[1]}, sockets=refused)
    with pytest.raises(NotReady, match="container is not running"):
        Tcp(8080).probe(target)


CONTAINER = "be04666bac4d08df95e351aacddffb7e04f4c211f5d1622d2daf247356565201"


def _proc(root: Path, pid: int, cgroup: str, six: bool = True) -> Path:
    (root / str(pid) / "net").mkdir(parents=True)
    (root / str(pid) / "cgroup").write_text(cgroup)
    (root / str(pid) / "net" / "tcp").write_text(table(("0.0.0.0", 8080, "0A")))
    if six:
        (root / str(pid) / "net" / "tcp6").write_text(table(("::1", 9090, "0A")))
    return root


def _container(pid: object, ident: object = CONTAINER) -> SimpleNamespace:
    return SimpleNamespace(container=SimpleNamespace(attrs={"Id": ident, "State": {"Pid": pid}}))


def test_host_view_reads_the_container_init_process_tables(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 4242, f"0::/system.slice/docker-{CONTAINER}.scope\n")
    view = host_view(_container(4242), proc=proc)
    assert view is not None
    assert listeners(view, 8080) == {"0.0.0.0"} and listeners(view, 9090) == {"::1"}
    no_six = _proc(tmp_path / "v4", 7, f"4:memory:/docker/{CONTAINER}\n", six=False)
    assert listeners(host_view(_container(7), proc=no_six) or "", 8080) == {"0.0.0.0"}
    assert listeners(host_view(_container(4242), tables=("tcp6",), proc=proc) or "",
                     8080) == set()


@pytest.mark.parametrize("target", [
    _container(4242, "0" * 64),  # the PID is another container's (or reused): not ours
    _container(4243),  # no such process here: a remote engine, another PID namespace
    _container(0),  # not started, or already exited
    _container("4242"), _container(4242, None), _container(4242, CONTAINER[:12]),
    SimpleNamespace(), SimpleNamespace(container=SimpleNamespace(attrs=None)),
], ids=["other-cgroup", "no-process", "pid-0", "pid-str", "no-id", "short-id", "not-a-container",
        "no-attrs"])
def test_host_view_refuses_to_vouch_for_anything_but_the_container(
    tmp_path: Path, target: object,
) -> None:
    proc = _proc(tmp_path, 4242, f"0::/docker/{CONTAINER}\n")
    assert host_view(target, proc=proc) is None


def test_tcp_prefers_the_host_view_and_skips_the_exec(
    proxy: tuple[socket.socket, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the engine local, the look inside costs no exec, and loopback is still refused."""
    target = FakeTarget(ports={"8080/tcp": proxy[1], "9090/tcp": proxy[1]})
    read: list[tuple[str, ...]] = []
    kernel = {"tcp": table(("0.0.0.0", 8080, "0A"), ("127.0.0.1", 9090, "0A")),
              "tcp6": table(("::1", 9090, "0A"), ("::", 7070, "0A"))}

    def view(_: object, *, tables: tuple[str, ...]) -> str:
        read.append(tables)
        return "".join(kernel[name] for name in tables)

    monkeypatch.setattr("envkit.readiness.host_view", view)
    Tcp(8080).probe(target)
    assert read == [("tcp",)], "a listener found in tcp spares the walk of tcp6"
    with pytest.raises(NotReady, match=r"only at 127\.0\.0\.1, ::1 inside the container"):
        Tcp(9090).probe(target)
    Tcp(7070).probe(FakeTarget(ports={"7070/tcp": proxy[1]}))  # IPv6 only: found in tcp6
    assert target.commands == []
