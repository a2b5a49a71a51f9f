"""What envkit promises about the stack: its own ports, its own secret, its own worker."""

from __future__ import annotations

import os
from typing import Any

from appclient import get_json

FIXED_PORTS = {8002, 8003, 8554, 9997}


def test_mediamtx_api_reachable_from_the_host(envkit_stack: Any) -> None:
    status, body = get_json(envkit_stack.url("mediamtx", 9997, path="/v3/paths/list"))
    assert status == 200, body
    assert "items" in body


def test_ports_are_ephemeral_on_loopback(envkit_stack: Any) -> None:
    # 8002, 8003, 8554 and 9997 may be taken on this host (CI holds them on purpose):
    # every published port is one Docker picked, bound to 127.0.0.1 only.
    published = {s.name: envkit_stack.ports(s.name) for s in envkit_stack.spec.services}
    assert published["app"].keys() >= {"8002/tcp", "8003/tcp"}
    assert "9997/tcp" in published["mediamtx"]
    for service, ports in published.items():
        for container_port in ports:
            host, host_port = envkit_stack.endpoint(service, container_port)
            assert host == "127.0.0.1", (service, container_port, host)
            assert host_port not in FIXED_PORTS, (service, container_port, host_port)


def test_stack_is_this_workers_own(envkit_stack: Any, worker_id: str) -> None:
    # pytest-xdist says "master" when it is not distributing; envkit labels that "main".
    worker = "main" if worker_id == "master" else worker_id
    assert f"-{worker}-" in envkit_stack.id
    session = os.environ.get("ENVKIT_SESSION")
    if session:
        assert envkit_stack.id.startswith(f"{session}-{worker}-")


def test_secret_is_generated_and_environment_interpolated(envkit_stack: Any) -> None:
    env = envkit_stack.spec.service("app").environment
    assert "${" not in env["APP_JWT_SECRET"]
    assert len(env["APP_JWT_SECRET"]) >= 16
    assert env["MEDIAMTX_URL"] == os.environ.get("MEDIAMTX_URL", "http://mediamtx:9997")
