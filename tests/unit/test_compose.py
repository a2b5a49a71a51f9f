"""Compose files as stacks: the packaged default stack, the subset, interpolation, errors."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from envkit import Healthy, Http, StackSpec, Tcp
from envkit.camera import mediamtx
from envkit.camera import stack as camera_stack
from envkit.compose import is_compose_file, labels_override, load_compose, main
from envkit.errors import SpecError
from envkit.session import Envkit
from envkit.spec import Build, Healthcheck, Mount, Port

COMPOSE = Path(__file__).parents[2] / "envkit" / "camera" / "compose" / "docker-compose.yml"


def write(tmp_path: Path, text: str, name: str = "docker-compose.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, **env: str) -> StackSpec:
    return load_compose(write(tmp_path, text), environ=env)


def error(tmp_path: Path, text: str, **env: str) -> str:
    with pytest.raises(SpecError) as info:
        load(tmp_path, text, **env)
    return str(info.value)


# --- the packaged default stack -------------------------------------------------------

def test_every_service_has_no_new_privileges_init_and_loopback_ports() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(services) == {"mediamtx", "camera-service"}
    for name, service in services.items():
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("init") is True, name
        assert not service.get("privileged"), name
        assert all(p.startswith("127.0.0.1::") for p in service["ports"]), name


def comparable(spec: StackSpec) -> dict[str, dict[str, object]]:
    """Every field of every service, less the per-stack secret."""
    out: dict[str, dict[str, object]] = {}
    for svc in spec.services:
        values = {f.name: getattr(svc, f.name) for f in fields(svc)}
        values["environment"] = {k: v for k, v in svc.environment.items()
                                 if k != "CAMERA_SERVICE_JWT_SECRET"}
        out[svc.name] = values
    return out


def test_python_cli_and_compose_routes_load_the_same_default_stack(tmp_path: Path) -> None:
    env = {"ENVKIT_MEDIAMTX": "standin", "ENVKIT_PROJECT": "p",
           "CAMERA_SERVICE_JWT_SECRET": "from-the-shell", "HOME": str(tmp_path)}
    kit = Envkit.from_env(env, root=tmp_path)
    python_route = camera_stack.default_stack(devices=())
    cli_route = kit.spec("default")  # what `envkit up --stack default` and the plugin run
    compose_route = kit.spec(str(COMPOSE))  # `--envkit-stack .../docker-compose.yml`
    assert cli_route.name == python_route.name == compose_route.name == "default"
    if camera_stack.host_cameras():
        pytest.skip("this host has cameras: the default stack passes them in")
    assert comparable(cli_route) == comparable(python_route) == comparable(compose_route)
    secret = "CAMERA_SERVICE_JWT_SECRET"
    assert compose_route.service("camera-service").environment[secret] == "from-the-shell"
    # Each load of the default stack gets its own secret.
    assert cli_route.service("camera-service").environment[secret] != (
        kit.spec("default").service("camera-service").environment[secret])


def test_default_stack_settings_come_from_the_compose_file() -> None:
    spec = camera_stack.default_stack(devices=("/dev/video0",), synthetic="2")
    media, cam = spec.service("mediamtx"), spec.service("camera-service")
    assert media.image == Build(name="mediamtx-standin", context=mediamtx.CONTEXTS
                                / "mediamtx-standin", namespace="camera-kit",
                                packages=mediamtx.PACKAGES)
    assert media.ready == (Http(9997, "/v3/paths/list"), Tcp(8554))
    assert media.ready_timeout == 60.0 and media.stop_timeout == 2.0 and media.init
    assert [p.number for p in media.published] == [8554, 9997, 8888, 8889]
    assert cam.image == camera_stack.IMAGE and cam.conditions == {"mediamtx": "started"}
    assert cam.environment["CAMERA_SERVICE_CAMERAS_SYNTHETIC"] == "90,91"
    assert [str(d) for d in cam.device_mappings] == ["/dev/video0:/dev/video0:rwm"]


# --- the subset ----------------------------------------------------------------------

TEAM = """\
services:
  db:
    image: postgres:16
    ports: ["5432:5432"]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready"]
      interval: 1s
      timeout: 1m30s
      retries: 5
      start_period: 500ms
    volumes: [pgdata:/var/lib/postgresql/data, ./init:/docker-entrypoint-initdb.d:ro]
    stop_signal: SIGINT
    stop_grace_period: 5s
  migrate:
    image: app:1
    entrypoint: /bin/sh -c
    command: ["./migrate"]
    depends_on:
      db: {condition: service_healthy}
  api:
    build:
      context: ../src
      dockerfile: docker/Dockerfile
      args: {FLAVOUR: lite}
      target: test
    ports: ["8002:8002", "127.0.0.1:8003:8003", "9000-9001:9000-9001/udp",
            {target: 8554, published: 8554, protocol: tcp}]
    expose: [7000]
    env_file: [api.env]
    environment: {FROM_FILE_TOO: override}
    depends_on:
      migrate: {condition: service_completed_successfully}
      db: {condition: service_started}
    networks:
      back: {aliases: [api.internal, backend]}
    user: "1000"
    init: false
    labels: [team=video]
    tmpfs: /tmp
    devices: ["/dev/null:/dev/fake"]
  debug:
    image: busybox
    profiles: [debug]
