"""Each bad spec input fails at construction with service, field, value and fix."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from envkit import Build, Device, Http, Port, ServiceSpec, SpecError, StackSpec, Tcp
from envkit._containers import check_host_paths
from envkit.spec import Mount


def svc(name: str = "web", **kw: object) -> ServiceSpec:
    kw.setdefault("image", "img:1")
    return ServiceSpec(name=name, **kw)  # type: ignore[arg-type]


def test_valid_spec_normalizes_fields() -> None:
    spec = StackSpec(name="s", services=[
        svc("web", ports=[8080, "8554/udp"], devices=["/dev/video0", "/dev/zero:/dev/video1:r"],
            ready=[Http(8080)], aliases="www", environment={"A": 1}),
        svc("client", depends_on="web"),
    ])
    web = spec.service("web")
    assert web.ports == (Port(8080, "tcp"), Port(8554, "udp"))
    assert web.devices == (Device("/dev/video0", "/dev/video0", "rwm"),
                           Device("/dev/zero", "/dev/video1", "r"))
    assert web.aliases == ("www",)
    assert web.environment == {"A": "1"}
    assert [s.name for s in spec.start_order()] == ["web", "client"]


def test_duplicate_service_name() -> None:
    with pytest.raises(SpecError) as info:
        StackSpec(name="s", services=[svc("web"), svc("web")])
    assert str(info.value) == (
        "stack 's', service 'web': field 'name' = 'web': duplicate service name\n"
        "  fix: give every service of a stack its own name"
    )


def test_unknown_dependency() -> None:
    with pytest.raises(SpecError) as info:
        StackSpec(name="s", services=[svc("web", depends_on=["db"])])
    err = info.value
    assert (err.stack, err.service, err.field, err.value) == ("s", "web", "depends_on", "db")
    assert "unknown service (services: web)" in str(err)
    assert "fix: name a service of this stack" in str(err)


def test_dependency_cycle_names_the_cycle() -> None:
    with pytest.raises(SpecError) as info:
        StackSpec(name="s", services=[
            svc("a", depends_on=["b"]), svc("b", depends_on=["c"]), svc("c", depends_on=["a"]),
        ])
    message = str(info.value)
    assert "field 'depends_on'" in message and "dependency cycle" in message
    assert info.value.value.count("->") == 3
    assert "fix: remove one of the depends_on edges" in message


@pytest.mark.parametrize("bad", ["http", "0", "70000", "8080/sctpx", "-1"])
def test_malformed_port(bad: str) -> None:
    with pytest.raises(SpecError) as info:
        svc("web", ports=[bad])
    expected = f"service 'web': field 'ports' = {bad!r}: not a container port"
    assert str(info.value).startswith(expected)
    assert "fix: give the container port only" in str(info.value)


def test_fixed_host_port_is_refused_with_the_reason() -> None:
    with pytest.raises(SpecError, match="drop the host part: envkit lets Docker pick"):
        svc("web", ports=["8002:8002"])


@pytest.mark.parametrize("bad", ["video0", "/dev/video0:video0", "/dev/video0:/dev/video0:rx",
                                 "/a:/b:r:extra"])
def test_malformed_device(bad: str) -> None:
    with pytest.raises(SpecError) as info:
        svc("cam", devices=[bad])
    assert f"service 'cam': field 'devices' = {bad!r}: not of the form" in str(info.value)
    assert "fix: use absolute paths and permissions from 'rwm'" in str(info.value)


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_image(bad: str) -> None:
    with pytest.raises(SpecError) as info:
        ServiceSpec(name="web", image=bad)
    assert f"service 'web': field 'image' = {bad!r}: the image is empty" in str(info.value)
    assert "fix: give an image tag" in str(info.value)


def test_bad_build_name_and_reserved_labels_and_names() -> None:
    with pytest.raises(SpecError, match="field 'image' = 'Bad Name'"):
        svc("web", image=Build(name="Bad Name"))
    with pytest.raises(SpecError, match=r"reserved 'envkit\.' namespace"):
        svc("web", labels={"envkit.session": "x"})
    with pytest.raises(SpecError, match="field 'name' = 'Web!'"):
        svc("Web!")
    with pytest.raises(SpecError, match="a stack needs at least one service"):
        StackSpec(name="s", services=[])


def test_readiness_probe_on_an_unpublished_port() -> None:
    with pytest.raises(SpecError) as info:
        svc("web", ports=[8080], ready=[Http(9090, "/health")])
    assert str(info.value) == (
        "service 'web': field 'ready' = \"Http(9090, '/health', status=200)\": probes port "
        "9090, which the service does not publish\n  fix: add 9090 to the service's ports"
    )


def test_spec_is_immutable() -> None:
    spec = svc("web", environment={"A": "1"})
    with pytest.raises(AttributeError):
        spec.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.environment["A"] = "2"  # type: ignore[index]


def test_one_port_given_alone_is_one_port() -> None:
    assert svc("web", ports="8080").ports == (Port(8080, "tcp"),)
    assert svc("web", ports=8554).ports == (Port(8554, "tcp"),)


def test_a_check_on_a_bad_port_is_blamed_on_the_check_not_ports() -> None:
    with pytest.raises(SpecError) as info:  # refused where the check is written
        svc("web", ports=[8080], ready=[Tcp("abc")])
    assert str(info.value) == (
        "spec: field 'Tcp.port' = 'abc': not a container port\n"
        "  fix: write e.g. Tcp(8080); the port must be one of the service's ports"
    )


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("ready_timeout", "30", "must be a number of seconds"),
    ("stop_timeout", True, "must be a number of seconds"),
    ("environment", ["A=1"], "must be a mapping of names to values"),
    ("labels", "x", "must be a mapping of names to values"),
    ("depends_on", 5, "must be a name or a list of names"),
    ("aliases", [1], "must be a name or a list of names"),
    ("ports", 1.5, "must be a list"),
    ("ready", "http", "must be a list of readiness checks"),
])
def test_wrong_types_are_spec_errors(field: str, value: object, problem: str) -> None:
    with pytest.raises(SpecError) as info:
        svc("web", **{field: value})
    assert str(info.value).startswith(f"service 'web': field {field!r} = {value!r}: {problem}")


def test_volumes_and_bind_mounts_are_parsed() -> None:
    web = svc("web", volumes=["data:/var/lib/data", "/srv/in:/in:ro", Mount("logs", "/logs")])
    assert web.mounts == (Mount("data", "/var/lib/data"), Mount("/srv/in", "/in", True),
                          Mount("logs", "/logs"))
    assert [m.is_volume for m in web.mounts] == [True, False, True]
    stack = StackSpec(name="s", services=[web, svc("other", volumes="data:/d")])
    assert stack.volumes == ("data", "logs")


@pytest.mark.parametrize(("bad", "problem", "fix"), [
    ("data:var/lib", "the container path 'var/lib' is not absolute", "write it from the root"),
    ("data:/d:rx", "unknown mode 'rx'", "use 'ro' (read-only) or 'rw'"),
    ("./in:/in", "the host path './in' is relative", "give an absolute host path"),
    ("da ta:/d", "'da ta' is neither a volume name nor an absolute host path", "name a volume"),
    ("data", "not of the form source:/container/path[:ro]", "write e.g. 'data:/var/lib/data'"),
])
def test_malformed_volume(bad: str, problem: str, fix: str) -> None:
    with pytest.raises(SpecError) as info:
        svc("web", volumes=[bad])
    assert str(info.value).startswith(f"service 'web': field 'volumes' = {bad!r}: {problem}")
    assert f"fix: {fix}" in str(info.value)


@pytest.mark.parametrize("source", ["/var/run/docker.sock", "/run/docker.sock", "/",
                                    "/home/me/.docker/run/docker.sock"])
def test_binds_that_hand_over_the_host_are_refused(source: str) -> None:
    with pytest.raises(SpecError) as err:
        ServiceSpec(name="web", image="x:1", volumes=[f"{source}:/mnt"])
    assert err.value.field == "volumes"
    assert "would hand the container the host or its engine" in str(err.value)
    assert "never gives a service the Docker socket" in str(err.value)


def test_a_bind_of_any_socket_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    path = tmp_path / "engine.sock"  # the engine's socket under another name
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        with pytest.raises(SpecError) as err:
            check_host_paths(ServiceSpec(name="web", image="x:1", volumes=[f"{path}:/s"]))
    assert f"the host path {path} is a socket" in str(err.value)
