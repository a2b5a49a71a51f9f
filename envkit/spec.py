"""Typed, immutable stack specs, validated at construction and never touching Docker.

A mistake in a spec is found when the spec is built, before any container exists, and
the error names the service, the field, the bad value and the fix.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from envkit import _privileges
from envkit._privileges import DEFAULT_PIDS_LIMIT, DOCKER_DEFAULTS, Environment
from envkit._spec_parts import (
    CONDITIONS,
    Build,
    Device,
    Healthcheck,
    Mount,
    Port,
    as_tuple,
    dependencies,
    frozen_map,
    is_account,
    is_signal,
    parse_device,
    parse_mount,
    parse_port,
)
from envkit.errors import NameNotFoundError, SpecError
from envkit.labels import reserved
from envkit.readiness import Check

# The value types live in envkit._spec_parts; this module is where users import them from.
__all__ = ["CONDITIONS", "DEFAULT_PIDS_LIMIT", "DEFAULT_STOP_TIMEOUT", "DOCKER_DEFAULTS",
           "Build", "Device", "Healthcheck", "Mount", "Port", "ServiceSpec", "StackSpec",
           "parse_device", "parse_mount", "parse_port"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CGROUP_RULE = re.compile(r"^[abc] (\d+|\*):(\d+|\*) [rwm]{1,3}$")
DEFAULT_STOP_TIMEOUT = 2.0


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
        otherwise); filled in from a mapping *depends_on*. An entry for a service that is
        not in *depends_on* is an error (it could only be ignored).
    :param entrypoint: replaces the image's ENTRYPOINT (a list, or a string split like
        a shell would); ``None`` keeps it.
    :param healthcheck: Docker's HEALTHCHECK for the container (wait on it with
        :class:`~envkit.readiness.Healthy`).
    :param init: run an init process as PID 1 (reaps zombies, forwards signals).
    :param stop_signal: the signal teardown sends first (``SIGTERM`` unless the image
        says otherwise).
    :param devices: ``host[:container[:perms]]`` device mappings; the container's user
        gets the group of each host node (unless it is root's), so a service that does not
        run as root opens the devices mapped to it.
    :param tmpfs: ``path[:options]`` tmpfs mounts.
    :param device_cgroup_rules: device cgroup rules such as ``c 81:* rmw``: device nodes
        the container may create (mknod) and open later, while it runs (hot-plug); a rule
        with ``m`` gives the container the ``MKNOD`` capability.
    :param volumes: ``name:/path[:ro]`` (a volume of the stack, made with it and removed
        with it; services naming the same volume share it) or ``/host/path:/path[:ro]``
        (a bind mount; the host path must be absolute), or :class:`Mount` objects.
    :param ready_timeout: this service's deadline; ``None`` takes the settings' default.
    :param stop_timeout: seconds between SIGTERM and SIGKILL at teardown.
    :param user: ``user[:group]`` to run as (name or id); ``None`` keeps the image's USER.
    :param cap_add: the Linux capabilities the container gets: envkit drops all others
        (Docker's usual set is :data:`DOCKER_DEFAULTS`); e.g. ``["CHOWN", "SETUID",
        "SETGID"]`` for an entrypoint that chowns its data and switches user.
    :param group_add: extra groups of the container's user, by name or id (a device's
        group, to open it without root).
    :param read_only: mount the image's file system read-only; give the paths the service
        writes as *tmpfs* or *volumes*.
    :param pids_limit: processes (and threads) the container may have; ``None`` for no
        limit.
    :param mem_limit: memory limit, bytes or ``"512m"``; ``None`` (the default) for none.
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
    cap_add: Sequence[str] = ()
    group_add: Sequence[str | int] = ()
    read_only: bool = False
    pids_limit: int | None = DEFAULT_PIDS_LIMIT
    mem_limit: int | str | None = None

    def __post_init__(self) -> None:
        self._check_name_and_image()
        self._check_scalars()
        put = object.__setattr__
        deps, conditions = dependencies(self.depends_on, self.conditions, self.name)
        put(self, "depends_on", deps)
        put(self, "conditions", conditions)
        self._check_types()
        # A string command is split like a shell would (docker-py and compose do the same).
        for name in ("command", "entrypoint"):
            put(self, name, self._argv(name, getattr(self, name)))
        put(self, "environment", Environment(self.environment))
        put(self, "labels", frozen_map(self.labels))
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
        put(self, "aliases", as_tuple(self.aliases))
        put(self, "ready", tuple(self.ready))
        deps = self.depends_on  # names by now: a mapping was split into names and conditions
        put(self, "depends_on", (deps,) if isinstance(deps, str) else tuple(deps))
        put(self, "tmpfs", as_tuple(self.tmpfs))
        put(self, "device_cgroup_rules", as_tuple(self.device_cgroup_rules))
        for rule in self.device_cgroup_rules:
            if not isinstance(rule, str) or not _CGROUP_RULE.match(rule):
                raise self._fail("device_cgroup_rules", rule, "not a device cgroup rule",
                                 "write TYPE MAJOR:MINOR ACCESS, e.g. 'c 81:* rmw'")
        self._check_labels_and_timeouts()
        self._check_probed_ports()
        self._check_privileges()

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

    def _argv(self, name: str, value: object) -> tuple[str, ...] | None:
        """A command as arguments: a list as given, a string split like a shell would."""
        if value is None:
            return None
        if isinstance(value, str):
            try:
                return tuple(shlex.split(value))
            except ValueError as exc:  # unbalanced quotes, a trailing backslash
                raise self._fail(name, value, f"cannot be split like a shell would: {exc}",
                                 f"balance the quotes, or give a list: {name}=['prog', 'arg']"
                                 ) from None
        if isinstance(value, Sequence) and not isinstance(value, bytes):
            return tuple(str(v) for v in value)
        raise self._fail(name, value, "must be a string or a list of arguments",
                         f"write e.g. {name}=['prog', '--flag']")

    def _check_scalars(self) -> None:
        """Seconds that are finite numbers, and flags and names of their own types."""
        for name in ("ready_timeout", "stop_timeout"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, int | float) or not math.isfinite(value)):
                finite = "finite " if isinstance(value, float) else ""
                raise self._fail(name, value, f"must be a {finite}number of seconds",
                                 f"write e.g. {name}=30")
        if not isinstance(self.init, bool):
            raise self._fail("init", self.init, "must be true or false", "write init=True")
        if self.stop_signal is not None and not is_signal(self.stop_signal):
            raise self._fail("stop_signal", self.stop_signal, "not a signal name",
                             "write e.g. stop_signal='SIGINT' (a name such as SIGTERM or "
                             "SIGQUIT, or a number from 1 to 64), or leave it out")
        rules = self.device_cgroup_rules
        if not isinstance(rules, str | Sequence) or isinstance(rules, bytes):
            raise self._fail("device_cgroup_rules", rules, "must be a list of rules",
                             "write e.g. device_cgroup_rules=['c 81:* rmw']")
        if not isinstance(self.conditions, Mapping):
            raise self._fail("conditions", self.conditions, "must be a mapping of "
                             "dependencies to conditions", "write e.g. conditions={'db': "
                             "'started'}, or depends_on={'db': 'started'}")

    def _check_types(self) -> None:
        """Refuse values of the wrong type with a SpecError, before anything iterates them."""
        for name in ("environment", "labels"):
            if not isinstance(getattr(self, name), Mapping):
                raise self._fail(name, getattr(self, name), "must be a mapping of names to values",
                                 f"write e.g. {name}={{'KEY': 'value'}}")
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
            if not hasattr(check, "port"):
                continue
            port = check.port  # Tcp(None) is a check of no port, not a check without one
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

    def _check_privileges(self) -> None:
        put, name = object.__setattr__, self.name
        put(self, "cap_add", _privileges.capabilities(self.cap_add, field="cap_add",
                                                      service=name))
        put(self, "group_add", _privileges.group_names(self.group_add, service=name))
        put(self, "pids_limit", _privileges.pids_limit(self.pids_limit, service=name))
        put(self, "mem_limit", _privileges.memory_bytes(self.mem_limit, service=name))
        if not isinstance(self.read_only, bool):
            raise self._fail("read_only", self.read_only, "must be true or false",
                             "write read_only=True, and tmpfs=[...] for the paths it writes")
        user = self.user.split(":") if isinstance(self.user, str) else [None]
        if self.user is not None and (len(user) > 2 or not all(map(is_account, user))):
            raise self._fail("user", self.user, "must be user[:group], each a name or an "
                             "id from 0", "write e.g. user='1000:1000' or user='nobody', or "
                             "leave it out for the image's")

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
        if isinstance(self.services, str | bytes | ServiceSpec) or not isinstance(
                self.services, Sequence) or not all(
                isinstance(s, ServiceSpec) for s in self.services):
            raise SpecError(stack=str(self.name), service=None, field="services",
                            value=self.services, problem="must be a list of ServiceSpec",
                            fix="write e.g. services=[ServiceSpec(name='web', image='nginx')]")
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