volumes:
  pgdata: {}
networks:
  back:
"""


def team(tmp_path: Path) -> StackSpec:
    project = tmp_path / "project"
    (tmp_path / "src").mkdir()
    (project / "init").mkdir(parents=True)
    (project / "api.env").write_text("# comment\nFROM_FILE=1\nFROM_FILE_TOO=file\n"
                                     "export QUOTED='a b'\n")
    return load_compose(write(project, TEAM), environ={})


def test_a_team_file_becomes_a_stack(tmp_path: Path) -> None:
    spec = team(tmp_path)
    assert spec.name == "project"  # compose's default project name: the directory
    assert [s.name for s in spec.services] == ["db", "migrate", "api"]  # no profile: no debug
    db, migrate, api = spec.services
    assert db.published == (Port(5432),)
    assert db.healthcheck == Healthcheck(test=("CMD-SHELL", "pg_isready"), interval=1.0,
                                         timeout=90.0, retries=5, start_period=0.5)
    assert db.ready == (Healthy(),) and db.stop_signal == "SIGINT" and db.stop_timeout == 5
    assert db.mounts == (Mount("pgdata", "/var/lib/postgresql/data"),
                         Mount(str(tmp_path / "project" / "init"),
                               "/docker-entrypoint-initdb.d", True))
    assert spec.volumes == ("pgdata",)
    assert migrate.entrypoint == ("/bin/sh", "-c") and migrate.command == ("./migrate",)
    assert migrate.conditions == {"db": "healthy"}
    assert api.image == Build(name="api", context=(tmp_path / "src").resolve(),
                              dockerfile="docker/Dockerfile", args={"FLAVOUR": "lite"},
                              target="test")
    assert [str(p) for p in api.published] == ["8002/tcp", "8003/tcp", "9000/udp", "9001/udp",
                                               "8554/tcp"]
    assert dict(api.environment) == {"FROM_FILE": "1", "FROM_FILE_TOO": "override",
                                     "QUOTED": "a b"}
    assert api.conditions == {"migrate": "completed", "db": "started"}
    assert api.aliases == ("api.internal", "backend")
    assert (api.user, api.init, dict(api.labels), api.tmpfs) == (
        "1000", False, {"team": "video"}, ("/tmp",))
    assert [str(d) for d in api.device_mappings] == ["/dev/null:/dev/fake:rwm"]


def test_profiles_and_services_select(tmp_path: Path) -> None:
    team(tmp_path)
    path = tmp_path / "project" / "docker-compose.yml"
    names = [s.name for s in load_compose(path, environ={}, profiles=["debug"]).services]
    assert names == ["db", "migrate", "api", "debug"]
    env = {"COMPOSE_PROFILES": "debug"}
    assert len(load_compose(path, environ=env).services) == 4
    # A service asked for runs whatever its profiles, with what it depends on.
    assert [s.name for s in load_compose(path, environ={}, services=["migrate"]).services] == [
        "db", "migrate"]
    assert [s.name for s in load_compose(path, environ={}, services=["debug"]).services] == [
        "debug"]


def test_a_plain_dependency_list_means_started_and_x_envkit_ready_replaces_the_healthcheck(
    tmp_path: Path,
) -> None:
    spec = load(tmp_path, """\
