"""Each fault of ``Stack`` on the real engine, through the public API only."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from envkit import Http, ReadinessTimeoutError, ServiceSpec, StackSpec, StackStateError, _proxy
from envkit.demo import TESTSVC, demo


def _get(url: str, timeout: float = 5.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return dict(json.load(response))


def _refused(url: str) -> bool:
    try:
        _get(url, timeout=2.0)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return True
    return False


def test_stop_then_start_refreshes_the_endpoints(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(demo())
    before = stack.endpoint("web", 8080)
    stack.stop("web")
    assert stack.container("web").status == "exited"
    assert _refused(stack.url("web", 8080))
    stack.start("web")
    after = stack.endpoint("web", 8080)
    published = stack.container("web").attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]
    assert after == ("127.0.0.1", int(published["HostPort"]))
    # Docker hands out a fresh ephemeral port on start: the stack followed it.
    assert after != before
    assert _get(stack.url("web", 8080))["service"] == "web"
    assert _get(stack.url("client", 8080))["upstream"]["service"] == "web"


def test_kill_is_a_crash_and_start_brings_it_back(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(demo())
    stack.kill("web")
    state = stack.container("web").attrs["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    assert _get_status(stack.url("client", 8080)) == 502  # the dependent notices
    stack.start("web")
    assert _get(stack.url("client", 8080))["upstream"] == {"service": "web", "ok": True}


def _get_status(url: str, timeout: float = 8.0) -> int | None:
    """The HTTP status *url* answers, or None when it does not answer in time."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except TimeoutError:
        return None


