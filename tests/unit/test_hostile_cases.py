"""Malformed values found late before issue 14.4's last gaps were closed, one test each.

Each was accepted at construction or load and failed only at probe or engine time (or
never: a condition for a service that is not a dependency was dropped). Now each is a
:class:`SpecError` naming the field, the value and the fix where it is written; the CLI's
``--ttl`` is a usage error. The properties in ``test_hostile_input`` keep the rules general.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from envkit.camera import cli as camera_cli
from envkit.compose import load_compose
from envkit.config import Settings
from envkit.errors import EnvkitError, SpecError
from envkit.readiness import Check, Exec, Http, LogLine, Tcp
from envkit.spec import ServiceSpec
from envkit.stackfile import load_stack_file


def refused(make: Callable[[], object]) -> SpecError:
    with pytest.raises(SpecError) as info:
        make()
    exc = info.value
    assert f"field {exc.field!r} = " in str(exc) and exc.fix, exc
    return exc


@pytest.mark.parametrize(("make", "field", "words"), [
    (lambda: LogLine(5), "LogLine.pattern", "must be a non-empty regular expression"),
    (lambda: LogLine(""), "LogLine.pattern", "must be a non-empty regular expression"),
    (lambda: LogLine("("), "LogLine.pattern", "not a regular expression"),
    (lambda: LogLine("a{99999999999}"), "LogLine.pattern", "not a regular expression"),
    (lambda: Exec(5), "Exec.command", "must be a list of arguments"),
    (lambda: Exec("pg_isready"), "Exec.command", "must be a list of arguments"),
    (lambda: Exec([]), "Exec.command", "a program and its arguments"),
    (lambda: Exec(("ok", 5)), "Exec.command", "a program and its arguments"),
    (lambda: Exec(("a\x00b",)), "Exec.command", "without NUL"),
    (lambda: Http(80, 5), "Http.path", "must be a URL path"),
    (lambda: Http(80, "health"), "Http.path", "must be a URL path"),
    (lambda: Http(80, "/a b"), "Http.path", "must be a URL path"),
    (lambda: Http(80, "/caf\u00e9"), "Http.path", "must be a URL path"),
    (lambda: Http(80, "/", "x"), "Http.status", "must be an HTTP status code"),
    (lambda: Http(80, "/", True), "Http.status", "must be an HTTP status code"),
    (lambda: Http(80, "/", 600), "Http.status", "must be an HTTP status code"),
    (lambda: Http(80, "/", 200, "ok"), "Http.body", "must be a function"),
    (lambda: Http("abc"), "Http.port", "not a container port"),
    (lambda: Tcp("abc"), "Tcp.port", "not a container port"),
    (lambda: Tcp(0), "Tcp.port", "not a container port"),
    (lambda: Tcp(70000), "Tcp.port", "not a container port"),
    (lambda: Tcp(8080.0), "Tcp.port", "must be a container port"),
    (lambda: Tcp(True), "Tcp.port", "must be a container port"),
    (lambda: Tcp("53/udp"), "Tcp.port", "connects over TCP, not udp"),
    (lambda: Tcp(80, -1), "Tcp.settle", "from 0 to 60"),
    (lambda: Tcp(80, math.nan), "Tcp.settle", "from 0 to 60"),
    (lambda: Tcp(80, math.inf), "Tcp.settle", "from 0 to 60"),
    (lambda: Tcp(80, 61), "Tcp.settle", "from 0 to 60"),
    (lambda: Tcp(80, "0.1"), "Tcp.settle", "from 0 to 60"),
])
def test_readiness_check_arguments_are_refused_when_built(
    make: Callable[[], Check], field: str, words: str,
) -> None:
    exc = refused(make)
    assert exc.field == field and words in exc.problem and exc.service is None, exc


def test_good_checks_still_build_and_a_list_command_becomes_a_tuple() -> None:
    assert Exec(["pg_isready", "-U", "pg"]).command == ("pg_isready", "-U", "pg")
    assert Http(8080, "/health?full=1", 204).describe() == (
        "Http(8080, '/health?full=1', status=204)")
    assert Tcp("8080/tcp", 0).describe() == "Tcp(8080/tcp)"
    assert LogLine(r"^ready\.$").pattern == r"^ready\.$"


def svc(**fields: Any) -> ServiceSpec:
    return ServiceSpec(name="web", image="nginx:1.27", **fields)


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"group_add": 5}, "group_add", "must be a list of group names or ids"),
    ({"group_add": "video"}, "group_add", "must be a list of group names or ids"),
    ({"group_add": [-1]}, "group_add", "not a group name or an id from 0"),
    ({"group_add": ["a b"]}, "group_add", "not a group name"),
    ({"group_add": [2**32]}, "group_add", "not a group name"),
    ({"user": -1}, "user", "must be user[:group]"),
    ({"user": ""}, "user", "must be user[:group]"),
    ({"user": "-1"}, "user", "must be user[:group]"),
    ({"user": "1000:"}, "user", "must be user[:group]"),
    ({"user": "a:b:c"}, "user", "must be user[:group]"),
    ({"user": "root\n"}, "user", "must be user[:group]"),
    ({"stop_signal": ""}, "stop_signal", "not a signal name"),
    ({"stop_signal": "SIGFOO"}, "stop_signal", "not a signal name"),
    ({"stop_signal": "0"}, "stop_signal", "not a signal name"),
    ({"stop_signal": 15}, "stop_signal", "not a signal name"),
    ({"conditions": {"db": "started"}}, "conditions.db", "'db' is not in depends_on"),
    ({"depends_on": ["db"], "conditions": {"cache": "healthy"}}, "conditions.cache",
     "'cache' is not in depends_on (db)"),
    ({"depends_on": ["db"], "conditions": {"db": ["started"]}}, "depends_on.db",
     "not a dependency condition"),
])
def test_service_values_are_refused(fields: dict[str, Any], field: str, words: str) -> None:
    exc = refused(lambda: svc(**fields))
    assert (exc.service, exc.field) == ("web", field) and words in exc.problem, exc


def test_a_stray_condition_names_the_fix() -> None:
    exc = refused(lambda: svc(conditions={"db": "started"}))
    assert exc.fix == "add 'db' to depends_on, or remove it from conditions"


def test_good_service_values_are_kept() -> None:
    web = svc(user="1000:video", stop_signal="sigquit", group_add=["video", 44, " audio "],
              depends_on=["db"], conditions={"db": "started"})
    assert (web.user, web.stop_signal, web.group_add) == ("1000:video", "sigquit",
                                                          ("video", "44", "audio"))
    assert dict(web.conditions) == {"db": "started"} and svc(stop_signal="RTMIN+3")


def test_replace_with_fewer_dependencies_drops_their_conditions() -> None:
    """Carried-over conditions of dropped dependencies are not the user's mistake."""
    api = svc(depends_on={"db": "started", "cache": "completed"})
    assert dict(replace(api, depends_on=["cache"]).conditions) == {"cache": "completed"}
    assert dict(replace(api, depends_on=()).conditions) == {}