services:
  web:
    image: web
    ports: [8080]
    healthcheck: {test: curl -f localhost:8080}
    x-envkit:
      ready: [{http: {port: 8080, path: /health}}, {healthy: true}, {tcp: 8080},
              {log: ready}, {exec: "true"}]
      ready_timeout: 1m
  client: {image: c, depends_on: [web]}
  idle: {image: o, healthcheck: {disable: true}}
""")
    web = spec.service("web")
    assert web.healthcheck == Healthcheck(test=("CMD-SHELL", "curl -f localhost:8080"))
    assert [c.describe() for c in web.ready] == [
        "Http(8080, '/health', status=200)", "Healthy()", "Tcp(8080)", "LogLine('ready')",
        "Exec('sh -c true')"]
    assert web.ready_timeout == 60
    assert spec.service("client").conditions == {"web": "started"}
    idle = spec.service("idle")
    assert idle.healthcheck == Healthcheck(test=("NONE",)) and idle.ready == ()


def test_anonymous_volumes_tmpfs_mounts_and_undeclared_volumes(tmp_path: Path) -> None:
    spec = load(tmp_path, """\
services:
  s:
    image: x
    volumes: [/cache, {type: tmpfs, target: /run/x}, {type: volume, source: v, target: /v}]
volumes: {v: }
""")
    svc = spec.service("s")
    assert svc.mounts == (Mount("s-anon-0", "/cache"), Mount("v", "/v"))
    assert svc.tmpfs == ("/run/x",)
    message = error(tmp_path, "services:\n  s: {image: x, volumes: ['data:/d']}\n")
    assert "the volume 'data' is not declared" in message
    assert "docker-compose.yml line 2" in message


# --- interpolation: every form ---------------------------------------------------------

@pytest.mark.parametrize(("value", "env", "expected"), [
    ("${A}", {"A": "1"}, "1"),
    ("$A", {"A": "1"}, "1"),
    ("x-$A-y", {"A": "1"}, "x-1-y"),
    ("${A:-dflt}", {}, "dflt"),
    ("${A:-dflt}", {"A": ""}, "dflt"),
    ("${A-dflt}", {"A": ""}, ""),
    ("${A-dflt}", {}, "dflt"),
    ("${A:?needed}", {"A": "set"}, "set"),
    ("${A?needed}", {"A": ""}, ""),
    ("${A:+alt}", {"A": "1"}, "alt"),
    ("${A:+alt}", {}, ""),
    ("${A:-${B:-nested}}", {}, "nested"),
    ("$$A and $${A}", {}, "$A and ${A}"),
])
def test_interpolation_forms(tmp_path: Path, value: str, env: dict[str, str],
                             expected: str) -> None:
    text = f"services:\n  s:\n    image: x\n    environment:\n      V: '{value}'\n"
    assert load(tmp_path, text, **env).service("s").environment["V"] == expected


@pytest.mark.parametrize(("value", "env", "problem"), [
    ("${A}", {}, "variable A is not set (docker-compose.yml line 5)"),
    ("${A:?tell me A}", {}, "variable A is not set: tell me A (docker-compose.yml line 5)"),
    ("${A:?tell me A}", {"A": ""}, "variable A is empty: tell me A"),
    ("${A?tell me A}", {}, "variable A is not set: tell me A"),
    ("${A", {}, "unclosed '${'"),
])
def test_interpolation_errors_name_service_field_and_line(
    tmp_path: Path, value: str, env: dict[str, str], problem: str
) -> None:
    text = f"services:\n  s:\n    image: x\n    environment:\n      V: '{value}'\n"
    message = error(tmp_path, text, **env)
    assert message.startswith("stack 'test_interpolation_errors_n")
    assert "service 's': field 'environment.V'" in message and problem in message


def test_dot_env_fills_what_the_environment_lacks_and_envkit_fills_the_base(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text("TAG=from-dotenv\nOTHER=dotenv\n")
    (tmp_path / "ctx").mkdir()
    spec = load(tmp_path, """\
