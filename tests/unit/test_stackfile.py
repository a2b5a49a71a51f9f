"""Stack files: interpolation, the schema's errors as the user reads them, paths, blocks."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from envkit import Build, Exec, Healthy, Http, LogLine, ServiceSpec, SpecError, Tcp
from envkit._interpolate import InterpolationError, Secrets, interpolate
from envkit.spec import Mount, Port
from envkit.stackfile import SCHEMA_PATH, load_stack_file


def write(tmp_path: Path, text: str, name: str = "s.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str, environ: Mapping[str, str] | None = None,
         **kw: Any) -> Any:
    return load_stack_file(write(tmp_path, text), environ=environ or {}, **kw)


def error(tmp_path: Path, text: str, environ: Mapping[str, str] | None = None,
          **kw: Any) -> str:
    with pytest.raises(SpecError) as info:
        load(tmp_path, text, environ, **kw)
    return str(info.value)


# --- interpolation, pure ---------------------------------------------------------------

ENV = {"HOST": "db", "EMPTY": "", "PORT": "5432"}


@pytest.mark.parametrize(("text", "expected"), [
    ("${HOST}:${PORT}", "db:5432"),
    ("${MISSING:-fallback}", "fallback"),
    ("${EMPTY:-fallback}", "fallback"),
    ("${EMPTY-fallback}", ""),
    ("${MISSING-fallback}", "fallback"),
    ("${MISSING:-${HOST}-x}", "db-x"),
    ("${HOST:+set}|${MISSING:+set}", "set|"),
    ("$$HOME and $$${HOST}", "$HOME and $db"),
    ("echo $HOME $1", "echo $HOME $1"),  # a bare $ is the shell's, left alone
    ("no variables", "no variables"),
])
def test_interpolation(text: str, expected: str) -> None:
    assert interpolate(text, environ=ENV, generated=Secrets()) == expected


@pytest.mark.parametrize(("text", "problem", "fix"), [
    ("${MISSING}", "variable MISSING is not set",
     "set MISSING in the environment, or give a default: ${MISSING:-value}"),
    ("${MISSING:?the database host}", "variable MISSING is not set: the database host",
     "set MISSING in the environment"),
    ("${EMPTY:?must not be empty}", "variable EMPTY is empty: must not be empty",
     "set EMPTY in the environment"),
    ("${HOST", "unclosed '${' in '${HOST'", "close it with '}'"),
    ("${1X}", "'${1X}' is not a valid expression", "write ${NAME}, ${NAME:-default}"),
    ("${HOST:=x}", "'${HOST:=x}' is not a valid expression", "write ${NAME}"),
])
def test_interpolation_errors(text: str, problem: str, fix: str) -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate(text, environ=ENV, generated=Secrets())
    assert info.value.problem == problem
    assert info.value.fix.startswith(fix)


def test_a_secret_is_one_value_per_name_and_load() -> None:
    made = iter(["first", "second"])
    secrets = Secrets(token=lambda: next(made))
    text = "${secret:jwt} ${secret:jwt} ${secret:db}"
    assert interpolate(text, environ={}, generated=secrets) == "first first second"


# --- loading ---------------------------------------------------------------------------

def test_round_trip_of_every_field(tmp_path: Path) -> None:
    spec = load(tmp_path, """
        name: pair
        services:
          web:
            build: testsvc
            command: python3 /app/svc.py serve --port 8080
            environment: {A: 1, B: two}
            ports: [8080, "8554/udp"]
            aliases: www
            ready: [{http: {port: 8080, path: /health, status: "204"}}, {tcp: 8080},
                    {log: 'listening on \\d+'}, {healthy: true}, {exec: [test, -f, /x]},
                    {exec: 'test -f /x'}, {http: 8080}]
            labels: {team: video}
            user: 1000
            tmpfs: /tmp
            ready_timeout: 30
            stop_timeout: 0
          client:
            image: other:1
            depends_on: web
            environment: [C=3, "D=x=y"]
    """)
    web, client = spec.service("web"), spec.service("client")
    assert web.image == Build(name="testsvc")
    assert web.command == ("python3", "/app/svc.py", "serve", "--port", "8080")
    assert web.environment == {"A": "1", "B": "two"}
    assert web.ports == (Port(8080), Port(8554, "udp"))
    assert web.aliases == ("www",)
    assert web.ready == (Http(8080, "/health", 204), Tcp(8080), LogLine("listening on \\d+"),
                         Healthy(), Exec(("test", "-f", "/x")), Exec(("sh", "-c", "test -f /x")),
                         Http(8080))
    assert (web.labels, web.user, web.tmpfs) == ({"team": "video"}, "1000", ("/tmp",))
    assert (web.ready_timeout, web.stop_timeout) == (30.0, 0.0)
    assert client.depends_on == ("web",)
    assert client.environment == {"C": "3", "D": "x=y"}


def test_interpolation_applies_to_values_not_keys(tmp_path: Path) -> None:
    spec = load(tmp_path, """
        name: ${NAME:-interp}
        services:
          web:
            image: "nginx:${TAG:-1.27}"
            environment:
              ${KEY}: ${VALUE}
              PRICE: $$5
            ready_timeout: ${TIMEOUT:-45}
    """, {"VALUE": "v", "TAG": "1.25"})
    web = spec.service("web")
    assert spec.name == "interp"
    assert web.image == "nginx:1.25"
    assert web.environment == {"${KEY}": "v", "PRICE": "$5"}
    assert web.ready_timeout == 45.0


def test_an_unset_variable_names_variable_file_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  web:\n    image: x\n    environment: {DB: '${DB_URL}'}\n")
    with pytest.raises(SpecError) as info:
        load_stack_file(path, environ={})
    assert str(info.value) == (
        f"stack 's', service 'web': field 'environment.DB' = '${{DB_URL}}': variable DB_URL is "
        f"not set (in {path})\n  fix: set DB_URL in the environment, or give a default: "
        "${DB_URL:-value}"
    )


def test_required_variable_message(tmp_path: Path) -> None:
    message = error(tmp_path, "services:\n  web:\n    image: '${TAG:?pin the image tag}'\n")
    assert "field 'image' = '${TAG:?pin the image tag}': variable TAG is not set: pin the " \
        "image tag (in " in message


def test_secrets_are_shared_in_a_load_and_fresh_per_load(tmp_path: Path) -> None:
    path = write(tmp_path, """
        services:
          api: {image: x, environment: {JWT_SECRET: '${secret:jwt}', DB: '${secret:db}'}}
          worker: {image: x, environment: {JWT_SECRET: '${secret:jwt}'}}
    """)
    one, two = (load_stack_file(path, environ={}) for _ in range(2))
    jwt = one.service("api").environment["JWT_SECRET"]
    assert len(jwt) >= 43 and jwt == one.service("worker").environment["JWT_SECRET"]
    assert one.service("api").environment["DB"] != jwt
    assert two.service("api").environment["JWT_SECRET"] != jwt


def test_environment_list_takes_bare_names_from_the_environment(tmp_path: Path) -> None:
    text = "services:\n  web:\n    image: x\n    environment: [A=1, B]\n"
    spec = load(tmp_path, text, {"B": "from-env"})
    assert spec.service("web").environment == {"A": "1", "B": "from-env"}
    assert error(tmp_path, text) == (
        "stack 's', service 'web': field 'environment.B' = None: B is to come from the "
        "environment, where it is not set\n  fix: set B, or give its value: B=value"
    )


def test_numeric_strings_are_numbers_and_one_string_port_is_one_port(tmp_path: Path) -> None:
    spec = load(tmp_path, """
        services:
          web: {image: x, ports: "8080", ready_timeout: "30", ready: [{tcp: 8080}]}
    """)
    assert spec.service("web").ports == (Port(8080),)
    assert spec.service("web").ready_timeout == 30.0


# --- the cases of issue 8, each with its message ---------------------------------------

@pytest.mark.parametrize(("service_yaml", "message"), [
    ("environment: 5",
     "field 'environment' = 5: must be a mapping of NAME: value, or a list of 'NAME=value'\n"
     "  fix: write e.g. environment: {LOG_LEVEL: debug}"),
    ("environment: {DEBUG: yes}",
     "field 'environment.DEBUG' = True: must be a string or a number (YAML reads yes, no, "
     "true, false, on and off as booleans)\n  fix: quote the value, e.g. DEBUG: 'true'"),
    ("ready_timeout: 'thirty'",
     "field 'ready_timeout' = 'thirty': must be a number of seconds\n"
     "  fix: write a number, e.g. 30"),
    ("ready_timeout: 0",
     "field 'ready_timeout' = 0: must be a positive number of seconds\n"
     "  fix: write e.g. ready_timeout: 30"),
    ("depends_on: 5",
     "field 'depends_on' = 5: must be a service name or a list of names\n"
     "  fix: write e.g. depends_on: [db]"),
    ("ports: {http: 8080}",
     "field 'ports' = {'http': 8080}: must be a list of container ports\n"
     "  fix: write e.g. ports: [8080, '8554/udp']"),
    ("ports: ['8002:8002']",
     "field 'ports[0]' = '8002:8002': must be a container port such as 8080 or '8554/udp'\n"
     "  fix: give the container port only (envkit lets Docker pick a free host port), e.g. "
     "8080"),
    ("ports: [8080]\n    ready: [{tcp: abc}]",
     "field 'ready[0].tcp' = 'abc': must be a container port such as 8080 or '8554/udp'\n"
     "  fix: write e.g. {tcp: 8080}; the port must be one of the service's ports"),
    ("ports: [8080]\n    ready: [{tcp: 9090}]",
     "field 'ready' = 'Tcp(9090)': probes port 9090, which the service does not publish\n"
     "  fix: add 9090 to the service's ports"),
    ("ready: [{tcp: 1, http: 2}]",
     "field 'ready[0]' = {'tcp': 1, 'http': 2}: must be a one-key mapping: tcp, http, log, "
     "healthy or exec\n  fix: write e.g. {tcp: 8080}"),
    ("ready: [{grpc: 50051}]",
     "field 'ready[0].grpc' = 50051: unknown field\n"
     "  fix: use one of: exec, healthy, http, log, tcp"),
    ("ready: [{log: '(unclosed'}]",
     "field 'ready[0].log' = '(unclosed': not a regular expression: missing ), unterminated "
     "subpattern at position 0"),
    ("portz: [1]",
     "field 'portz' = [1]: unknown field\n  fix: did you mean 'ports'? use one of: aliases, "
     "build, cap_add, command, conditions, depends_on, device_cgroup_rules, devices, "
     "entrypoint, environment, group_add, healthcheck, image, init, labels, mem_limit, "
     "pids_limit, ports, read_only, ready, ready_timeout, stop_signal, stop_timeout, tmpfs, "
     "use, user, volumes, with"),
    ("command: {run: x}",
     "field 'command' = {'run': x}: must be a string or a list of strings"),
    ("labels: [a]",
     "field 'labels' = ['a']: must be a mapping of label names to values"),
    ("user: [root]",
     "field 'user' = ['root']: must be a user name or id (user[:group])"),
    ("volumes: {data: /d}",
     "field 'volumes' = {'data': '/d'}: must be a list of 'source:/container/path[:ro]' "
     "entries"),
    ("volumes: ['data:relative']",
     "field 'volumes' = 'data:relative': the container path 'relative' is not absolute"),
    ("devices: [video0]",
     "field 'devices' = 'video0': not of the form host[:container[:permissions]]"),
    ("stop_timeout: -1",
     "field 'stop_timeout' = -1: must be a number of seconds, 0 or more"),
    ("with: {flavour: standin}",
     "field 'with' = {'flavour': 'standin'}: options for a building block, but no 'use'\n"
     "  fix: add 'use: <block>', or remove 'with'"),
])
def test_malformed_service_fields(tmp_path: Path, service_yaml: str, message: str) -> None:
    text = f"name: s\nservices:\n  web:\n    image: x\n    {service_yaml}\n"
    got = error(tmp_path, text)
    expected = f"stack 's', service 'web': {message}".replace("{'run': x}", "{'run': 'x'}")
    assert got.startswith(expected), got


@pytest.mark.parametrize(("text", "message"), [
    ("[1, 2]", "stack 's': field '(file)' = 'list': the top level must be a mapping\n"
     "  fix: start the file with 'name: mystack' and 'services:'"),
    ("name: s", "stack 's': field 'services' = None: missing\n"
     "  fix: write services: {web: {image: 'nginx:1.27'}}"),
    ("services: {}", "stack 's': field 'services' = {}: must be a mapping of service names "
     "to their settings, with at least one service"),
    ("services: {web: {image: x}}\nvolume: {}", "stack 's': field 'volume' = {}: unknown "
     "field\n  fix: use one of: name, services"),
    ("name: Bad Name\nservices: {web: {image: x}}", "stack 'Bad Name': field 'name' = 'Bad Name': "
     "must be a name of lowercase letters, digits, '-' and '_' (at most 63)"),
    ("services: {Web: {image: x}}", "stack 's', service 'Web': field 'name' = 'Web': not a "
     "valid service name"),
    ("services: {web: 5}", "stack 's', service 'web': field '(service)' = 5: must be a "
     "mapping of the service's settings"),
    ("services: {web: {ports: [1]}}", "stack 's', service 'web': field 'image' = None: the "
     "service has no image\n  fix: give 'image: <tag>', 'build: <context>' or 'use: <block>'"),
    ("services: {web: {image: x, build: y}}", "stack 's', service 'web': field 'build' = "
     "'y': both 'image' and 'build' are given"),
    ("services: {web: {build: {contxt: .}}}", "stack 's', service 'web': field "
     "'build.contxt' = '.': unknown field\n  fix: did you mean 'context'?"),
    ("services: {web: {image: x, depends_on: [db]}}", "stack 's', service 'web': field "
     "'depends_on' = 'db': unknown service (services: web)"),
    ("services: {web: {image: x}}\nx-common: &c {a: 1}", None),
    ("services:\n  web:\n    image: x\n  web2: [", "stack 's': field '(file)' = "),
])
def test_malformed_files(tmp_path: Path, text: str, message: str | None) -> None:
    if message is None:  # compose's x- extension fields are allowed (for YAML anchors)
        assert load(tmp_path, text).name == "s"
        return
    assert error(tmp_path, text).startswith(message)


def test_the_first_problem_in_file_order_is_reported(tmp_path: Path) -> None:
    text = "services:\n  b: {image: x, ports: nope}\n  a: {image: x, depends_on: 5}\n"
    assert error(tmp_path, text).startswith("stack 's', service 'b': field 'ports'")


# --- paths -----------------------------------------------------------------------------

def test_paths_resolve_against_the_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "images" / "legacy").mkdir(parents=True)
    (project / "fixtures").mkdir()
    (project / "src" / "req.txt").write_text("websockets>=14\n")
    stacks = project / "tests" / "stacks"
    stacks.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    spec = load_stack_file(write(stacks, """
        services:
          api:
            build: {context: ../../src, dockerfile: docker/Dockerfile, target: run,
                    args: {V: 2}, requirements: ../../src/req.txt, packages: [ffmpeg]}
            volumes: [../../fixtures:/fixtures:ro, data:/data, /abs:/abs]
          plain: {build: ../../src}
    """), environ={})
    api = spec.service("api")
    assert api.image == Build(name="api", context=project / "src", dockerfile="docker/Dockerfile",
                              target="run", args={"V": "2"}, requirements=project / "src" /
                              "req.txt", packages=["ffmpeg"])
    assert api.mounts == (Mount(str(project / "fixtures"), "/fixtures", True),
                          Mount("data", "/data"), Mount("/abs", "/abs"))
    assert spec.service("plain").image == Build(name="plain", context=project / "src")
    assert spec.volumes == ("data",)
    legacy = load_stack_file(write(project, "services: {old: {build: legacy}}"), environ={})
    assert legacy.service("old").image == Build(name="legacy", context=project / "images" /
                                                "legacy")


@pytest.mark.parametrize(("build", "message"), [
    ("./nowhere", "field 'build' = './nowhere': no directory "),
    ("{context: nowhere}", "field 'build.context' = 'nowhere': no directory "),
    ("{context: ., requirements: none.txt}", "field 'build.requirements' = 'none.txt': no "
     "file "),
    ("{dockerfile: Dockerfile}", "field 'build' = {'dockerfile': 'Dockerfile'}: the build "
     "names no context"),
])
def test_missing_build_paths(tmp_path: Path, build: str, message: str) -> None:
    got = error(tmp_path, f"services:\n  web:\n    build: {build}\n")
    assert got.startswith(f"stack 's', service 'web': {message}"), got


# --- building blocks -------------------------------------------------------------------

class FakeKits:
    """The resolver another engineer supplies from the kit registry, faked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Mapping[str, Any]]] = []

    def __call__(self, block: str, options: Mapping[str, Any], /) -> ServiceSpec:
        self.calls.append((block, dict(options)))
        if block == "broken":
            raise KeyError("no block 'broken' (blocks: mediamtx)")
        if block != "mediamtx":
            raise SpecError(stack=None, service=None, field="use", value=block,
                            problem="no kit defines this block (blocks: mediamtx)",
                            fix="use one of the blocks above")
        if options.get("flavour", "standin") not in {"standin", "upstream"}:
            raise SpecError(stack=None, service=None, field="with.flavour",
                            value=options["flavour"], problem="unknown flavour",
                            fix="use standin or upstream")
        return ServiceSpec(name="mediamtx", image="mtx:1", ports=[8554, 9997],
                           environment={"MTX_LOG": "info", "KEEP": "1"}, labels={"a": "1"},
                           ready=[Http(9997, "/v3/paths/list")])


