"""The value types of a spec: builds, ports, devices, mounts and Docker healthchecks.

Split from :mod:`envkit.spec` (which re-exports every public name here) so that the
service and stack specs stay readable; each type validates itself, or is made by a
``parse_*`` function that raises a :class:`~envkit.errors.SpecError` naming the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from envkit.errors import SpecError

_PORT = re.compile(r"^(\d{1,5})(?:/(tcp|udp|sctp))?$")
_PERMS = re.compile(r"^[rwm]{1,3}$")
_VOLUME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

def frozen_map(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    """A read-only copy of *mapping* with its keys and values as strings."""
    return MappingProxyType({str(k): str(v) for k, v in (mapping or {}).items()})


def as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """One string, or a sequence of them, as a tuple (``None`` is empty)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


#: How a dependent waits for a service it depends on: its container started, its
#: readiness checks passed (``healthy``, the default), or it exited 0 (``completed``).
CONDITIONS = ("started", "healthy", "completed")
# compose's spellings, and "ready" (what envkit called a plain dependency), are accepted.
_CONDITION_ALIASES = {"service_started": "started", "service_healthy": "healthy",
                      "service_completed_successfully": "completed", "ready": "healthy"}


class ReadOnlyMap(Mapping[str, str]):
    """A read-only copy of a mapping, keys and values as strings, that reprs as a dict.

    Not a :class:`types.MappingProxyType` (as :func:`frozen_map`) so that subclasses can
    mark what a mapping is (:class:`Conditions`) or change how it shows
    (:class:`envkit._privileges.Environment`).
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data = {str(k): str(v) for k, v in (data or {}).items()}

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)


class Conditions(ReadOnlyMap):
    """A service's dependency conditions as its spec normalized them: read-only.

    A type of its own so that a :func:`dataclasses.replace` with fewer ``depends_on``
    can tell the conditions it carries over (those of dropped dependencies go quietly)
    from conditions a user wrote, where an entry for a service that is not a dependency
    is an error: it would be ignored.
    """

    __slots__ = ()


def dependencies(
    value: object, conditions: Mapping[str, str], service: str
) -> tuple[object, Conditions]:
    """``depends_on`` as names, and every dependency's condition (``healthy`` by default).

    A mapping ``{"db": "healthy"}`` gives both at once; *conditions* fills in the rest.

    :raises SpecError: for an unknown condition, or a condition the user gave for a
        service that is not in ``depends_on``.
    """
    given = {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else {}
    value = tuple(given) if isinstance(value, Mapping) else value
    names = (value,) if isinstance(value, str) else value
    listed = [n for n in names if isinstance(n, str)] if isinstance(names, Sequence) else []
    for key in () if isinstance(conditions, Conditions) else conditions:
        if key not in listed:
            raise SpecError(stack=None, service=service, field=f"conditions.{key}",
                            value=conditions[key], problem=f"{key!r} is not in depends_on "
                            f"({', '.join(listed) or 'empty'}), so the condition would be "
                            "ignored", fix=f"add {key!r} to depends_on, or remove it from "
                            "conditions")
    merged: dict[str, str] = {}
    for name in listed:
        raw = given.get(name, conditions.get(name, "healthy"))
        condition = _CONDITION_ALIASES.get(raw, raw) if isinstance(raw, str) else raw
        if condition not in CONDITIONS:
            raise SpecError(stack=None, service=service, field=f"depends_on.{name}", value=raw,
                            problem="not a dependency condition",
                            fix="use started, healthy (readiness checks passed; the "
                            "default) or completed (exited 0)")
        merged[name] = str(condition)
    return value, Conditions(merged)


#: Docker's signal names (``SIG`` optional, any case), as its ParseSignal knows them.
_SIGNALS = frozenset({
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
    "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
    "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    "RTMIN", "RTMAX", *(f"RTMIN+{n}" for n in range(1, 16)),
    *(f"RTMAX-{n}" for n in range(1, 15))})
#: A user or group of ``user[:group]``: a name (letters, digits, ``_.-``) or an id.
_ACCOUNT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?")
_MAX_ID = 2**32 - 2  # Linux: uid_t is 32 bits and -1 means "unchanged"


def is_signal(value: object) -> bool:
    """Whether *value* names a signal the engine knows: ``SIGTERM``, ``term``, ``15``."""
    if not isinstance(value, str):
        return False
    name = value.strip().upper().removeprefix("SIG")
    return name in _SIGNALS or (name.isdigit() and name.isascii() and 1 <= int(name) <= 64)


def is_account(value: object) -> bool:
    """Whether *value* is a user or group name, or an id from 0 to 2**32 - 2."""
    if isinstance(value, int) and not isinstance(value, bool):
        return 0 <= value <= _MAX_ID
    if not isinstance(value, str) or not _ACCOUNT.fullmatch(value):
        return False
    return not value.isdigit() or int(value) <= _MAX_ID


@dataclass(frozen=True, kw_only=True)
class Build:
    """An image envkit builds from a context directory, tagged by the hash of its inputs.

    :param name: the image's name within its project: ``envkit/<project>/<name>:<hash>``.
    :param context: the build context; a relative path resolves against the stack file's
        directory (YAML) or the project root (pytest's rootdir, else the working
        directory), never ``PWD``. ``None`` means ``images/<name>`` under the project root.
    :param dockerfile: the Dockerfile, relative to *context*.
    :param args: build args; ``BASE_IMAGE`` defaults to the project's Debian base.
    :param target: the stage of a multi-stage Dockerfile to build.
    :param requirements: a pip requirements file (relative like *context*) whose wheels
        the host downloads and the image installs offline, into ``/opt/envkit/venv``.
    :param packages: Debian packages the image's base adds to envkit's minimal list; a
        base is bootstrapped per package set (``envkit/base:<suite>-<digest>``), so two
        projects' lists never rebuild each other's. The project's own list (setting
        ``base_packages``) is added to builds of the current project.
    :param namespace: the project the tag belongs to; ``None`` is the current project.
        Kits set their own (``camera-kit``), so their images are shared, not duplicated.
    """

    name: str
    context: str | Path | None = None
    dockerfile: str = "Dockerfile"
    args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    requirements: str | Path | None = None
    packages: Sequence[str] = ()
    namespace: str | None = None

    def __post_init__(self) -> None:
        self._check_types()
        object.__setattr__(self, "args", frozen_map(self.args))
        object.__setattr__(self, "packages", tuple(sorted(set(as_tuple(self.packages)))))

    def _check_types(self) -> None:
        def fail(name: str, want: str, fix: str) -> SpecError:
            return SpecError(stack=None, service=None, field=f"build.{name}",
                             value=getattr(self, name), problem=f"must be {want}", fix=fix)

        if not isinstance(self.name, str):
            raise fail("name", "a name", "write e.g. Build(name='api')")
        for name in ("context", "requirements"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name),
                                                                  str | Path):
                raise fail(name, "a path", f"write e.g. {name}='...' or a pathlib.Path")
        for name in ("target", "namespace"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise fail(name, "a string", f"write e.g. {name}='runtime', or leave it out")
        if not isinstance(self.dockerfile, str) or not self.dockerfile:
            raise fail("dockerfile", "a path relative to the context",
                       "write e.g. dockerfile='docker/Dockerfile'")
        if not isinstance(self.args, Mapping):
            raise fail("args", "a mapping of build args", "write e.g. args={'VERSION': '1.2'}")
        packages = self.packages
        if not isinstance(packages, str | Sequence) or not all(
                isinstance(p, str) for p in ((packages,) if isinstance(packages, str)
                                             else packages)):
            raise fail("packages", "a list of Debian package names",
                       "write e.g. packages=['ffmpeg']")

    def __str__(self) -> str:
        return str(self.context) if self.context is not None else f"images/{self.name}"

    def resolved(self, root: Path) -> Build:
        """Return this build with *context* and *requirements* absolute against *root*."""
        context = Path(self.context) if self.context is not None else Path("images") / self.name
        reqs = None if self.requirements is None else root / Path(self.requirements)
        return replace(self, context=(root / context).resolve(),
                       requirements=None if reqs is None else reqs.resolve())


@dataclass(frozen=True)
class Port:
    """A container port to publish on an ephemeral host port."""

    number: int
    protocol: str = "tcp"

    def __str__(self) -> str:
        return f"{self.number}/{self.protocol}"


@dataclass(frozen=True)
class Device:
    """A host device node passed into the container."""

    host: str
    container: str
    permissions: str = "rwm"

    def __str__(self) -> str:
        return f"{self.host}:{self.container}:{self.permissions}"


@dataclass(frozen=True)
class Mount:
    """A named volume or a host directory mounted into the container.

    :param source: a volume name (``data``: created per stack, removed with it) or an
        absolute host path (a bind mount).
    :param target: the absolute path inside the container.
    :param read_only: mount it read-only.
    """

    source: str
    target: str
    read_only: bool = False

    @property
    def is_volume(self) -> bool:
        """Whether *source* names a volume of the stack rather than a host path."""
        return not self.source.startswith("/")

    def __str__(self) -> str:
        return f"{self.source}:{self.target}:{'ro' if self.read_only else 'rw'}"


#: Bind sources that give a container the machine: the root and the engine's socket.
_FORBIDDEN_BINDS = frozenset({"", "/var/run/docker.sock", "/run/docker.sock"})


def parse_mount(raw: str | Mount, *, service: str | None = None) -> Mount:
    """Parse compose's short syntax ``name:/path[:ro|rw]`` or ``/host/path:/path[:ro|rw]``.

    :raises SpecError: for a relative container path, a relative host path, a bad volume
        name or a mode other than ``ro``/``rw``.
    """
    def fail(problem: str, fix: str) -> SpecError:
        return SpecError(stack=None, service=service, field="volumes", value=raw,
                         problem=problem, fix=fix)

    if isinstance(raw, Mount):
        source, target, mode = raw.source, raw.target, "ro" if raw.read_only else "rw"
        if not isinstance(source, str) or not isinstance(target, str) or not isinstance(
                raw.read_only, bool):
            raise fail("a Mount's source and target must be strings, read_only true or false",
                       fix="write e.g. Mount('data', '/var/lib/data', read_only=True)")
    elif isinstance(raw, str) and 2 <= len(raw.split(":")) <= 3:
        source, target, mode = (*raw.split(":"), "rw")[:3]
    else:
        raise fail("not of the form source:/container/path[:ro]",
                   fix="write e.g. 'data:/var/lib/data' (a volume) or '/srv/in:/in:ro' (a bind)")
    if not target.startswith("/"):
        raise fail(f"the container path {target!r} is not absolute",
                   fix=f"write it from the root, e.g. '{source}:/{target}'")
    if mode not in {"ro", "rw"}:
        raise fail(f"unknown mode {mode!r}", fix="use 'ro' (read-only) or 'rw' (the default)")
    if "/" in source and not source.startswith("/"):
        raise fail(f"the host path {source!r} is relative",
                   fix="give an absolute host path (in Python, e.g. str(Path(...).resolve())); "
                   "stack files resolve relative paths against their own directory")
    if source.rstrip("/") in _FORBIDDEN_BINDS or source.endswith("/docker.sock"):
        raise fail(f"binding {source!r} would hand the container the host or its engine",
                   fix="bind only the files the service needs; envkit never gives a service "
                   "the Docker socket or the host's root")
    if not source.startswith("/") and not _VOLUME.match(source):
        raise fail(f"{source!r} is neither a volume name nor an absolute host path",
                   fix="name a volume with letters, digits, '_', '.' and '-', or give an "
                   "absolute host path")
    return Mount(source, target, mode == "ro")


def parse_port(raw: int | str, *, service: str | None = None) -> Port:
    """Parse ``8080``, ``"8080"`` or ``"8554/udp"``.

    :raises SpecError: for anything else, including a fixed host port.
    """
    match = _PORT.match(str(raw).strip())
    if match is None or not 0 < int(match.group(1)) < 65536:
        fix = "give the container port only, such as 8080 or '8554/udp'"
        if ":" in str(raw):
            fix = "drop the host part: envkit lets Docker pick a free host port (no races)"
        raise SpecError(
            stack=None, service=service, field="ports", value=raw,
            problem="not a container port", fix=fix,
        )
    return Port(int(match.group(1)), match.group(2) or "tcp")


def parse_device(raw: str, *, service: str | None = None) -> Device:
    """Parse ``host[:container[:perms]]`` as Docker's ``--device`` does.

    :raises SpecError: when a path is not absolute or the permissions are not ``rwm``.
    """
    parts = raw.split(":") if isinstance(raw, str) else [""]
    host = parts[0]
    container = parts[1] if len(parts) > 1 and parts[1] else host
    perms = parts[2] if len(parts) > 2 else "rwm"
    if len(parts) > 3 or not host.startswith("/") or not container.startswith("/") or (
        not _PERMS.match(perms)
    ):
        raise SpecError(
            stack=None, service=service, field="devices", value=raw,
            problem="not of the form host[:container[:permissions]]",
            fix="use absolute paths and permissions from 'rwm', e.g. '/dev/video0:/dev/video0:rw'",
        )
    return Device(host, container, perms)


@dataclass(frozen=True, kw_only=True)
class Healthcheck:
    """Docker's own HEALTHCHECK for a container (compose's ``healthcheck``).

    Pair it with the :class:`~envkit.readiness.Healthy` check to wait for it.

    :param test: ``("CMD", "prog", "arg")``, ``("CMD-SHELL", "command")`` or ``("NONE",)``
        (disables the image's own).
    :param interval: seconds between checks; ``None`` keeps Docker's default (30 s).
    :param timeout: seconds one check may run; :param retries: failures before unhealthy.
    :param start_period: seconds during which failures do not count.
    """

    test: Sequence[str]
    interval: float | None = None
    timeout: float | None = None
    retries: int | None = None
    start_period: float | None = None

    def __post_init__(self) -> None:
        raw = self.test
        test = ("CMD-SHELL", raw) if isinstance(raw, str) else tuple(raw) if isinstance(
            raw, Sequence) and not isinstance(raw, bytes) else ()
        if not test or not all(isinstance(t, str) for t in test) or test[0] not in {
                "CMD", "CMD-SHELL", "NONE"}:
            raise SpecError(stack=None, service=None, field="healthcheck.test", value=self.test,
                            problem="must be a list of strings starting with CMD, CMD-SHELL or "
                            "NONE", fix="write e.g. ['CMD', 'curl', '-f', 'http://localhost/'] "
                            "or ['CMD-SHELL', 'pg_isready']")
        object.__setattr__(self, "test", test)
        for name in ("interval", "timeout", "start_period", "retries"):
            value = getattr(self, name)
            whole = name != "retries" or isinstance(value, int)
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, int | float) or not whole or not 0 <= value < 10**9):
                raise SpecError(stack=None, service=None, field=f"healthcheck.{name}",
                                value=value, problem="must be a whole number, 0 or more"
                                if name == "retries" else "must be a number of seconds, 0 "
                                "or more", fix=f"write e.g. {name}=3, or leave it out for "
                                "Docker's default")

    def engine_config(self) -> dict[str, Any]:
        """The ``Healthcheck`` of Docker's create request (durations in nanoseconds)."""
        config: dict[str, Any] = {"Test": list(self.test)}
        for key, seconds in (("Interval", self.interval), ("Timeout", self.timeout),
                             ("StartPeriod", self.start_period)):
            if seconds is not None:
                config[key] = int(seconds * 1e9)
        if self.retries is not None:
            config["Retries"] = self.retries
        return config