services:
  s:
    image: app:${TAG}
    environment: ['OTHER=${OTHER}']
  b:
    build: {context: ctx, args: {BASE_IMAGE: "${ENVKIT_BASE_IMAGE:?export it}", K: v}}
""", OTHER="shell")
    assert spec.service("s").image == "app:from-dotenv"
    assert spec.service("s").environment["OTHER"] == "shell"  # the shell wins
    build = spec.service("b").image
    assert isinstance(build, Build) and dict(build.args) == {"K": "v"}


# --- what is outside the subset ---------------------------------------------------------

UNSUPPORTED = """\
version: "3.9"
x-anchors: &common
  restart: always
services:
  web:
    <<: *common
    image: web
    container_name: web
    network_mode: host
    build: {context: ., cache_from: [x]}
    healthcheck: {test: "true", start_interval: 1s}
    depends_on: {db: {condition: service_started, restart: true}}
    ports: [{target: 80, name: web}]
    volumes: [{type: bind, source: ., target: /x, bind: {propagation: shared}}]
    networks: {front: {ipv4_address: 10.0.0.2}}
    x-ignored: fine
  db:
    image: db
    privileged: true
volumes:
  data: {external: true}
networks:
  front: {driver: overlay}
secrets:
  token: {file: ./token}
"""


def test_every_unsupported_key_is_reported_with_its_line(tmp_path: Path) -> None:
    message = error(tmp_path, UNSUPPORTED)
    lines = [ln.strip() for ln in message.splitlines() if ln.strip().startswith("docker-compose")]
    assert lines == [
        "docker-compose.yml line 3: services.web.restart: remove it: a test stack is not "
        "restarted behind the tests' back (stack.restart(service) restarts on purpose)",
        "docker-compose.yml line 8: services.web.container_name: remove it: envkit names "
        "containers per worker (a fixed name collides between workers)",
        "docker-compose.yml line 9: services.web.network_mode: remove it: every service joins "
        "the stack's private network",
        "docker-compose.yml line 10: services.web.build.cache_from: remove it, or set it in the "
        "image (Dockerfile); README 'Compose files' lists what envkit runs",
        "docker-compose.yml line 11: services.web.healthcheck.start_interval: remove it "
        "(Docker 25+); use interval",
        "docker-compose.yml line 12: services.web.depends_on.db.restart: remove it: a test "
        "stack is not restarted behind the tests' back (stack.restart(service) restarts on "
        "purpose)",
        "docker-compose.yml line 13: services.web.ports.0.name: remove it: envkit names volumes "
        "and networks per stack (a fixed name collides)",
        "docker-compose.yml line 14: services.web.volumes.0.bind: remove it, or set it in the "
        "image (Dockerfile); README 'Compose files' lists what envkit runs",
        "docker-compose.yml line 15: services.web.networks.front.ipv4_address: remove it, or "
        "set it in the image (Dockerfile); README 'Compose files' lists what envkit runs",
        "docker-compose.yml line 19: services.db.privileged: remove it: envkit never runs "
        "privileged containers",
        "docker-compose.yml line 21: volumes.data.external: remove it: envkit creates the "
        "stack's volumes and network, per worker",
        "docker-compose.yml line 23: networks.front.driver: remove it: envkit creates local "
        "volumes and a bridge network",
        "docker-compose.yml line 24: secrets: pass the value through environment: "
        "(${secret:NAME} in stack files)",
    ]
    assert "13 keys outside envkit's compose subset" in message
    assert "fix: change each as its line says" in message


@pytest.mark.parametrize(("service", "problem"), [
    ("{image: x, ports: ['80:http']}", "field 'ports' = '80:http': not a port mapping"),
    ("{image: x, stop_grace_period: soon}", "field 'stop_grace_period' = 'soon': not a duration"),
    ("{image: x, security_opt: [seccomp:unconfined]}", "not envkit's security option"),
    ("{build: nowhere}", "field 'build.context' = 'nowhere': no directory"),
    ("{environment: {A: 1}}", "field 'image' = None: the service has no image or build"),
    ("{image: x, healthcheck: {test: [RUN, x]}}", "must start with CMD, CMD-SHELL or NONE"),
    ("{image: x, depends_on: {y: {condition: service_ok}}}", "not a dependency condition"),
    ("{image: x, x-envkit: {ready: [{ping: 1}]}}", "not a readiness check"),
])
def test_invalid_values_name_service_field_and_line(
    tmp_path: Path, service: str, problem: str
) -> None:
    message = error(tmp_path, f"services:\n  web: {service}\n  y: {{image: y}}\n")
    assert "service 'web'" in message and problem in message, message
    assert "docker-compose.yml line 2" in message


# --- routing, overrides, labels for docker-compose users -----------------------------------

def test_compose_files_are_told_from_stack_files(tmp_path: Path) -> None:
    assert is_compose_file(COMPOSE)
    assert is_compose_file(write(tmp_path, "services: {a: {image: x}}\n", "compose.yaml"))
    assert is_compose_file(write(tmp_path, "services: {a: {image: x, ports: ['1:1']}}\n", "a.yml"))
    assert is_compose_file(write(tmp_path, "version: '3'\nservices: {a: {image: x}}\n", "b.yml"))
    assert is_compose_file(write(tmp_path, "services: {a: {image: x, restart: always}}\n",
                                 "r.yml"))
    assert not is_compose_file(write(tmp_path, "services: {a: {image: x, ready: []}}\n", "c.yml"))
    assert not is_compose_file(write(tmp_path, "services: {a: {use: mediamtx}}\n", "d.yml"))
    assert not is_compose_file(write(tmp_path, "name: s\nservices: {a: {image: x}}\n", "e.yml"))


def test_overrides_replace_fields_unread_and_merge_environment(tmp_path: Path) -> None:
    path = write(tmp_path, """\
