"""One service's container: created through testcontainers, handled through docker-py.

testcontainers' ``DockerContainer`` does the create-and-start; envkit hands it every
option (network and aliases, labels, devices, tmpfs, init) and then keeps a thin handle
around the container id, in the manner of docker-py's resource models.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import docker.errors
from docker.models.containers import Container
from docker.types import EndpointConfig
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer

from envkit import _engine
from envkit._engine import Engine
from envkit.errors import DeviceNotFoundError, EngineError
from envkit.readiness import ContainerState
from envkit.spec import ServiceSpec


@dataclass(kw_only=True)
class ServiceHandle:
    """A started service: its container and the host ports Docker assigned.

    Implements :class:`envkit.readiness.Target`.
    """

    service: str
    image: str
    container: Container
    host: str
    ports: dict[str, int] = field(default_factory=dict)

    def host_endpoint(self, port: int | str) -> tuple[str, int]:
        """Host address and host port of container *port* (``8080`` or ``"8080/tcp"``).

        :raises KeyError: when the port is not published, naming those that are.
        """
        key = str(port) if "/" in str(port) else f"{port}/tcp"
        try:
            return self.host, self.ports[key]
        except KeyError:
            published = ", ".join(sorted(self.ports)) or "none"
            raise KeyError(
                f"service {self.service!r} does not publish {key} (published: {published}); "
                "add it to the service's ports"
            ) from None

    def port_map(self) -> dict[str, str]:
        """``{"8080/tcp": "127.0.0.1:49153"}``, the shape ``envkit up --json`` prints."""
        return {key: f"{self.host}:{port}" for key, port in sorted(self.ports.items())}

    def refresh(self) -> None:
        """Re-read the host ports: Docker may assign new ones when a container restarts."""
        _engine.call(f"inspect {self.service}", self.container.reload)
        self.ports = _published_ports(self.container)

    def state(self) -> ContainerState:
        """Reload and summarize the container's state (one engine request)."""
        _engine.call(f"inspect {self.service}", self.container.reload)
        raw = self.container.attrs.get("State", {})
        health = raw.get("Health", {}).get("Status") if raw.get("Health") else None
        return ContainerState(
            status=str(raw.get("Status", "unknown")),
            exit_code=raw.get("ExitCode"),
            oom_killed=bool(raw.get("OOMKilled", False)),
            health=health,
        )

    def logs(self) -> str:
        """Everything the container wrote to stdout and stderr."""
        raw = _engine.call(f"read logs of {self.service}", self.container.logs)
        return bytes(raw).decode("utf-8", "replace")

    def exec(self, command: Sequence[str]) -> tuple[int, str]:
        """Run *command* in the container; return its exit code and output."""
        # One attempt: a retried exec could outlast the readiness deadline several times.
        result = _engine.call(
            f"exec in {self.service}", lambda: self.container.exec_run(list(command)),
            attempts=1,
        )
        return int(result.exit_code), bytes(result.output or b"").decode("utf-8", "replace")


def check_devices(spec: ServiceSpec) -> None:
    """Fail before creating anything when a mapped host device is absent.

    :raises DeviceNotFoundError: naming the device and the similar ones that exist.
    """
    for device in spec.device_mappings:
        if not os.path.exists(device.host):
            folder = os.path.dirname(device.host) or "/dev"
            stem = os.path.basename(device.host).rstrip("0123456789")
            try:
                similar = sorted(
                    os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(stem)
                )
            except OSError:
                similar = []
            raise DeviceNotFoundError(service=spec.name, device=device.host, available=similar)


def create_service(
    *,
    engine: Engine,
    spec: ServiceSpec,
    image: str,
    network: str,
    labels: dict[str, str],
    container_name: str,
) -> ServiceHandle:
    """Create and start *spec*'s container on *network* and learn its host ports.

    :raises EngineError: when Docker refuses the container.
    """
    # Ryuk needs an image pulled from a registry and the Docker socket inside a
    # container; envkit's labels and reaper do its job, so it stays off.
    testcontainers_config.ryuk_disabled = True
    action = f"start service {spec.name!r} ({image})"
    fix = "check the service's image, command and devices"
    attempts: list[int] = []

    def start() -> DockerContainer:
        if attempts:
            _remove_partial(engine, container_name, labels)
        attempts.append(1)
        return builder.start()

    try:
        builder = _builder(engine, spec, image, network=network, labels=labels,
                           container_name=container_name)
        _engine.call(action, start, attempts=3, network_race=True, fix=fix)
    except EngineError:
        raise
    except Exception as exc:  # testcontainers' own errors
        raise EngineError(action=action, cause=str(exc), fix=fix) from exc
    container: Container = builder.get_wrapped_container()
    _engine.call(f"inspect {spec.name}", container.reload)
    return ServiceHandle(
        service=spec.name, image=image, container=container, host=engine.host_address,
        ports=_published_ports(container),
    )


def _remove_partial(engine: Engine, name: str, labels: dict[str, str]) -> None:
    """Remove what a failed attempt created, if it carries this stack's labels."""
    # Best effort: its failure must not replace the start failure being retried.
    with contextlib.suppress(docker.errors.DockerException):
        leftover = engine.client.containers.get(name)
        if leftover.labels.get("envkit.stack") == labels.get("envkit.stack"):
            leftover.remove(force=True, v=True)


def _builder(
    engine: Engine, spec: ServiceSpec, image: str, *, network: str,
    labels: dict[str, str], container_name: str,
) -> DockerContainer:
    builder = DockerContainer(image, docker_client_kw={"version": engine.api_version})
    # A hub prefix (TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX) is for pulled images; envkit's
    # images are local and already resolved.
    builder.image = image
    # testcontainers makes its own client from the process environment, which may name
    # another engine than envkit's (an injected environment, a docker context): every
    # container goes through envkit's one connection instead.
    own = builder.get_docker_client()
    own.client.close()
    own.client = engine.client
    if spec.command is not None:
        builder.with_command(list(spec.command))
    builder.with_envs(**spec.environment)
    builder.with_name(container_name)
    for port in spec.published:
        # Host port left empty: Docker binds a free one itself, so nothing can race us.
        builder.ports[str(port)] = (engine.publish_ip,)  # type: ignore[assignment]
    for entry in spec.tmpfs:
        path, _, options = entry.partition(":")
        builder.tmpfs[path] = options
    aliases = [spec.name, *spec.aliases]
    builder.with_kwargs(
        labels=labels,
        network=network,
        networking_config={network: EndpointConfig(engine.api_version, aliases=aliases)},
        hostname=spec.name,
        init=True,
        devices=[str(d) for d in spec.device_mappings],
        user=spec.user,
        security_opt=["no-new-privileges"],
        detach=True,
    )
    return builder


def _published_ports(container: Container) -> dict[str, int]:
    bindings = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
    ports: dict[str, int] = {}
    for key, entries in bindings.items():
        for entry in entries or []:
            # An IPv6 twin of the binding may exist; any entry carries the same port.
            ports.setdefault(key, int(entry["HostPort"]))
    return ports
