"""A service's secrets stay out of the errors that quote its log or its probes' output.

Readiness and dependency errors quote the container's log tail, and errors travel into
CI logs, pytest's failure reports and ``failure.txt`` artifacts. A service that prints
its configuration (many do, at start) would put its JWT secret there. The handle
``create_service`` returns is driven here against a scripted container: no Docker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import docker
import pytest

from envkit import Exec, Http, LogLine, ReadinessTimeoutError
from envkit._containers import ServiceHandle, create_service
from envkit.readiness import wait_ready
from envkit.spec import ServiceSpec

SECRET = "s3cr3t-jwt-value-0123456789"
TOKEN = "tok-abcdef-987654"


class _Container:
    """A container whose log prints its configuration, secret included."""

    def __init__(self, status: str) -> None:
        self.attrs: dict[str, Any] = {
            "State": {"Status": status, "ExitCode": 0 if status == "running" else 1},
            "NetworkSettings": {"Ports": {}}}

    def reload(self) -> None:
        """Nothing to re-read: the state is scripted."""

    def logs(self) -> bytes:
        return (f"starting\nconfig: CAMERA_SERVICE_JWT_SECRET={SECRET} "
                f"API_TOKEN={TOKEN}\nlistening\n").encode()

    def exec_run(self, command: list[str]) -> SimpleNamespace:
        return SimpleNamespace(exit_code=1, output=f"env: API_TOKEN={TOKEN}\n".encode())


class _Api:
    """docker-py's low-level API for the pure request builders; create and start scripted."""

    def __init__(self) -> None:
        self._real = docker.APIClient(base_url="unix:///nonexistent", version="1.41")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def create_container(self, **kwargs: Any) -> dict[str, str]:
        return {"Id": "c0ffee"}

    def start(self, ident: str) -> None:
        """Nothing to start: the container is scripted."""


def _handle(status: str) -> ServiceHandle:
    container = _Container(status)
    engine = SimpleNamespace(
        client=SimpleNamespace(api=_Api(), containers=SimpleNamespace(get=lambda _: container)),
        host_address="127.0.0.1", publish_ip="127.0.0.1")
    spec = ServiceSpec(name="camera", image="img", environment={
        "CAMERA_SERVICE_JWT_SECRET": SECRET, "API_TOKEN": TOKEN, "LOG_LEVEL": "debug"})
    return create_service(engine=engine, spec=spec, image="img",  # type: ignore[arg-type]
                          network="net", labels={}, container_name="stack-camera")


def test_a_readiness_error_quotes_the_log_without_the_service_s_secrets() -> None:
    with pytest.raises(ReadinessTimeoutError) as info:
        wait_ready(_handle("exited"), [LogLine("never")], timeout=5)
    text = str(info.value)
    assert "listening" in text and "config: CAMERA_SERVICE_JWT_SECRET=<redacted>" in text
    assert SECRET not in text and TOKEN not in text, text
    assert not any(SECRET in line or TOKEN in line for line in info.value.log_tail)


def test_a_failed_probe_s_output_is_redacted_too() -> None:
    with pytest.raises(ReadinessTimeoutError) as info:
        wait_ready(_handle("running"), [Exec(("env",))], timeout=0.3)
    assert "API_TOKEN=<redacted>" in info.value.last_error, info.value.last_error
    assert TOKEN not in str(info.value)


def test_the_handle_s_log_which_dependency_errors_quote_is_redacted() -> None:
    logs = _handle("exited").logs()
    assert SECRET not in logs and TOKEN not in logs and "listening" in logs


class _ConfigPage(BaseHTTPRequestHandler):
    """Answers 200 with a status page that echoes the configuration, secret first."""

    def do_GET(self) -> None:
        body = f'{{"jwt_secret": "{SECRET}", "state": "starting"}}'.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test's output is the error under test."""


@pytest.fixture
def config_page() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ConfigPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_an_http_check_s_unsatisfied_body_is_quoted_without_the_secret(
        config_page: int) -> None:
    handle = _handle("running")
    handle.ports = {"8080/tcp": config_page}
    check = Http(8080, "/status", body=lambda text: '"state": "ready"' in text)
    with pytest.raises(ReadinessTimeoutError) as info:
        wait_ready(handle, [check], timeout=0.5)
    # The body is still quoted (it says why the predicate failed), the secret cut out.
    assert 'jwt_secret": "<redacted>", "state": "starting' in info.value.last_error, \
        info.value.last_error
    assert SECRET not in str(info.value) and SECRET not in info.value.last_error