def test_kill_with_sigterm_stops_a_service_that_honours_it(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(demo())
    stack.kill("web", "SIGTERM")
    deadline = time.monotonic() + 10
    while stack.container("web").status == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        stack.container("web").reload()
    stack.container("web").reload()
    assert stack.container("web").status == "exited"


def test_pause_hangs_clients_and_unpause_answers(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(demo())
    stack.pause("web")
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        _get(stack.url("web", 8080), timeout=1.0)
    stack.unpause("web")
    assert _get(stack.url("web", 8080))["ok"] is True


def test_restart_picks_up_new_ports(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(demo())
    before = stack.endpoint("web", 8080)
    stack.restart("web")
    assert stack.endpoint("web", 8080) != before
    assert _get(stack.url("web", 8080))["ok"] is True


def test_disconnect_cuts_peers_off_and_reconnect_restores_the_alias(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(demo())
    stack.disconnect("web")
    assert _get_status(stack.url("client", 8080)) == 502
    assert not stack.exec("client", ["getent", "hosts", "web"]).ok
    stack.reconnect("web")
    assert stack.exec("client", ["getent", "hosts", "web"]).ok
    assert _get(stack.url("client", 8080))["upstream"]["service"] == "web"
    assert _get(stack.url("web", 8080))["ok"] is True  # its new host port was read


@pytest.mark.parametrize("how", ["stop", "kill", "pause", "disconnect"])
def test_outage_block(envkit_stack_factory, how: str) -> None:
    stack = envkit_stack_factory(demo())
    with stack.outage("web", how=how):  # type: ignore[arg-type]
        # A paused upstream hangs the client's own 5 s request: 502 after it, or our timeout.
        assert _get_status(stack.url("client", 8080)) in ((502, None) if how == "pause"
                                                           else (502,))
    assert _get(stack.url("client", 8080))["upstream"]["service"] == "web"


def test_exec_and_logs_since(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(demo())
    result = stack.exec("web", "echo out; echo err >&2; exit 4")
    assert result.exit_code == 4 and not result.ok
    assert "out" in result.output and "err" in result.output
    assert stack.exec("web", ["id", "-u"]).ok
    time.sleep(1.1)  # Docker's `since` has whole-second resolution on some engines
    since = time.time()
    _get(stack.url("web", 8080, path="/health"))
    deadline = time.monotonic() + 5  # the server logs the request after answering it
    while "GET /health" not in (recent := stack.logs("web", since=since)):
        assert time.monotonic() < deadline, recent
        time.sleep(0.05)
    assert recent.count("\n") < stack.logs("web").count("\n")  # readiness probes came before
    assert stack.logs("web", tail=1).count("\n") <= 1


def test_wait_ready_reports_an_exit_with_its_time_and_code(envkit_stack_factory) -> None:
    spec = StackSpec(name="flaky", services=[
        ServiceSpec(name="api", image=TESTSVC, ports=[8080], ready=[Http(8080, "/health")],
                    command=["sh", "-c", "if [ -e /tmp/broken ]; then echo bad config >&2; "
                             "exit 3; fi; exec python3 /app/svc.py serve --port 8080"]),
    ])
    stack = envkit_stack_factory(spec)
    stack.exec("api", "touch /tmp/broken")
    stack.stop("api")
    with pytest.raises(ReadinessTimeoutError) as info:
        stack.start("api")
    err = info.value
    assert err.exit_code == 3 and err.ran_for is not None and err.ran_for < 5
    assert f"exited after {err.ran_for:.1f} s (exit code 3)" in str(err)
    assert "not ready after" not in str(err) and "bad config" in err.log_tail


def test_degrade_adds_latency_for_host_and_peers(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(demo())
    direct = stack.endpoint("web", 8080)
    with stack.degrade("web", 8080, latency=0.3) as degraded:
        proxied = degraded.endpoint()
        assert stack.endpoint("web", 8080) == proxied != direct
        started = time.monotonic()
        assert _get(stack.url("web", 8080))["service"] == "web"
        assert time.monotonic() - started >= 0.6  # 0.3 s each way
        started = time.monotonic()
        assert _get(stack.url("client", 8080))["upstream"]["service"] == "web"
        assert time.monotonic() - started >= 0.6  # the peer went through the proxy too
    # Restored: web's own endpoint again and no proxy (a bound on time would be a
    # timed assertion that a loaded runner fails; the proxy's absence is the proof).
    assert stack.endpoint("web", 8080) != proxied
    assert _get(stack.url("client", 8080))["upstream"]["service"] == "web"
    assert "web-proxy" not in stack.describe()["services"]


def test_degrade_resets_connections_and_limits_bandwidth(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(demo())
    with stack.degrade("web", 8080, reset_after=0.5, takeover=False):
        host, port = stack.endpoint("web", 8080)
        with socket.create_connection((host, port), timeout=5) as sock:
            time.sleep(1.0)
            with pytest.raises(ConnectionResetError):
                sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if not sock.recv(1024):
                    raise ConnectionResetError("closed")


BLOB = ServiceSpec(name="files", image=TESTSVC, ports=[8080], ready=[Http(8080, "/blob")],
                   command=["sh", "-c", "head -c 40000 /dev/zero > /tmp/blob && cd /tmp && "
                            "exec python3 -m http.server 8080"])


def test_degrade_limits_bandwidth(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(StackSpec(name="blob", services=[BLOB]))
    with stack.degrade("files", 8080, bandwidth=20_000, takeover=False):
        started = time.monotonic()
        with urllib.request.urlopen(stack.url("files", 8080, path="/blob"), timeout=20) as r:
            assert len(r.read()) == 40_000
        assert time.monotonic() - started >= 1.2  # 40 kB at 20 kB/s, in 16 kB chunks
    with urllib.request.urlopen(stack.url("files", 8080, path="/blob"), timeout=20) as r:
        assert len(r.read()) == 40_000
    assert "files-proxy" not in stack.describe()["services"]


def test_degrade_twice_is_refused(envkit_stack_factory) -> None:
    stack = envkit_stack_factory(demo())
    with (stack.degrade("web", 8080, latency=0.01, takeover=False),
          pytest.raises(StackStateError, match="already degraded")):
        stack.degrade("web", 8080, latency=0.01)


def test_a_degrade_that_fails_leaves_the_stack_as_it_was(
    envkit_stack_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = envkit_stack_factory(demo())

    def never_ready(*args: object, **kwargs: object) -> None:
        raise ReadinessTimeoutError(service="web-proxy", check="log", timeout=0.0,
                                    last_error="made to fail", state="running", exit_code=None,
                                    oom_killed=False, log_tail=[])

    monkeypatch.setattr(_proxy, "wait_ready", never_ready)
    with pytest.raises(ReadinessTimeoutError):
        stack.degrade("web", 8080, latency=0.1)
    monkeypatch.undo()
    # Its endpoint is web's own again (moved back, so possibly a new host port).
    assert _get(stack.url("web", 8080))["service"] == "web"
    assert not stack.engine.client.containers.list(
        all=True, filters={"name": f"{stack.network}-web-proxy"})
    # The dependent reaches web by its name again, and web can be degraded anew.
    assert _get(stack.url("client", 8080))["upstream"]["service"] == "web"
    with stack.degrade("web", 8080, latency=0.1):
        assert _get(stack.url("client", 8080))["upstream"]["service"] == "web"
