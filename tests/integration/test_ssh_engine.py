"""An ``ssh://`` engine: a stack comes up through ssh, its ports answer, nothing is left.

A private sshd (see :mod:`sshd`) on 127.0.0.1 leads to this machine's own engine, so the
stack's images are already there and the URL's host is loopback: ports publish on
127.0.0.1 and are reached there, as for the local socket (a remote ssh host would
publish on all its interfaces and be reached at its name, README: Several engines).
A key the server does not know gives one EngineUnavailableError naming the URL and fix.

A daemon on another socket is reached by ``DOCKER_HOST`` on the remote side (sshd's
``SetEnv``): a private second ``dockerd`` (see :mod:`dockerd`), listed beside the main
engine in ``ENVKIT_DOCKER_HOSTS``, gets its images from the main one through ssh (``docker
save | load``) and runs a stack.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator

import docker
import dockerd
import pytest
import sshd

from envkit import labels, reaper
from envkit.errors import EngineUnavailableError
from envkit.inventory import list_resources, list_stacks
from envkit.session import Envkit


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[sshd.Sshd]:
    """A private sshd, its ``ssh`` wrapper first on PATH (for envkit and its watchdog)."""
    with sshd.running() as running:
        monkeypatch.setenv("PATH", f"{running.bin_dir}{os.pathsep}{os.environ['PATH']}")
        yield running


def _kit(url: str, envkit_session: Envkit) -> Envkit:
    environ = {k: v for k, v in os.environ.items() if k != "ENVKIT_DOCKER_HOSTS"}
    environ.update(DOCKER_HOST=url, ENVKIT_SESSION=f"ssh{uuid.uuid4().hex[:8]}")
    return Envkit.from_env(environ, root=envkit_session.settings.root)


def test_a_stack_comes_up_on_an_ssh_engine_and_leaves_nothing(
    server: sshd.Sshd, envkit_session: Envkit
) -> None:
    envkit_session.images.ensure_base()
    main = envkit_session.engine.client
    kit = _kit(server.url, envkit_session)
    engine = kit.engine
    assert (engine.docker_host, engine.remote, engine.host_address) == (
        server.url, False, "127.0.0.1")
    try:
        with kit.stack(kit.spec("demo")) as stack:
            url = stack.url("client", 8080)
            assert url.startswith("http://127.0.0.1:"), url
            with urllib.request.urlopen(url, timeout=10) as answer:
                assert json.load(answer)["upstream"]["ok"] is True
            # Seen from the engine's own socket, not through ssh: bound to loopback only.
            found = main.containers.list(filters=labels.selector(session=kit.session))
            bound = {b["HostIp"] for c in found
                     for bindings in c.attrs["NetworkSettings"]["Ports"].values()
                     for b in bindings or ()}
            assert bound == {"127.0.0.1"}, bound
    finally:
        reaper.remove_stacks(engine, list_stacks(engine.client, selector=labels.selector(
            session=kit.session)))
        engine.client.close()
    assert list_resources(main, session=kit.session) == []


def test_an_ssh_engine_that_refuses_the_login_names_the_url_and_the_fix(
    server: sshd.Sshd, envkit_session: Envkit
) -> None:
    url = f"ssh://envkit-nobody@127.0.0.1:{server.port}"
    with pytest.raises(EngineUnavailableError) as caught:
        _ = _kit(url, envkit_session).engine
    text = str(caught.value)
    assert url in text and f"docker -H {url} info" in text, text
    assert "known_hosts" in text and "ssh-agent" in text, text


@pytest.fixture(scope="module")
def second_engine() -> Iterator[dockerd.Dockerd]:
    """A private dockerd (index apart from test_engines' and test_subnets')."""
    with dockerd.running(index=dockerd.worker_index(20)) as engine:
        yield engine


def test_a_daemon_on_another_socket_is_reached_by_a_remote_docker_host_and_fed_by_save_load(
    second_engine: dockerd.Dockerd, envkit_session: Envkit, monkeypatch: pytest.MonkeyPatch,
) -> None:
    envkit_session.images.ensure_base()
    main = envkit_session.engine.docker_host
    with sshd.running(docker_host=second_engine.url) as server:
        monkeypatch.setenv("PATH", f"{server.bin_dir}{os.pathsep}{os.environ['PATH']}")
        environ = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
        environ.update(ENVKIT_DOCKER_HOSTS=f"{main},{server.url}",
                       ENVKIT_SUBNETS=second_engine.pool,
                       ENVKIT_SESSION=f"ssh{uuid.uuid4().hex[:8]}")
        kit = Envkit.from_env(environ, worker="gw1", root=envkit_session.settings.root)
        engine = kit.engine
        behind = docker.DockerClient(base_url=second_engine.url)
        try:
            assert engine.docker_host == server.url
            # Through ssh, the second daemon answers, not the main one.
            assert engine.client.info()["DockerRootDir"] == str(second_engine.data_root)
            with kit.stack(kit.spec("demo")) as stack:
                with urllib.request.urlopen(stack.url("client", 8080), timeout=10) as answer:
                    assert json.load(answer)["upstream"]["ok"] is True
                assert list_resources(behind, session=kit.session)
        finally:
            reaper.remove_stacks(engine, list_stacks(engine.client, selector=labels.selector(
                session=kit.session)))
            engine.client.close()
        assert list_resources(behind, session=kit.session) == []
        behind.close()
