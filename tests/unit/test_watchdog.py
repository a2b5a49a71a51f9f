"""The watchdog's bookkeeping: one per owner and engine, each told how to reach its engine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from envkit import _watchdog


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str, Any]]]:
    """Record spawns instead of starting processes; start from no watchdogs."""
    calls: list[tuple[str, str, Any]] = []

    def fake_spawn(owner: str, *, docker_host: str,
                   environ: Mapping[str, str] | None = None) -> Any:
        calls.append((owner, docker_host, environ))
        return object()

    monkeypatch.setattr(_watchdog, "spawn", fake_spawn)
    monkeypatch.setattr(_watchdog, "_running", {})
    monkeypatch.setattr(_watchdog, "_fork_hook", [True])  # no real at-fork hook in tests
    yield calls


def test_one_watchdog_per_owner_and_engine(spawned: list[tuple[str, str, Any]]) -> None:
    first = _watchdog.ensure("h:1", docker_host="unix:///var/run/docker.sock")
    assert _watchdog.ensure("h:1", docker_host="unix:///var/run/docker.sock") is first
    second = _watchdog.ensure("h:1", docker_host="tcp://build-box:2376")
    assert second is not first
    assert [(o, h) for o, h, _ in spawned] == [
        ("h:1", "unix:///var/run/docker.sock"), ("h:1", "tcp://build-box:2376")]


def test_ensure_passes_the_owners_environment_on(spawned: list[tuple[str, str, Any]]) -> None:
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs"}
    _watchdog.ensure("h:1", docker_host="tcp://build-box:2376", environ=env)
    assert spawned[0][2] == env


def test_engine_env_carries_exactly_the_owners_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", "/mine")
    monkeypatch.setenv("DOCKER_HOST", "tcp://first:2376")
    monkeypatch.setenv("PATH_MARKER", "kept")
    tls = _watchdog.engine_env("tcp://second:2376",
                               {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/second"})
    assert (tls["DOCKER_HOST"], tls["DOCKER_CERT_PATH"], tls["DOCKER_TLS_VERIFY"]) == (
        "tcp://second:2376", "/second", "1")
    assert tls["PATH_MARKER"] == "kept"
    plain = _watchdog.engine_env("unix:///var/run/docker.sock", {})
    assert "DOCKER_TLS_VERIFY" not in plain and "DOCKER_CERT_PATH" not in plain
    inherited = _watchdog.engine_env("tcp://first:2376")
    assert (inherited["DOCKER_CERT_PATH"], inherited["DOCKER_TLS_VERIFY"]) == ("/mine", "1")
