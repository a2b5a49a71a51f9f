"""Hostile input: property-based tests (hypothesis) over everything a user types.

The promise (README, issue 14): every malformed stack file, compose file, spec argument,
``${...}`` string or CLI argument gives a :class:`SpecError` (or the CLI's exit code with
a message on stderr) that names the field, the value and the fix; never another exception,
never a traceback from inside envkit, never a hang. Each test draws a valid input, spoils
one place of it with a hostile value (wrong types, unicode, huge strings, deep nesting,
YAML alias bombs, binary), and checks what comes out.

The example counts are fixed and derandomized so that CI runs the same inputs every time;
run with ``--hypothesis-show-statistics`` to see how many inputs each test tried.
"""

from __future__ import annotations

import functools
import io
import math
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import redirect_stderr, redirect_stdout, suppress
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envkit import _yamlread, cli
from envkit._interpolate import InterpolationError, Secrets, interpolate
from envkit.camera import cli as camera_cli
from envkit.compose import load_compose
from envkit.errors import SpecError
from envkit.readiness import Check, ContainerState, Exec, Healthy, Http, LogLine, NotReady, Tcp
from envkit.spec import (
    Build,
    Healthcheck,
    Mount,
    ServiceSpec,
    StackSpec,
    parse_device,
    parse_mount,
    parse_port,
)
from envkit.stackfile import load_stack_file

#: Fixed and derandomized: the same inputs on every run, the whole module in ~20 s.
FEW = settings(max_examples=60, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.function_scoped_fixture])
MANY = settings(FEW, max_examples=150)

#: The longest message a SpecError may have, however large the offending value.
MESSAGE_LIMIT = 2000

# --- hostile values ----------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=24)  # any text a file can hold
#: Strings that mean something to some field: near-misses are the likeliest mistakes.
_TRICKY = st.sampled_from([
    "", " ", "0", "-1", "65536", "99999", "8080", "8080/udp", "8080/xyz", "80:80", "1e400",
    "nan", "inf", "-inf", "30s", "1m30s", "abc", "a:b", "a:b:c:d", "/abs:/in", "./rel:/in",
    "../../etc:/in", "~/x:/in", "data:/x:rw", "data:rel", "/var/run/docker.sock:/s", "/:/h",
    "c 81:* rmw", "CMD", "NONE", "${", "${X}", "${X:-1}", "${X:?boom}", "${secret:a}", "$$",
    "${:-}", "}${", "a \"b", "'", "\\", "\x00", "\x7f", "é", "🙂", "\u202e", "\ufeff",
    "envkit.x", "[", "{", "*a", "&a", "!!python/object", "\n", "\t", "yes", "~",
    "started", "service_healthy", "nope", "SIGKILL", "root", "1000:1000",
])
_HUGE = st.builds(lambda n, c: c * n, st.integers(1000, 5000), st.sampled_from("x/$é"))
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), _TEXT, _TRICKY, _HUGE,
)
HOSTILE = st.recursive(
    _SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.one_of(_TEXT, _TRICKY, st.integers(), st.booleans()), kids, max_size=4),
    max_leaves=12,
)


def check_spec_error(exc: BaseException) -> SpecError:
    """*exc* is a SpecError that names its field and value, gives a fix and stays short."""
    assert isinstance(exc, SpecError), f"{type(exc).__name__}: {str(exc)[:500]}"
    text = str(exc)
    assert exc.field, text
    assert f"field {exc.field!r} = " in text, text
    assert exc.fix and "\n  fix: " in text, text
    assert len(text) <= MESSAGE_LIMIT, f"{len(text)} characters: {text[:300]}..."
    return exc


def outcome(fn: Callable[[], object]) -> SpecError | None:
    """``None`` if *fn* accepts its input, else its checked SpecError."""
    try:
        fn()
    except Exception as exc:  # anything but a SpecError fails check_spec_error
        return check_spec_error(exc)
    return None


