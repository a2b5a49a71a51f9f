"""Latency, bandwidth limits and connection resets through a small TCP proxy.

The kernel on envkit's machines has no ``sch_netem``, so ``tc netem`` cannot shape a
container's traffic; a proxy in user space can, for TCP. ``stack.degrade(service, port,
...)`` starts the proxy (``contexts/tcpproxy``: stdlib asyncio on envkit's Debian base,
built like every envkit image) as one more container of the stack, and puts it between
the service and its clients:

- clients on the host: ``stack.endpoint(service, port)`` and ``stack.url`` answer the
  proxy's published port while the degradation lasts;
- clients on the stack's network (``takeover=True``): the proxy takes the service's name
  and aliases there, and the service moves to a network of its own that only the proxy
  shares. The proxy forwards every TCP port of the service and impairs only *port*.

Why move the service rather than only its alias: Docker registers a container's hostname
(envkit sets it to the service name) as an alias on every network it joins, so the name
cannot be taken from a container that stays on the network. The cost of moving: while
degraded with takeover, the service cannot reach its own peers (fine for leaves such as a
database or MediaMTX), its published host ports change (they are read again), and its
peers' open connections break once, as in a network hiccup.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from docker.errors import DockerException

from envkit import _engine
from envkit._containers import ServiceHandle, create_service
from envkit.errors import EnvkitError, StackStateError
from envkit.readiness import LogLine, wait_ready
from envkit.spec import Build, ServiceSpec

if TYPE_CHECKING:
    from envkit.runtime import Stack

#: The proxy's image: built from the context envkit ships, under envkit's own namespace.
PROXY = Build(name="tcpproxy", context=Path(__file__).resolve().parent / "contexts" / "tcpproxy",
              namespace="envkit")
READY = LogLine(r"^envkit proxy listening")


@dataclass(frozen=True, kw_only=True)
class Impairment:
    """What the proxy does to the degraded port's connections, in each direction.

    :param latency: seconds added to every chunk of data (like netem's ``delay``).
    :param jitter: up to this many seconds more, uniformly random, per chunk.
    :param bandwidth: bytes per second per connection and direction; ``None``: unlimited.
    :param reset_after: seconds after which each connection is reset (RST).
    """

    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float | None = None
    reset_after: float | None = None

    def arguments(self) -> list[str]:
        """The proxy's command-line flags for this impairment."""
        return ["--latency", str(self.latency), "--jitter", str(self.jitter),
                "--bandwidth", str(self.bandwidth or 0),
                "--reset-after", str(self.reset_after or 0)]


class Degradation:
    """A running proxy in front of one service's port; :meth:`undo` (or the block) ends it.

    :param stack: the stack; :param service: the degraded service; :param port: its
        degraded container port (``"9997/tcp"``); :param proxy: the proxy's service name.
    """

    def __init__(self, *, stack: Stack, service: str, port: str, proxy: ServiceHandle,
                 takeover: bool, impairment: Impairment) -> None:
        self.stack = stack
        self.service = service
        self.port = port
        self.proxy = proxy
        self.takeover = takeover
        self.impairment = impairment
        self.active = True

    def __repr__(self) -> str:
        return f"<Degradation {self.service} {self.port} {self.impairment}>"

    def endpoint(self) -> tuple[str, int]:
        """The proxy's host endpoint for the degraded port (what ``stack.endpoint`` answers)."""
        return self.proxy.host_endpoint(self.port)

    def __enter__(self) -> Degradation:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.undo()

    def undo(self) -> None:
        """Remove the proxy and give the service its name back; wait until it is ready."""
        if not self.active:
            return
        self.active = False
        self.stack._degraded.pop(self.service, None)
        with self.stack._lock:
            self.stack._handles.pop(self.proxy.service, None)
        _engine.remove(f"remove proxy {self.proxy.service}",
                       lambda: self.proxy.container.remove(force=True))
        if self.takeover:
            _move_back(self.stack, self.service)
        self.stack.wait_ready(self.service)


def degrade(stack: Stack, service: str, port: int | str, *, impairment: Impairment,
            takeover: bool = True) -> Degradation:
    """Put a degrading proxy between *service*'s *port* and its clients (see module doc).

    :raises NameNotFoundError: when the service does not publish *port*.
    :raises StackStateError: when the service is already degraded.
    """
    handle = stack._handle(service)
    key = str(port) if "/" in str(port) else f"{port}/tcp"
    if key not in handle.ports:
        handle.host_endpoint(port)  # raises, naming the published ports
    if service in stack._degraded:
        raise StackStateError(f"service {service!r} of stack {stack.id} is already degraded",
                              fix="undo() the first degradation (or leave its with-block) "
                              "before degrading it again")
    tcp = sorted(int(p.split("/")[0]) for p in handle.ports if p.endswith("/tcp"))
    name = f"{service}-proxy"
    spec = stack.spec.service(service)
    target = f"{stack.network}-{service}"  # the container name: resolvable without aliases
    proxy_spec = ServiceSpec(
        name=name, image=PROXY, ports=tcp, stop_timeout=0, read_only=True, pids_limit=64,
        command=[*(f"--route={p}={target}:{p}" for p in tcp), f"--impair={key.split('/')[0]}",
                 *impairment.arguments()],
        aliases=[spec.name, *spec.aliases] if takeover else [],
    )
    tag = stack._images.resolve(PROXY)
    try:
        if takeover:
            _move_behind(stack, service)
        proxy = create_service(engine=stack.engine, spec=proxy_spec, image=tag,
                               network=stack.network,
                               labels=stack.ownership.service_labels(name),
                               container_name=f"{stack.network}-{name}",
                               reimage=lambda: stack._images.resolve(PROXY, recheck=True))
        if takeover:
            _engine.call(f"connect {name}", lambda: stack.engine.client.networks.get(
                _behind(stack, service)).connect(proxy.container))
        with stack._lock:
            stack._handles[name] = proxy
        made = Degradation(stack=stack, service=service, port=key, proxy=proxy,
                           takeover=takeover, impairment=impairment)
        stack._degraded[service] = made
        wait_ready(proxy, [READY], timeout=30.0)
    except BaseException:
        _roll_back(stack, service, name, takeover=takeover)
        raise
    return made


def _roll_back(stack: Stack, service: str, proxy: str, *, takeover: bool) -> None:
    """Undo a half-made degradation, so a failed ``degrade()`` leaves the stack as it was.

    Best effort: the failure being raised says why; these steps only must not hide it.
    """
    stack._degraded.pop(service, None)
    with stack._lock:
        stack._handles.pop(proxy, None)
    client = stack.engine.client
    with contextlib.suppress(EnvkitError, DockerException):
        client.containers.get(f"{stack.network}-{proxy}").remove(force=True)
    if takeover:
        with contextlib.suppress(EnvkitError, DockerException):
            main = client.networks.get(stack.network)
            if stack._handle(service).container.id not in {c.id for c in main.containers}:
                _move_back(stack, service)


def _behind(stack: Stack, service: str) -> str:
    return f"{stack.network}-{service}-behind"


def _move_behind(stack: Stack, service: str) -> None:
    """Move *service* from the stack's network to its own, labelled like the stack."""
    handle = stack._handle(service)
    client = stack.engine.client
    behind = _engine.call(f"create network {_behind(stack, service)}", lambda: client.networks
                          .create(_behind(stack, service), driver="bridge",
                                  labels=stack.ownership.stack_labels(), check_duplicate=True))
    _engine.call(f"connect {service}", lambda: behind.connect(handle.container))
    main = client.networks.get(stack.network)
    _engine.call(f"disconnect {service}", lambda: main.disconnect(handle.container, force=True))
    handle.refresh()


def _move_back(stack: Stack, service: str) -> None:
    """Put *service* back on the stack's network under its names; drop its own network."""
    handle = stack._handle(service)
    spec = stack.spec.service(service)
    client = stack.engine.client
    main = client.networks.get(stack.network)
    _engine.call(f"connect {service}", lambda: main.connect(
        handle.container, aliases=[spec.name, *spec.aliases]))
    behind = client.networks.get(_behind(stack, service))
    _engine.call(f"disconnect {service}", lambda: behind.disconnect(handle.container,
                                                                   force=True))
    _engine.remove(f"remove network {behind.name}", behind.remove)
    handle.refresh()


def routed(degradations: dict[str, Degradation], service: str, port: int | str,
           ) -> tuple[str, int] | None:
    """The proxy's endpoint when *service*'s *port* is degraded, else ``None``."""
    made = degradations.get(service)
    key = str(port) if "/" in str(port) else f"{port}/tcp"
    return made.endpoint() if made is not None and made.port == key else None


def describe(degradations: dict[str, Degradation]) -> dict[str, Any]:
    """The active degradations as JSON-ready data (for a stack's description)."""
    return {name: {"port": d.port, "proxy": d.proxy.service, "takeover": d.takeover,
                   "impairment": asdict(d.impairment)} for name, d in degradations.items()}