def stack_file(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "stack.yml"
    path.write_text(f"name: s\nservices:\n  db: {{image: pg}}\n  web:\n    image: nginx\n"
                    f"    ports: [80]\n    {line}\n", encoding="utf-8")
    return path


def compose_file(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "docker-compose.yml"
    path.write_text(f"services:\n  db: {{image: pg}}\n  web:\n    image: nginx\n"
                    f"    ports: ['80']\n    {line}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("line", "field", "value"), [
    ("group_add: 5", "group_add", 5), ("group_add: [-1]", "group_add", -1),
    ("user: -1", "user", "-1"), ("user: ''", "user", ""), ("user: true", "user", True),
    ("stop_signal: ''", "stop_signal", ""), ("stop_signal: SIGFOO", "stop_signal", "SIGFOO"),
])
def test_stack_and_compose_files_refuse_the_same_values(
    tmp_path: Path, line: str, field: str, value: object,
) -> None:
    from_stack = refused(lambda: load_stack_file(stack_file(tmp_path, line), environ={}))
    from_compose = refused(lambda: load_compose(compose_file(tmp_path, line), environ={}))
    for exc in (from_stack, from_compose):
        assert (exc.service, exc.field, exc.value) == ("web", field, value), exc


def test_a_stray_condition_in_a_stack_file(tmp_path: Path) -> None:
    path = stack_file(tmp_path, "conditions: {db: started}")
    exc = refused(lambda: load_stack_file(path, environ={}))
    assert (exc.stack, exc.service, exc.field, exc.value) == ("s", "web", "conditions.db",
                                                              "started")


@pytest.mark.parametrize("line", ["user: 1000", "stop_signal: 9", "group_add: [video, 44]"])
def test_numbers_in_files_are_read_as_written(tmp_path: Path, line: str) -> None:
    key, _, text = line.partition(": ")
    want = ("video", "44") if key == "group_add" else text
    for spec in (load_stack_file(stack_file(tmp_path, line), environ={}),
                 load_compose(compose_file(tmp_path, line), environ={})):
        assert getattr(spec.service("web"), key) == want


@pytest.mark.parametrize(("entry", "field", "words"), [
    ("{log: '('}", "log", "not a regular expression"),
    ("{http: {port: 80, status: x}}", "http.status", "must be an HTTP status code"),
    ("{http: {port: 80, status: ' 204'}}", "http.status", "must be an HTTP status code"),
    ("{http: {path: /}}", "http.port", "must be a container port"),
    ("{http: {port: 80, path: 'a b'}}", "http.path", "must be a URL path"),
    ("{exec: null}", "exec", "must be a list of arguments"),
    ("{exec: []}", "exec", "a program and its arguments"),
    ("{exec: [null]}", "exec", "a program and its arguments"),
    ("{tcp: '53/udp'}", "tcp", "connects over TCP"),
])
def test_compose_ready_entries_are_checked_at_load(tmp_path: Path, entry: str, field: str,
                                                   words: str) -> None:
    path = compose_file(tmp_path, f"x-envkit: {{ready: [{entry}]}}")
    exc = refused(lambda: load_compose(path, environ={}))
    assert exc.field == f"x-envkit.ready[0].{field}" and words in exc.problem, exc


@pytest.mark.parametrize(("entry", "field"), [
    ("{log: '('}", "ready[0].log"), ("{tcp: '53/udp'}", "ready[0].tcp"),
    ("{http: {port: 80, path: 'a b'}}", "ready[0].http.path"),
    ("{exec: ['']}", "ready[0].exec"),
])
def test_stack_ready_entries_name_their_place(tmp_path: Path, entry: str, field: str) -> None:
    path = stack_file(tmp_path, f"ready: [{entry}]")
    exc = refused(lambda: load_stack_file(path, environ={}))
    assert (exc.service, exc.field) == ("web", field), exc


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0"])
def test_ready_timeout_setting_must_be_finite_and_positive(value: str) -> None:
    with pytest.raises(EnvkitError, match=r"ENVKIT_READY_TIMEOUT.*positive, finite"):
        Settings.from_env({"ENVKIT_READY_TIMEOUT": value})


def test_a_long_field_name_is_cut_in_the_message() -> None:
    exc = SpecError(stack=None, service="web", field="environment." + "K" * 5000, value=1,
                    problem="p", fix="set " + "K" * 5000)
    assert len(str(exc)) < 1000 and f"field {exc.field!r}" in str(exc)


@pytest.mark.parametrize("ttl", ["inf", "-inf", "nan", "-5", "0", "0.5", "1e400",
                                 "99999999999", "abc", ""])
def test_camera_token_bad_ttl_exits_2_with_one_error_line(ttl: str) -> None:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = camera_cli.main(["token", "some-stack", f"--ttl={ttl}"])
    assert code == camera_cli.EXIT_USAGE and "Traceback" not in err.getvalue()
    last = err.getvalue().strip().splitlines()[-1]
    assert last.startswith("envkit-camera token: error: argument --ttl: not a lifetime"), last
