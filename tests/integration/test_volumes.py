"""Volumes, bind mounts and file copies on the real engine."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from envkit import EnvkitError, Http, ServiceSpec, Stack, StackSpec, labels
from envkit.demo import TESTSVC
from envkit.session import Envkit
from envkit.stackfile import load_stack_file


def _service(name: str, **kw: object) -> ServiceSpec:
    return ServiceSpec(name=name, image=TESTSVC, ports=[8080],
                       ready=[Http(8080, "/health")], **kw)  # type: ignore[arg-type]


def _sh(stack: Stack, service: str, script: str) -> tuple[int, str]:
    # As root (still without capabilities): testsvc runs as nobody, and a new volume's
    # directory, like the bind mounts' host directories here, belongs to root.
    result = stack.container(service).exec_run(["sh", "-c", script], user="0")
    return int(result.exit_code), bytes(result.output).decode()


def test_a_named_volume_is_shared_survives_a_restart_and_goes_with_the_stack(
    envkit_session: Envkit,
) -> None:
    spec = StackSpec(name="vols", services=[
        _service("writer", volumes=["data:/data"]),
        _service("reader", volumes=["data:/shared:ro"]),
    ])
    client = envkit_session.engine.client
    with envkit_session.stack(spec) as stack:
        volume = client.volumes.get(stack.volume("data"))
        assert volume.attrs["Labels"][labels.STACK] == stack.id
        assert _sh(stack, "writer", "echo kept > /data/file") == (0, "")
        assert _sh(stack, "reader", "cat /shared/file") == (0, "kept\n")
        code, out = _sh(stack, "reader", "echo x > /shared/other")
        assert code != 0 and "Read-only file system" in out
        stack.restart("writer")
        assert _sh(stack, "writer", "cat /data/file") == (0, "kept\n")
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(stack.volume("data"))


def test_a_stack_file_with_a_relative_bind_mount_and_options(
    envkit_session: Envkit, tmp_path: Path
) -> None:
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "clip.txt").write_text("frames\n")
    (tmp_path / "out").mkdir()
    path = tmp_path / "stack.yml"
    path.write_text(textwrap.dedent("""
        name: binds
        services:
          web:
            use: testsvc
            environment: {TOKEN: '${secret:token}'}
            volumes: [./fixtures:/fixtures:ro, ./out:/out]
    """))
    # The block resolver a kit registry supplies, reduced to the one block used here.
    spec = load_stack_file(path, environ={}, services=lambda block, options: _service(block))
    with envkit_session.stack(spec) as stack:
        assert _sh(stack, "web", "cat /fixtures/clip.txt") == (0, "frames\n")
        assert _sh(stack, "web", "echo recorded > /out/rec.txt")[0] == 0
        assert _sh(stack, "web", 'printf %s "$TOKEN"') == (
            0, spec.service("web").environment["TOKEN"])
        config = stack.container("web").attrs["HostConfig"]
        assert config["Init"] is True and config["SecurityOpt"] == ["no-new-privileges"]
        assert {m["Target"]: m.get("ReadOnly", False) for m in config["Mounts"]} == {
            "/fixtures": True, "/out": False}
        bindings = config["PortBindings"]["8080/tcp"]
        assert bindings == [{"HostIp": "127.0.0.1", "HostPort": ""}]
    assert (tmp_path / "out" / "rec.txt").read_text() == "recorded\n"


@pytest.fixture(scope="module")
def one(envkit_session: Envkit) -> Iterator[Stack]:
    with envkit_session.stack(StackSpec(name="copies", services=[_service("web")])) as stack:
        yield stack


def test_copy_to_and_back_round_trips_files_and_directories(one: Stack, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a\n")
    (tree / "sub" / "b.bin").write_bytes(bytes(range(256)))
    (tree / "run.sh").write_text("#!/bin/sh\n")
    (tree / "run.sh").chmod(0o755)
    one.copy_to("web", tree, "/tmp/tree")
    one.copy_to("web", tree / "a.txt", "/tmp/")
    one.copy_to("web", tree / "a.txt", "/tmp/renamed.txt")
    assert _sh(one, "web", "cat /tmp/tree/a.txt /tmp/a.txt /tmp/renamed.txt") == (0, "a\na\na\n")
    assert _sh(one, "web", "test -x /tmp/tree/run.sh && stat -c %U /tmp/tree/a.txt") == (
        0, "root\n")

    back = one.copy_from("web", "/tmp/tree", tmp_path / "back")
    assert back == tmp_path / "back"
    assert (back / "a.txt").read_text() == "a\n"
    assert (back / "sub" / "b.bin").read_bytes() == bytes(range(256))
    assert (back / "run.sh").stat().st_mode & 0o100
    into = tmp_path / "into"
    into.mkdir()
    assert one.copy_from("web", "/tmp/renamed.txt", into) == into / "renamed.txt"
    assert (into / "renamed.txt").read_text() == "a\n"


def test_copy_errors_say_what_to_do(one: Stack, tmp_path: Path) -> None:
    with pytest.raises(EnvkitError) as info:
        one.copy_to("web", tmp_path / "absent", "/tmp/x")
    assert "no such file or directory on this host" in str(info.value)
    (tmp_path / "f").write_text("x")
    with pytest.raises(EnvkitError) as info:
        one.copy_to("web", tmp_path / "f", "/no/such/dir/f")
    assert "fix: check that the directory /no/such/dir exists in the container" in str(
        info.value)
    with pytest.raises(EnvkitError) as info:
        one.copy_from("web", "/no/such/file", tmp_path / "g")
    assert "fix: check that /no/such/file exists in the container" in str(info.value)
    with pytest.raises(EnvkitError, match="the container path is not absolute"):
        one.copy_to("web", tmp_path / "f", "relative")
