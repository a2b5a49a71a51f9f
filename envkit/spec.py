"""Typed, immutable stack specs, validated at construction and never touching Docker.

A mistake in a spec is found when the spec is built, before any container exists, and
the error names the service, the field, the bad value and the fix.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from types import MappingProxyType
from typing import Any

from envkit.errors import NameNotFoundError, SpecError
from envkit.labels import reserved
from envkit.readiness import Check

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CGROUP_RULE = re.compile(r"^[abc] (\d+|\*):(\d+|\*) [rwm]{1,3}$")
_PORT = re.compile(r"^(\d{1,5})(?:/(tcp|udp|sctp))?$")
_PERMS = re.compile(r"^[rwm]{1,3}$")
_VOLUME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
DEFAULT_STOP_TIMEOUT = 2.0
#: How a dependent waits for a service it depends on: its container started, its
#: readiness checks passed (``healthy``, the default), or it exited 0 (``completed``).
CONDITIONS = ("started", "healthy", "completed")
# compose's spellings, and "ready" (what envkit called a plain dependency), are accepted.
_CONDITION_ALIASES = {"service_started": "started", "service_healthy": "healthy",
                      "service_completed_successfully": "completed", "ready": "healthy"}


def _frozen(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType({str(k): str(v) for k, v in (mapping or {}).items()})


def _seq(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


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
        object.__setattr__(self, "args", _frozen(self.args))
        object.__setattr__(self, "packages", tuple(sorted(set(_seq(self.packages)))))

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
    parts = raw.split(":")
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
        test = ("CMD-SHELL", self.test) if isinstance(self.test, str) else tuple(self.test)
        if not test or test[0] not in {"CMD", "CMD-SHELL", "NONE"}:
            raise SpecError(stack=None, service=None, field="healthcheck.test", value=self.test,
                            problem="must start with CMD, CMD-SHELL or NONE",
                            fix="write e.g. ['CMD', 'curl', '-f', 'http://localhost/'] or "
                            "['CMD-SHELL', 'pg_isready']")
        object.__setattr__(self, "test", test)

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


def _dependencies(
    value: object, conditions: Mapping[str, str], service: str
) -> tuple[object, dict[str, str]]:
    """``depends_on`` as names, and every dependency's condition (``healthy`` by default).

    A mapping ``{"db": "healthy"}`` gives both at once; *conditions* (what a
    :func:`dataclasses.replace` carries over) fills in the rest.
    """
    if isinstance(value, Mapping):
        given = {str(k): str(v) for k, v in value.items()}
        value = tuple(given)
    else:
        given = {}
    names = (value,) if isinstance(value, str) else value
    merged: dict[str, str] = {}
    for name in names if isinstance(names, Sequence) else ():
        raw = given.get(name, conditions.get(name, "healthy")) if isinstance(name, str) else ""
        condition = _CONDITION_ALIASES.get(raw, raw)
        if condition not in CONDITIONS:
            raise SpecError(stack=None, service=service, field=f"depends_on.{name}", value=raw,
                            problem="not a dependency condition",
                            fix="use started, healthy (readiness checks passed; the "
                            "default) or completed (exited 0)")
        merged[str(name)] = condition
    return value, merged


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """One container of a stack.

    :param name: the service name, also its alias on the stack's network.
    :param command: the command, as a list, or a string split like a shell would.
    :param image: an image tag, or a :class:`Build` of a context under ``images/``.
    :param ports: container ports to publish on ephemeral host ports (127.0.0.1).
    :param aliases: extra network aliases besides *name*.
    :param ready: readiness checks, all of which must pass.
    :param depends_on: services that must be ready before this one starts; a mapping
        ``{"db": "started"}`` names each one's condition (see :data:`CONDITIONS`).
    :param conditions: the condition of each dependency (``healthy`` unless said
        otherwise); filled in from a mapping *depends_on*.
    :param entrypoint: replaces the image's ENTRYPOINT (a list, or a string split like
        a shell would); ``None`` keeps it.
    :param healthcheck: Docker's HEALTHCHECK for the container (wait on it with
        :class:`~envkit.readiness.Healthy`).
    :param init: run an init process as PID 1 (reaps zombies, forwards signals).
    :param stop_signal: the signal teardown sends first (``SIGTERM`` unless the image
        says otherwise).
    :param devices: ``host[:container[:perms]]`` device mappings.
    :param tmpfs: ``path[:options]`` tmpfs mounts.
    :param device_cgroup_rules: device cgroup rules such as ``c 81:* rmw``: device nodes
        the container may create (mknod) and open later, while it runs (hot-plug).
    :param volumes: ``name:/path[:ro]`` (a volume of the stack, made with it and removed
        with it; services naming the same volume share it) or ``/host/path:/path[:ro]``
        (a bind mount; the host path must be absolute), or :class:`Mount` objects.
    :param ready_timeout: this service's deadline; ``None`` takes the settings' default.
    :param stop_timeout: seconds between SIGTERM and SIGKILL at teardown.
    """

    name: str
    image: str | Build
    command: str | Sequence[str] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    ports: Sequence[int | str | Port] = ()
    aliases: Sequence[str] = ()
    ready: Sequence[Check] = ()
    depends_on: Sequence[str] | Mapping[str, str] = ()
    devices: Sequence[str | Device] = ()
    tmpfs: Sequence[str] = ()
    volumes: Sequence[str | Mount] = ()
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ready_timeout: float | None = None
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    conditions: Mapping[str, str] = field(default_factory=dict)
    entrypoint: str | Sequence[str] | None = None
    healthcheck: Healthcheck | None = None
    init: bool = True
    stop_signal: str | None = None
    device_cgroup_rules: Sequence[str] = ()

    def __post_init__(self) -> None:
        self._check_name_and_image()
        put = object.__setattr__
        deps, conditions = _dependencies(self.depends_on, self.conditions, self.name)
        put(self, "depends_on", deps)
        put(self, "conditions", MappingProxyType(conditions))
        self._check_types()
        # A string command is split like a shell would (docker-py and compose do the same).
        for name in ("command", "entrypoint"):
            value = getattr(self, name)
            value = shlex.split(value) if isinstance(value, str) else value
            put(self, name, tuple(str(v) for v in value) if value is not None else None)
        put(self, "environment", _frozen(self.environment))
        put(self, "labels", _frozen(self.labels))
        # One port may be given alone: "8080" is the port 8080, not the ports 8, 0, 8, 0.
        ports = (self.ports,) if isinstance(self.ports, str | int) else self.ports
        put(self, "ports", tuple(
            p if isinstance(p, Port) else parse_port(p, service=self.name) for p in ports
        ))
        devices = (self.devices,) if isinstance(self.devices, str | Device) else self.devices
        put(self, "devices", tuple(
            d if isinstance(d, Device) else parse_device(d, service=self.name) for d in devices
        ))
        volumes = (self.volumes,) if isinstance(self.volumes, str | Mount) else self.volumes
        put(self, "volumes", tuple(parse_mount(v, service=self.name) for v in volumes))
        put(self, "aliases", _seq(self.aliases))
        put(self, "ready", tuple(self.ready))
        deps = self.depends_on  # names by now: a mapping was split into names and conditions
        put(self, "depends_on", (deps,) if isinstance(deps, str) else tuple(deps))
        put(self, "tmpfs", _seq(self.tmpfs))
        put(self, "device_cgroup_rules", _seq(self.device_cgroup_rules))
        for rule in self.device_cgroup_rules:
            if not _CGROUP_RULE.match(rule):
                raise self._fail("device_cgroup_rules", rule, "not a device cgroup rule",
                                 "write TYPE MAJOR:MINOR ACCESS, e.g. 'c 81:* rmw'")
        self._check_labels_and_timeouts()
        self._check_probed_ports()

    def _fail(self, field_name: str, value: object, problem: str, fix: str) -> SpecError:
        return SpecError(
            stack=None, service=self.name, field=field_name, value=value, problem=problem, fix=fix
        )

    def _check_name_and_image(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise self._fail("name", self.name, "not a valid service name",
                             "use lowercase letters, digits, '-' and '_' (max 63)")
        if isinstance(self.image, Build):
            if not _NAME.match(self.image.name):
                raise self._fail("image", self.image.name, "not a valid build name",
                                 "name a directory under images/, e.g. Build(name='testsvc')")
        elif not isinstance(self.image, str) or not self.image.strip():
            raise self._fail("image", self.image, "the image is empty",
                             "give an image tag such as 'nginx:1.27', or Build(name='...')")

    def _check_types(self) -> None:
        """Refuse values of the wrong type with a SpecError, before anything iterates them."""
        for name in ("environment", "labels"):
            if not isinstance(getattr(self, name), Mapping):
                raise self._fail(name, getattr(self, name), "must be a mapping of names to values",
                                 f"write e.g. {name}={{'KEY': 'value'}}")
        for name in ("ready_timeout", "stop_timeout"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or
                                      not isinstance(value, int | float)):
                raise self._fail(name, value, "must be a number of seconds",
                                 f"write e.g. {name}=30")
        for name in ("ports", "devices", "volumes"):
            value = getattr(self, name)
            if not isinstance(value, str | int | Sequence | Mount | Device) or isinstance(
                value, bool
            ):
                raise self._fail(name, value, "must be a list",
                                 f"write e.g. {name}=[...] (a tuple or a list)")
        if isinstance(self.ready, str) or not isinstance(self.ready, Sequence) or not all(
            callable(getattr(c, "probe", None)) for c in self.ready
        ):
            raise self._fail("ready", self.ready, "must be a list of readiness checks",
                             "write e.g. ready=[Http(8080, '/health')]")
        for name in ("aliases", "depends_on", "tmpfs"):
            value = getattr(self, name)
            items = (value,) if isinstance(value, str) else value
            if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in items):
                raise self._fail(name, value, "must be a name or a list of names",
                                 f"write e.g. {name}=['web']")

    def _check_labels_and_timeouts(self) -> None:
        taken = reserved(self.labels)
        if taken:
            raise self._fail("labels", taken, "keys inside the reserved 'envkit.' namespace",
                             "rename these labels; envkit sets its own")
        if self.healthcheck is not None and not isinstance(self.healthcheck, Healthcheck):
            raise self._fail("healthcheck", self.healthcheck, "must be a Healthcheck",
                             "write e.g. healthcheck=Healthcheck(test=['CMD', 'true'])")
        if self.ready_timeout is not None and self.ready_timeout <= 0:
            raise self._fail("ready_timeout", self.ready_timeout, "must be positive",
                             "give seconds, e.g. 30")
        if self.stop_timeout < 0:
            raise self._fail("stop_timeout", self.stop_timeout, "must not be negative",
                             "give seconds, e.g. 2 (0 kills at once)")

    def _check_probed_ports(self) -> None:
        # Host-side probes reach the service through a published port only.
        for check in self.ready:
            port = getattr(check, "port", None)
            if port is None:
                continue
            try:
                probed = parse_port(port, service=self.name)
            except SpecError as exc:
                # The check is wrong, not the service's ports: blame the check.
                raise self._fail("ready", check.describe(), "probes something that is not a "
                                 "container port", exc.fix) from None
            if probed not in self.published:
                raise self._fail("ready", check.describe(),
                                 f"probes port {port}, which the service does not publish",
                                 f"add {port} to the service's ports")

    def condition(self, dependency: str) -> str:
        """How this service waits for *dependency*: ``started``, ``healthy`` or ``completed``."""
        return self.conditions.get(dependency, "healthy")

    @property
    def published(self) -> tuple[Port, ...]:
        """The normalized ports (typed view of ``ports`` after validation)."""
        return tuple(p for p in self.ports if isinstance(p, Port))

    @property
    def device_mappings(self) -> tuple[Device, ...]:
        """The normalized devices (typed view of ``devices`` after validation)."""
        return tuple(d for d in self.devices if isinstance(d, Device))

    @property
    def mounts(self) -> tuple[Mount, ...]:
        """The normalized volumes and bind mounts (typed view of ``volumes``)."""
        return tuple(m for m in self.volumes if isinstance(m, Mount))


@dataclass(frozen=True, kw_only=True)
class StackSpec:
    """A named set of services on one private network.

    :raises SpecError: for a bad stack name, no services, a duplicate service name, an
        unknown dependency or a dependency cycle.
    """

    name: str
    services: Sequence[ServiceSpec]

    @classmethod
    def from_compose(
        cls, path: str | Path, *, services: Sequence[str] | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        environ: Mapping[str, str] | None = None, profiles: Sequence[str] = (),
    ) -> StackSpec:
        """The stack a compose file describes (see :mod:`envkit.compose`).

        :param services: run only these services (and what they depend on).
        :param overrides: per service, :class:`ServiceSpec` fields that replace the file's
            (``environment`` and ``labels`` are merged into it).
        :param environ: the variables ``${VAR}`` reads; ``os.environ`` by default.
        :raises SpecError: for unsupported keys (all of them, with their lines) or any
            invalid value.
        """
        from envkit.compose import load_compose  # noqa: PLC0415 - compose imports spec

        return load_compose(path, services=services, overrides=overrides,
                            environ=environ, profiles=profiles)

    def __post_init__(self) -> None:
        object.__setattr__(self, "services", tuple(self.services))
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise SpecError(stack=str(self.name), service=None, field="name", value=self.name,
                            problem="not a valid stack name",
                            fix="use lowercase letters, digits, '-' and '_' (max 63)")
        if not self.services:
            raise SpecError(stack=self.name, service=None, field="services", value=(),
                            problem="a stack needs at least one service",
                            fix="add a ServiceSpec")
        self._check_names()
        self._check_dependencies()

    def _check_names(self) -> None:
        seen: set[str] = set()
        for svc in self.services:
            if svc.name in seen:
                raise SpecError(stack=self.name, service=svc.name, field="name", value=svc.name,
                                problem="duplicate service name",
                                fix="give every service of a stack its own name")
            seen.add(svc.name)

    def _check_dependencies(self) -> None:
        names = {svc.name for svc in self.services}
        for svc in self.services:
            for dep in svc.depends_on:
                if dep not in names:
                    raise SpecError(
                        stack=self.name, service=svc.name, field="depends_on", value=dep,
                        problem=f"unknown service (services: {', '.join(sorted(names))})",
                        fix="name a service of this stack, or add the missing service",
                    )
        try:
            tuple(self._sorter().static_order())
        except CycleError as exc:
            cycle = " -> ".join(reversed(exc.args[1]))
            first = exc.args[1][0]
            raise SpecError(stack=self.name, service=first, field="depends_on", value=cycle,
                            problem="dependency cycle",
                            fix="remove one of the depends_on edges in the cycle") from None

    @property
    def volumes(self) -> tuple[str, ...]:
        """The names of the stack's volumes, each made once however many services mount it."""
        return tuple(sorted({m.source for svc in self.services for m in svc.mounts
                             if m.is_volume}))

    def _sorter(self) -> TopologicalSorter[str]:
        return TopologicalSorter({svc.name: set(svc.depends_on) for svc in self.services})

    def service(self, name: str) -> ServiceSpec:
        """Return the service called *name*.

        :raises NameNotFoundError: (a :class:`KeyError`) naming the services that exist.
        """
        for svc in self.services:
            if svc.name == name:
                return svc
        raise NameNotFoundError(
            f"stack {self.name!r} has no service {name!r} "
            f"(services: {', '.join(s.name for s in self.services)})",
            fix="use one of those names")

    def start_order(self) -> Iterator[ServiceSpec]:
        """Services with every dependency before its dependents."""
        for name in self._sorter().static_order():
            yield self.service(name)