def attempt(fn: Callable[[], Any]) -> tuple[Any, SpecError | None]:
    """What *fn* returned and ``None``, or ``None`` and its checked SpecError."""
    try:
        return fn(), None
    except Exception as exc:  # anything but a SpecError fails check_spec_error
        return None, check_spec_error(exc)


def root_of(field: str) -> str:
    """``ready[0].tcp`` -> ``ready``; ``build.context`` -> ``build``."""
    return re.split(r"[.\[]", field, maxsplit=1)[0]


# --- what an accepted spec must be ------------------------------------------------------
# The properties below do not only check the shape of errors: whatever envkit accepts must
# be something the engine and the probes accept too, by this module's own reading of their
# rules (not envkit's code), or the mistake surfaces later, at probe or engine time.

_ACCOUNT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?", re.ASCII)
_SIGNALS = {s.name.removeprefix("SIG") for s in signal.Signals} | {
    f"RT{m}{d}{n}" for m, d in (("MIN", "+"), ("MAX", "-")) for n in range(1, 16)}


def _is_account(text: str) -> bool:
    return bool(_ACCOUNT.fullmatch(text)) and (not text.isdigit() or int(text) < 2**32 - 1)


@functools.cache
def closing_port() -> int:
    """A local port whose server accepts and closes at once: every probe of it ends fast."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(server.getsockname()[1])


class ProbeTarget:
    """A running container whose every port is :func:`closing_port`; exec fails."""

    service = "web"
    secrets: frozenset[str] = frozenset()

    def host_endpoint(self, port: int | str) -> tuple[str, int]:
        return "127.0.0.1", closing_port()

    def state(self) -> ContainerState:
        return ContainerState("running", health="starting")

    def logs(self) -> str:
        return "booting\nlistening on :8080\n"

    def exec(self, command: Sequence[str]) -> tuple[int, str]:
        return 1, "no"


def assert_probes_sanely(check: Check) -> None:
    """A check that was built describes itself and probes: ready, or NotReady, nothing else."""
    assert isinstance(check.describe(), str)
    with suppress(NotReady):
        check.probe(ProbeTarget())


def assert_sane(svc: ServiceSpec) -> None:
    """An accepted service holds only values the engine and the probes take."""
    parts = svc.user.split(":") if svc.user is not None else []
    assert len(parts) <= 2 and all(map(_is_account, parts)), svc.user
    sig = svc.stop_signal
    assert sig is None or sig.strip().upper().removeprefix("SIG") in _SIGNALS or (
        sig.strip().isdecimal() and 1 <= int(sig) <= 64), sig
    assert all(isinstance(g, str) and _is_account(g) for g in svc.group_add), svc.group_add
    assert set(svc.conditions) == set(svc.depends_on), (svc.conditions, svc.depends_on)
    assert svc.ready_timeout is None or 0 < svc.ready_timeout < math.inf
    assert 0 <= svc.stop_timeout < math.inf
    for check in svc.ready:
        assert_probes_sanely(check)


# --- stack files ------------------------------------------------------------------------

#: A valid service using every field, so that spoiling one field spoils only that field.
BASE_SERVICE: dict[str, Any] = {
    "image": "nginx:1.27", "command": ["nginx", "-g", "daemon off;"],
    "environment": {"A": "1"}, "ports": [8080], "aliases": ["www"],
    "ready": [{"tcp": 8080}], "ready_timeout": 30, "stop_timeout": 2,
    "devices": [], "device_cgroup_rules": ["c 81:* rmw"], "tmpfs": ["/tmp"],
    "volumes": ["data:/data"], "entrypoint": ["/docker-entrypoint.sh"],
    "stop_signal": "SIGTERM", "init": True, "user": "1000",
    "healthcheck": {"test": ["CMD", "true"], "interval": 1, "retries": 3},
    "labels": {"team": "video"}, "group_add": ["video", 44],
}
SERVICE_FIELDS = [*BASE_SERVICE, "build", "use", "with", "depends_on", "conditions",
                  "no_such_field"]
#: Fields whose spoiling may rightly be reported on another field of the same service.
RELATED = {"ports": {"ports", "ready"}, "image": {"image", "build"},
           "build": {"build", "image"}, "use": {"use", "image"}, "with": {"with", "use"},
           "conditions": {"conditions", "depends_on"}, "depends_on": {"depends_on"}}


def stack_doc(field: str, value: Any) -> dict[str, Any]:
    service = dict(BASE_SERVICE)
    if field == "build":
        service.pop("image")
    service[field] = value
    return {"name": "shop", "services": {"web": service, "db": {"image": "postgres:16"}}}


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: the tests' time is YAML


def dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_DUMPER, allow_unicode=True, sort_keys=False)


def load_text(tmp_path: Path, text: str | bytes, name: str = "stack.yml") -> StackSpec:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return load_stack_file(path, environ={"X": "1"})


@MANY
@given(field=st.sampled_from(SERVICE_FIELDS), value=HOSTILE)
def test_a_spoiled_service_field_is_a_spec_error_naming_it(
    tmp_path: Path, field: str, value: Any,
) -> None:
    spec, exc = attempt(lambda: load_text(tmp_path, dump(stack_doc(field, value))))
    if exc is None:
        assert_sane(spec.service("web"))
        # web has no depends_on: a condition for any service would be silently ignored
        assert field != "conditions" or not value, value
        return
    assert exc.stack == "shop", exc
    if exc.service is not None:
        assert exc.service == "web", exc
    assert root_of(exc.field) in RELATED.get(field, {field}), exc


_NESTED = {"build": ["context", "dockerfile", "args", "target", "requirements", "packages",
                     "name", "nope"],
           "healthcheck": ["test", "interval", "timeout", "start_period", "retries", "nope"]}
_CHECKS = ["tcp", "http", "log", "healthy", "exec", "nope"]


@FEW
@given(outer=st.sampled_from([*_NESTED, "ready"]), data=st.data())
def test_a_spoiled_nested_field_is_a_spec_error_naming_its_path(
    tmp_path: Path, outer: str, data: st.DataObject,
) -> None:
    value = data.draw(HOSTILE, label="value")
    if outer == "ready":
        kind = data.draw(st.sampled_from(_CHECKS), label="check")
        inner = {"port": value} if kind == "http" and data.draw(st.booleans()) else value
        doc = stack_doc("ready", [{kind: inner}])
    else:
        key = data.draw(st.sampled_from(_NESTED[outer]), label="key")
        nested = {"name": "web"} if outer == "build" else {"test": ["CMD", "true"]}
        doc = stack_doc(outer, {**nested, key: value})
    spec, exc = attempt(lambda: load_text(tmp_path, dump(doc)))
    if exc is None:
        assert_sane(spec.service("web"))
    else:
        assert exc.service == "web" and root_of(exc.field) in RELATED.get(outer, {outer}), exc


@FEW
@given(field=st.sampled_from(["name", "services", "version", "x-anchors"]), value=HOSTILE)
def test_a_spoiled_top_level_is_a_spec_error(tmp_path: Path, field: str, value: Any) -> None:
    doc = stack_doc("image", "nginx:1.27")
    doc[field] = value
    exc = outcome(lambda: load_text(tmp_path, dump(doc)))
    if exc is not None and exc.service is None:
        assert root_of(exc.field) in {field, "(file)", "services"}, exc


@FEW
@given(raw=st.one_of(st.binary(max_size=200), _TEXT.map(str.encode),
                     HOSTILE.map(lambda v: dump(v).encode())))
def test_any_bytes_as_a_stack_file(tmp_path: Path, raw: bytes) -> None:
    outcome(lambda: load_text(tmp_path, raw))


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return "services: " + opener * depth + closer * depth + "\n"


def alias_bomb(levels: int, fan: int = 10) -> str:
    lines = ["x-0: &a0 [" + ", ".join(["lol"] * fan) + "]"]
    lines += [f"x-{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]"
              for i in range(1, levels)]
    return "\n".join([*lines, "services: {web: {image: nginx}}", ""])


@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pure-python"])
@pytest.mark.parametrize(("text", "words"), [
    (nested(100), "nest"), (nested(100_000), "nest"),
    (nested(50_000, "{a: ", "}"), "nest"), ("a: &a [1, *a]\nservices: {}\n", "own anchor"),
    (alias_bomb(6), "values"), (alias_bomb(9), "values"), (alias_bomb(30, 2), "values"),
    ("services: {web: {image: '" + "x" * 3_000_000 + "'}}\n", "bytes"),
])
def test_bombs_and_giants_are_refused_with_the_limit_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, words: str, libyaml: bool,
) -> None:
    if not libyaml:
        monkeypatch.setattr(_yamlread, "_LOADER", _yamlread._PurePythonLoader)
    exc = outcome(lambda: load_text(tmp_path, text))
    assert exc is not None and exc.field == "(file)" and words in str(exc), exc


@settings(FEW, max_examples=30)
@given(depth=st.integers(1, 80), fan=st.integers(1, 12), levels=st.integers(1, 8))
def test_nesting_and_aliases_below_the_limits_load(
    tmp_path: Path, depth: int, fan: int, levels: int,
) -> None:
    """Only what exceeds the documented limits is refused (aliases count each use)."""
    text = alias_bomb(levels, fan).replace("services: {web: {image: nginx}}", "services: "
                                           "{web: {image: nginx, labels: {a: '1'}}}\nx-n: "
                                           + "[" * depth + "]" * depth)
    exc = outcome(lambda: load_text(tmp_path, text))
    size, total = 0, 0
    for _ in range(levels):  # x-i: a list of fan copies of x-(i-1) (or of a scalar)
        size = fan * (size or 1) + 1
        total += size + 1  # and its key
    total += depth + 8  # the nested list and the services
    if total in range(100_000 - 20, 100_000 + 20):
        return  # within the rounding of the few values counted around them
    within = depth < 64 and total <= 100_000
    assert (exc is None) == within, (depth, fan, levels, total, exc)


# --- interpolation ----------------------------------------------------------------------

_DOLLARS = st.text(st.sampled_from("${}:-?+$ABX_0é"), max_size=40)


@MANY
@given(text=st.one_of(_DOLLARS, _TEXT, _TRICKY))
def test_interpolation_raises_only_its_own_error(text: str) -> None:
    try:
        out = interpolate(text, environ={"A": "a", "B": ""}, generated=Secrets())
    except InterpolationError as exc:
        assert exc.problem and exc.fix
    else:
        assert isinstance(out, str)


@pytest.mark.parametrize("text", ["${A:-" * 5000 + "}" * 5000, "${" * 100_000,
                                  "${A:-${B:-${C:?" * 2000])
def test_deeply_nested_interpolation_is_an_error_not_a_crash(tmp_path: Path,
                                                             text: str) -> None:
    doc = stack_doc("environment", {"DEEP": text})
    exc = outcome(lambda: load_text(tmp_path, dump(doc)))
    assert exc is not None and exc.field == "environment.DEEP", exc


@FEW
@given(text=_DOLLARS)
def test_interpolated_fields_name_their_place(tmp_path: Path, text: str) -> None:
    exc = outcome(lambda: load_text(tmp_path, dump(stack_doc("labels", {"k": text}))))
    if exc is not None:
        assert (exc.service, exc.field) == ("web", "labels.k"), exc


# --- compose files ----------------------------------------------------------------------

COMPOSE_SERVICE: dict[str, Any] = {
    "image": "nginx:1.27", "command": "nginx", "entrypoint": ["/e.sh"],
    "environment": ["A=1"], "env_file": [], "ports": ["8080:80"], "expose": [80],
    "healthcheck": {"test": ["CMD", "true"], "interval": "1s", "retries": 3},
    "devices": [], "volumes": ["data:/data"], "tmpfs": ["/tmp"], "user": "1000",
    "init": True, "stop_grace_period": "1s", "stop_signal": "SIGTERM",
    "labels": {"a": "b"}, "networks": {"default": {"aliases": ["www"]}},
    "security_opt": ["no-new-privileges"], "depends_on": ["db"],
    "x-envkit": {"ready": [{"tcp": 80}], "ready_timeout": "30s"}, "group_add": ["video"],
}
COMPOSE_FIELDS = [*COMPOSE_SERVICE, "build", "profiles", "restart", "nope"]


def compose_doc(field: str, value: Any) -> dict[str, Any]:
    service = dict(COMPOSE_SERVICE)
    service[field] = value
    return {"services": {"web": service, "db": {"image": "postgres:16"}},
            "volumes": {"data": {}}}


def load_compose_text(tmp_path: Path, text: str | bytes) -> StackSpec:
    path = tmp_path / "docker-compose.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load_compose(path, environ={"X": "1"})


@MANY
@given(field=st.sampled_from(COMPOSE_FIELDS), value=HOSTILE)
def test_a_spoiled_compose_field_is_a_spec_error_naming_it(
    tmp_path: Path, field: str, value: Any,
) -> None:
    spec, exc = attempt(lambda: load_compose_text(tmp_path, dump(compose_doc(field, value))))
    if exc is None:
        assert_sane(spec.service("web"))
        return
    if exc.field == "(keys)":
        return
    if exc.service is not None:
        assert exc.service == "web", exc
    related = {field, "x-envkit", "ready", "image", "ports", "depends_on"} if field in {
        "x-envkit", "ports", "build", "image", "depends_on"} else {field}
    assert root_of(exc.field) in related, exc


@FEW
@given(key=st.sampled_from(["ready", "ready_timeout", "build", "nope"]),
       nested_key=st.sampled_from(["interval", "timeout", "retries", "start_period",
                                   "test", "disable"]),
       value=HOSTILE, which=st.booleans())
def test_spoiled_compose_extensions_and_healthchecks(
    tmp_path: Path, key: str, nested_key: str, value: Any, which: bool,
) -> None:
    if which:
        doc = compose_doc("x-envkit", {key: value})
    else:
        doc = compose_doc("healthcheck", {"test": ["CMD", "true"], nested_key: value})
    spec, exc = attempt(lambda: load_compose_text(tmp_path, dump(doc)))
    if exc is None:
        assert_sane(spec.service("web"))
    elif exc.field != "(keys)":
        assert exc.service == "web", exc


@FEW
@given(raw=st.one_of(st.binary(max_size=200), HOSTILE.map(lambda v: dump(v).encode()),
                     HOSTILE.map(lambda v: dump({"services": v}).encode())))
def test_any_bytes_as_a_compose_file(tmp_path: Path, raw: bytes) -> None:
    outcome(lambda: load_compose_text(tmp_path, raw))


def test_compose_bombs_are_refused(tmp_path: Path) -> None:
    for text in (nested(100_000), alias_bomb(9)):
        exc = outcome(lambda text=text: load_compose_text(tmp_path, text))  # type: ignore[misc]
        assert exc is not None and exc.field == "(file)", exc


# --- Python specs -----------------------------------------------------------------------

_PY_HOSTILE = st.one_of(HOSTILE, st.builds(object), st.just(b"bytes"),
                        st.frozensets(st.integers(), max_size=3), st.just(math.nan))
SPEC_FIELDS = ["name", "image", "command", "environment", "ports", "aliases", "ready",
               "depends_on", "devices", "tmpfs", "volumes", "user", "labels",
               "ready_timeout", "stop_timeout", "conditions", "entrypoint", "healthcheck",
               "init", "stop_signal", "device_cgroup_rules", "group_add"]


@MANY
@given(field=st.sampled_from(SPEC_FIELDS), value=_PY_HOSTILE)
def test_service_spec_arguments(field: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"name": "web", "image": "nginx:1.27", "ports": [8080],
                              "ready": [Tcp(8080)], field: value}
    spec, exc = attempt(lambda: ServiceSpec(**kwargs))
    if exc is None:
        assert_sane(spec)
        assert field != "conditions" or not value, value  # no depends_on: it would be ignored
    else:
        assert root_of(exc.field) in RELATED.get(field, {field}), exc


_CHECK_MAKERS: list[Callable[[Any], Check]] = [
    Tcp, lambda v: Tcp(8080, v), Http, lambda v: Http(8080, v), lambda v: Http(8080, "/", v),
    lambda v: Http(8080, "/", 200, v), LogLine, Exec, lambda v: Healthy(),
]
_CHECK_TRICKY = st.sampled_from([
    "(", "[", "a{99999999999}", "(?P<x>", "", "/a b", "/é", "/\x00", "x", "/ok?q=1", 8080,
    "8080", "8080/udp", "53/sctp", "abc", 0, 70000, -1, 99, 600, "200", 1e9, -0.5, 61,
    [], [""], ["true"], ("true", 5), ["a\x00b"], "true",
])


@MANY
@given(make=st.sampled_from(_CHECK_MAKERS), value=st.one_of(_PY_HOSTILE, _CHECK_TRICKY))
def test_readiness_checks_are_checked_when_built(
    make: Callable[[Any], Check], value: Any,
) -> None:
    """A bad argument fails where the check is written; a check that builds probes sanely."""
    check, exc = attempt(lambda: make(value))
    if exc is not None:
        assert exc.service is None and root_of(exc.field) in {
            "Tcp", "Http", "LogLine", "Exec"}, exc
        return
    assert_probes_sanely(check)
    exc = outcome(lambda: ServiceSpec(name="web", image="x", ports=[8080], ready=[check]))
    if exc is not None:  # a port the service does not publish
        assert exc.service == "web" and exc.field == "ready", exc


_ENTRY_TRICKY = st.one_of(_CHECK_TRICKY, st.sampled_from([True, False, None, [None], [5]]))


@FEW
@given(kind=st.sampled_from(_CHECKS), data=st.data())
def test_ready_entries_of_stack_and_compose_files_are_checked_at_load(
    tmp_path: Path, kind: str, data: st.DataObject,
) -> None:
    """A ``ready`` entry that loads probes sanely, in stack files and compose files alike."""
    arg = data.draw(st.one_of(HOSTILE, _ENTRY_TRICKY), label="arg")
    if kind == "http" and data.draw(st.booleans(), label="mapping"):
        key = data.draw(st.sampled_from(["port", "path", "status"]), label="key")
        arg = {"port": 8080, key: arg}
    loads = [(lambda: load_text(tmp_path, dump(stack_doc("ready", [{kind: arg}]))), "ready"),
             (lambda: load_compose_text(tmp_path, dump(compose_doc(
                 "x-envkit", {"ready": [{kind: arg}]}))), "x-envkit")]
    for load, place in loads:
        spec, exc = attempt(load)
        if exc is None:
            assert_sane(spec.service("web"))
        elif exc.field != "(keys)":
            assert exc.service == "web" and root_of(exc.field) in {place, "ready", "ports"}, exc


@FEW
@given(field=st.sampled_from(["user", "stop_signal", "group_add"]),
       value=st.one_of(HOSTILE, _TRICKY, st.lists(_TRICKY, max_size=3)).filter(
           lambda v: v is not None and "$" not in repr(v)))
def test_stack_and_compose_files_agree_on_user_signal_and_groups(
    tmp_path: Path, field: str, value: Any,
) -> None:
    """The same value is accepted by both kinds of file, or refused on the same field.

    (``null`` is left out: compose reads it as unset, a stack file refuses it; ``$`` too,
    as the two interpolate differently.)
    """
    stack, stack_exc = attempt(lambda: load_text(tmp_path, dump(
        {"name": "shop", "services": {"web": {"image": "x", field: value}}})))
    compose, compose_exc = attempt(lambda: load_compose_text(tmp_path, dump(
        {"services": {"web": {"image": "x", field: value}}})))
    assert (stack_exc is None) == (compose_exc is None), (value, stack_exc, compose_exc)
    if stack_exc is None:
        assert_sane(stack.service("web"))
        assert getattr(stack.service("web"), field) == getattr(compose.service("web"), field)
    else:
        assert root_of(stack_exc.field) == root_of(compose_exc.field) == field, (
            stack_exc, compose_exc)


_BUILD_FIELDS = ["name", "context", "dockerfile", "args", "target", "requirements",
                 "packages", "namespace"]


@FEW
@given(field=st.sampled_from(_BUILD_FIELDS), value=_PY_HOSTILE)
def test_build_arguments(field: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"name": "api", field: value}
    exc = outcome(lambda: ServiceSpec(name="web", image=Build(**kwargs)))
    if exc is not None:
        assert root_of(exc.field) in {"build", "image"}, exc


@FEW
@given(field=st.sampled_from(["test", "interval", "timeout", "retries", "start_period"]),
       value=_PY_HOSTILE)
def test_healthcheck_arguments(field: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"test": ["CMD", "true"], field: value}

    def build() -> object:  # as far as Docker's create request
        check = Healthcheck(**kwargs)
        return ServiceSpec(name="web", image="x", healthcheck=check) and check.engine_config()

    exc = outcome(build)
    if exc is not None:
        assert exc.field == f"healthcheck.{field}", exc


@FEW
@given(source=_PY_HOSTILE, target=_PY_HOSTILE, read_only=_PY_HOSTILE,
       raw=_PY_HOSTILE)
def test_mounts_ports_and_devices(source: Any, target: Any, read_only: Any, raw: Any) -> None:
    for fn, name in ((lambda: parse_mount(Mount(source, target, read_only)), "volumes"),
                     (lambda: parse_mount(raw), "volumes"), (lambda: parse_port(raw), "ports"),
                     (lambda: parse_device(raw), "devices")):
        exc = outcome(fn)
        assert exc is None or exc.field == name, exc


@FEW
@given(name=_PY_HOSTILE, services=_PY_HOSTILE)
def test_stack_spec_arguments(name: Any, services: Any) -> None:
    web = ServiceSpec(name="web", image="x")
    for kwargs in ({"name": name, "services": [web]}, {"name": "s", "services": services},
                   {"name": "s", "services": [web, services]}):
        outcome(lambda kwargs=kwargs: StackSpec(**kwargs))  # type: ignore[misc]


# --- the CLI ----------------------------------------------------------------------------

_WORDS = st.sampled_from([
    "up", "down", "ps", "gc", "images", "doctor", "ls", "build", "prune", "--stack",
    "--json", "--detach", "--session", "--all", "--older-than", "--dry-run", "-h",
    "--help", "--version", "-", "--", "--stack=", "--older-than=-1", "--older-than=1e400",
    "nope", "stack.yml", "/dev/null", "/", "demo",
])
ARGV = st.lists(st.one_of(_WORDS, _WORDS, _TEXT, _TRICKY), max_size=6)


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The CLI in-process with no engine at all: a command that needs one fails at once.

    Nothing here may reach a real engine (``down --all`` is among the generated commands),
    so the docker SDK's client itself refuses to be made, whatever path envkit takes to it.
    """
    def refuse(*_: object, **__: object) -> None:
        raise docker.errors.DockerException("no engine in unit tests")

    monkeypatch.setattr(docker.api.client.APIClient, "__init__", refuse)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/envkit-test.sock")
    for var in ("ENVKIT_STACK", "ENVKIT_SESSION", "ENVKIT_GC_OLDER_THAN",
                "ENVKIT_DOCKER_HOSTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    yield


def run_cli(argv: list[str], main: Callable[[list[str]], int] = cli.main,
            ) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def check_cli(code: int, err: str) -> None:
    assert code in {cli.EXIT_OK, cli.EXIT_FAILURE, cli.EXIT_USAGE}, (code, err)
    assert "Traceback" not in err, err
    if code != cli.EXIT_OK:
        assert err.strip(), "a failure says why on stderr"
        assert err.rstrip().splitlines()[-1].strip(), err
        assert len(err) < 4 * MESSAGE_LIMIT, err[:500]


@MANY
@given(argv=ARGV)
def test_any_argv(no_engine: None, argv: list[str]) -> None:
    code, _, err = run_cli(argv)
    check_cli(code, err)


@FEW
@given(value=st.one_of(_TEXT, _TRICKY))
def test_bad_older_than_is_a_usage_error(no_engine: None, value: str) -> None:
    code, _, err = run_cli(["gc", "--older-than", value])
    check_cli(code, err)
    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*[smhd]?\s*", value):
        assert code == cli.EXIT_USAGE and "--older-than" in err, (code, err)


@FEW
@given(field=st.sampled_from(SERVICE_FIELDS), value=HOSTILE)
def test_up_with_a_malformed_stack_file_exits_2_naming_the_field(
    no_engine: None, tmp_path: Path, field: str, value: Any,
) -> None:
    (tmp_path / "bad.yml").write_text(dump(stack_doc(field, value)), encoding="utf-8")
    code, out, err = run_cli(["up", "--stack", str(tmp_path / "bad.yml")])
    check_cli(code, err)
    assert out == ""
    if "engine" not in err:  # the spec was valid: up failed on the absent engine instead
        assert code == cli.EXIT_USAGE and "field '" in err and "fix:" in err, (code, err)


def test_no_engine_fixture_really_has_no_engine(no_engine: None) -> None:
    code, _, err = run_cli(["down", "--all"])
    assert code == cli.EXIT_FAILURE and "no engine in unit tests" in err


_CAMERA_WORDS = st.sampled_from([
    "token", "--ttl", "--role", "viewer", "operator", "admin", "root", "st", "-h", "--",
    "inf", "-inf", "nan", "-1", "0", "0.5", "1", "3600", "1e9", "1e400", "--ttl=nan",
])


@FEW
@given(argv=st.lists(st.one_of(_CAMERA_WORDS, _CAMERA_WORDS, _TEXT, _TRICKY), max_size=6))
def test_camera_cli_any_argv(no_engine: None, argv: list[str]) -> None:
    code, _, err = run_cli(argv, camera_cli.main)
    check_cli(code, err)


@FEW
@given(ttl=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                     st.integers(-(2**70), 2**70).map(str), _TEXT, _TRICKY))
def test_camera_token_ttl_out_of_range_is_a_usage_error(no_engine: None, ttl: str) -> None:
    """``--ttl`` inf, NaN, negative, below a second or past a year: exit 2, one error line."""
    code, out, err = run_cli(["token", "st", f"--ttl={ttl}"], camera_cli.main)
    check_cli(code, err)
    try:
        good = 1 <= float(ttl) <= camera_cli.MAX_TTL
    except ValueError:
        good = False
    if good:  # a valid token request: it fails on the absent engine instead
        assert code == camera_cli.EXIT_FAILURE and "engine" in err, (code, err)
    else:
        assert code == camera_cli.EXIT_USAGE and out == "", (code, err)
        assert err.splitlines()[-1].startswith("envkit-camera token: error: argument --ttl"), err