def test_a_block_with_overrides(tmp_path: Path) -> None:
    kits = FakeKits()
    spec = load(tmp_path, """
        services:
          media:
            use: mediamtx
            with: {flavour: "${FLAVOUR:-upstream}"}
            environment: {MTX_LOG: debug}
            labels: {b: "2"}
            ready_timeout: 90
          app: {image: app:1, depends_on: [media]}
    """, services=kits)
    media = spec.service("media")
    assert kits.calls == [("mediamtx", {"flavour": "upstream"})]
    assert media.name == "media" and media.image == "mtx:1"
    assert media.environment == {"MTX_LOG": "debug", "KEEP": "1"}
    assert media.labels == {"a": "1", "b": "2"}
    assert media.ports == (Port(8554), Port(9997))
    assert media.ready == (Http(9997, "/v3/paths/list"),)
    assert media.ready_timeout == 90.0


@pytest.mark.parametrize(("entry", "message"), [
    ("use: nosuch", "field 'use' = 'nosuch': no kit defines this block (blocks: mediamtx)\n"
     "  fix: use one of the blocks above"),
    ("use: broken", "field 'use' = 'broken': unknown building block: no block 'broken' "
     "(blocks: mediamtx)"),
    ("use: mediamtx\n    with: {flavour: x}", "field 'with.flavour' = 'x': unknown flavour\n"
     "  fix: use standin or upstream"),
    ("use: mediamtx\n    with: standin", "field 'with' = 'standin': must be a mapping of the "
     "block's options"),
    ("use: mediamtx\n    ports: [1]\n", "field 'ready' = \"Http(9997, '/v3/paths/list', "
     "status=200)\": probes port 9997, which the service does not publish"),
])
def test_block_errors(tmp_path: Path, entry: str, message: str) -> None:
    got = error(tmp_path, f"services:\n  media:\n    {entry}\n", services=FakeKits())
    assert got.startswith(f"stack 's', service 'media': {message}"), got


def test_a_block_without_a_resolver(tmp_path: Path) -> None:
    assert error(tmp_path, "services:\n  media: {use: mediamtx}\n") == (
        "stack 's', service 'media': field 'use' = 'mediamtx': no kit supplies building "
        "blocks to this load\n  fix: load the file through envkit (--envkit-stack, "
        "Envkit.spec), or pass services= to load_stack_file"
    )


# --- the schema file -------------------------------------------------------------------

def test_the_schema_is_valid_draft_2020_12_and_ships_in_the_package() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA_PATH.parent.parent.name == "envkit"
    service_fields = set(schema["$defs"]["service"]["properties"])
    spec_fields = set(ServiceSpec.__dataclass_fields__) - {"name"}
    assert spec_fields <= service_fields | {"image"}, spec_fields - service_fields