services:
  s:
    build: {context: missing, args: {X: "${UNSET}"}}
    environment: {KEEP: "1", SECRET: "${SECRET:?set SECRET}"}
""")
    spec = StackSpec.from_compose(path, environ={}, overrides={
        "s": {"image": "tag:1", "environment": {"SECRET": "s3"}}})
    svc = spec.service("s")
    assert svc.image == "tag:1" and dict(svc.environment) == {"KEEP": "1", "SECRET": "s3"}
    with pytest.raises(SpecError, match="no such service"):
        StackSpec.from_compose(path, environ={}, overrides={"t": {"user": "1"}})


def test_labels_override_gives_docker_compose_stacks_envkit_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    team(tmp_path)
    path = tmp_path / "project" / "docker-compose.yml"
    data = yaml.safe_load(labels_override(path, stack="compose-x", created="2024-01-01T00:00:00"))
    assert set(data["services"]) == {"db", "migrate", "api", "debug"}
    api = data["services"]["api"]["labels"]
    assert api["envkit.stack"] == "compose-x" and api["envkit.service"] == "api"
    assert api["envkit.detached"] == "true" and api["envkit.worker"] == "compose"
    assert data["networks"]["default"]["labels"]["envkit.stack"] == "compose-x"
    assert data["volumes"]["pgdata"]["labels"]["envkit.session"] == "compose"
    assert main(["labels", str(path)]) == 0
    assert "envkit.stack: compose-project" in capsys.readouterr().out


def test_envkit_base_image_is_not_read_from_the_shell(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    spec = load(tmp_path, "services:\n  b:\n    build:\n      context: ctx\n      args:\n"
                "        BASE_IMAGE: ${ENVKIT_BASE_IMAGE}\n", ENVKIT_BASE_IMAGE="mine:1")
    image = spec.service("b").image
    assert isinstance(image, Build) and dict(image.args) == {}
    assert os.environ.get("ENVKIT_BASE_IMAGE") is None or True  # the process env is not read


@pytest.mark.parametrize(("body", "field", "line"), [
    ("services: {web: nginx}\n", "(service)", 1),
    ("services:\n  web:\n    image: x\n    healthcheck: curl\n", "healthcheck", 4),
    ("services:\n  web:\n    image: x\n    x-envkit: [1]\n", "x-envkit", 4),
    ("x-envkit: foo\nservices: {web: {image: x}}\n", "x-envkit", 1),
    ("services:\n  web:\n    image: x\n    ports: 8080\n", "ports", 4),
    ("services:\n  web:\n    image: x\n    command: 5\n", "command", 4),
    ("services:\n  web:\n    image: x\n    depends_on: db\n  db: {image: y}\n", "depends_on", 4),
])
def test_values_of_the_wrong_shape_are_named_with_their_line(
    tmp_path: Path, body: str, field: str, line: int
) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text(body)
    with pytest.raises(SpecError) as err:
        load_compose(path, environ={})
    assert err.value.field == field
    assert f"(docker-compose.yml line {line})" in str(err.value)
    assert "fix: write" in str(err.value)


def test_a_service_healthy_dependency_without_checks_waits_for_dockers_health(
    tmp_path: Path,
) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text("services:\n  db: {image: 'db:1'}\n  api:\n    image: 'api:1'\n"
                    "    depends_on: {db: {condition: service_healthy}}\n"
                    "  web:\n    image: 'web:1'\n    depends_on: [api]\n")
    spec = load_compose(path, environ={})
    assert list(spec.service("db").ready) == [Healthy()]
    assert list(spec.service("api").ready) == []  # service_started only: nothing to wait for


def test_the_labels_override_covers_the_files_own_networks_and_volumes(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text("services:\n  web: {image: x, networks: [backend]}\n"
                    "networks:\n  backend: {}\n  outside: {external: true}\n"
                    "volumes:\n  data: {}\n  shared: {external: true}\n")
    out = yaml.safe_load(labels_override(path, stack="s"))
    assert set(out["networks"]) == {"default", "backend"}  # compose creates these
    assert set(out["volumes"]) == {"data"}                 # external ones are not ours
    assert out["networks"]["backend"]["labels"]["envkit.stack"] == "s"


def test_a_dependency_whose_profile_is_off_is_refused_as_compose_does(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text("services:\n  api: {image: 'api:1', depends_on: [db]}\n"
                    "  db: {image: 'db:1', profiles: [storage]}\n")
    with pytest.raises(SpecError) as err:
        load_compose(path, environ={})
    assert "depends on 'db', whose profiles (storage) are not active" in str(err.value)
    assert [s.name for s in load_compose(path, environ={}, profiles=["storage"]).services] == [
        "api", "db"]
    assert [s.name for s in load_compose(path, environ={}, services=["api"]).services] == [
        "api", "db"]
