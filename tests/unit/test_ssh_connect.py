"""ssh:// engines: the ssh binary is used, and each way of failing says its own fix."""

from __future__ import annotations

import docker
import pytest

from envkit import _engine
from envkit.errors import EngineUnavailableError

URL = "ssh://ci@build-2:2222"


class Client:
    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


def test_an_ssh_url_goes_through_the_ssh_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []

    def from_env(**kwargs: object) -> Client:
        seen.append(kwargs.get("use_ssh_client"))
        return Client()

    monkeypatch.setattr(docker, "from_env", from_env)
    monkeypatch.setattr(_engine.shutil, "which", lambda _: "/usr/bin/ssh")
    engine = _engine.connect({"DOCKER_HOST": URL})
    _engine.connect({"DOCKER_HOST": "unix:///x.sock"})
    assert seen == [True, False]
    assert (engine.remote, engine.host_address, engine.publish_ip) == (True, "build-2", "0.0.0.0")


def test_a_refused_ssh_login_is_tried_once_and_names_the_url_and_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tries: list[int] = []

    def from_env(**_: object) -> Client:
        tries.append(1)
        raise docker.errors.DockerException("Error while fetching server API version") \
            from BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(docker, "from_env", from_env)
    monkeypatch.setattr(_engine.shutil, "which", lambda _: "/usr/bin/ssh")
    with pytest.raises(EngineUnavailableError) as caught:
        _engine.connect({"DOCKER_HOST": URL})
    assert tries == [1]
    assert caught.value.docker_host == URL
    assert f"docker -H {URL} info" in caught.value.fix and "known_hosts" in caught.value.fix


def test_no_ssh_client_and_no_paramiko_each_name_their_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_engine.shutil, "which", lambda _: None)
    with pytest.raises(EngineUnavailableError, match="no `ssh` client") as caught:
        _engine.connect({"DOCKER_HOST": URL})
    assert "openssh-client" in caught.value.fix

    def from_env(**_: object) -> Client:
        raise docker.errors.DockerException("Install paramiko package to enable ssh:// support")

    monkeypatch.setattr(_engine.shutil, "which", lambda _: "/usr/bin/ssh")
    monkeypatch.setattr(docker, "from_env", from_env)
    with pytest.raises(EngineUnavailableError) as caught:
        _engine.connect({"DOCKER_HOST": URL})
    assert "envkit[ssh]" in caught.value.fix
