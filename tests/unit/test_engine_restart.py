"""A restarting engine (connections refused) is waited out for a bounded time."""

from __future__ import annotations

import http.client

import docker
import pytest
import requests
import urllib3.exceptions

from envkit import EngineError, EngineUnavailableError, _engine


def _refused() -> requests.exceptions.ConnectionError:
    # What docker-py raises when nothing listens on the socket: requests over urllib3.
    return requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError(
        "Connection aborted.", ConnectionRefusedError(111, "Connection refused")))


def _reset() -> requests.exceptions.ConnectionError:
    return requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError(
        "Connection aborted.", http.client.RemoteDisconnected("closed")))


def test_refused_is_told_from_a_reset() -> None:
    assert _engine.refused(_refused())
    assert _engine.refused(requests.exceptions.ConnectionError(FileNotFoundError(2, "x")))
    assert not _engine.refused(_reset())
    assert not _engine.refused(ValueError("x"))


def test_a_refusing_engine_is_retried_past_the_attempts_until_it_answers() -> None:
    tries: list[int] = []

    def restarting() -> str:
        tries.append(1)
        if len(tries) < 6:
            raise _refused()
        return "ok"

    assert _engine.call("list containers", restarting, attempts=4) == "ok"
    assert len(tries) == 6


def test_the_wait_for_a_restart_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_engine, "RESTART_WINDOW", 0.5)
    tries: list[int] = []

    def down() -> None:
        tries.append(1)
        raise _refused()

    with pytest.raises(EngineError, match="Connection refused"):
        _engine.call("list containers", down, attempts=2)
    assert 2 <= len(tries) <= 4


@pytest.mark.parametrize(("error", "attempts", "tries"), [
    (_reset, 3, 3),     # a reset may have reached the engine: only the attempts
    (_refused, 1, 1),   # a single-shot request (exec) stays single
])
def test_other_failures_keep_their_attempts(error, attempts: int, tries: int) -> None:
    seen: list[int] = []

    def failing() -> None:
        seen.append(1)
        raise error()

    with pytest.raises(EngineError):
        _engine.call("x", failing, attempts=attempts)
    assert len(seen) == tries


def test_connect_retries_a_reset_but_not_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    tries: list[int] = []

    class Client:
        def ping(self) -> bool:
            return True

        def close(self) -> None:
            pass

    def from_env(**_: object) -> Client:
        tries.append(1)
        if len(tries) == 1:
            raise docker.errors.DockerException("Error while fetching server API version") \
                from _reset()
        return Client()

    monkeypatch.setattr(docker, "from_env", from_env)
    _engine.connect({"DOCKER_HOST": "unix:///x.sock"})
    assert len(tries) == 2

    def refusing(**_: object) -> Client:
        tries.append(1)
        raise docker.errors.DockerException("Error while fetching server API version") \
            from _refused()

    tries.clear()
    monkeypatch.setattr(docker, "from_env", refusing)
    with pytest.raises(EngineUnavailableError):
        _engine.connect({"DOCKER_HOST": "unix:///x.sock"})
    assert len(tries) == 1


def test_an_engine_that_stays_away_is_named_in_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_engine, "RESTART_WINDOW", 0.2)

    def down() -> None:
        raise _refused()

    with pytest.raises(EngineError, match="check that dockerd runs"):
        _engine.call("create network n", down, fix="check the network's name")
