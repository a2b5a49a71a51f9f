"""The one fake engine of the runtime's unit tests: enough for ``Stack.up`` to make a network.

Shared, so that every test of the runtime's orchestration fakes the engine the same way
(in the manner of xdist's ``MockNode``): a remote engine (no host device checks) whose
network create succeeds, and an image resolver that answers one tag.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import docker.errors

from envkit._netstat import PROC_NET_TCP
from envkit.readiness import ContainerState


class FakeEngine:
    remote = True  # skips the host device check
    docker_host = "unix:///var/run/docker.sock"
    environ: ClassVar[dict[str, str]] = {}

    class client:
        class api:  # the low-level client: envkit creates networks through it
            @staticmethod
            def create_network(*args: Any, **kwargs: Any) -> dict[str, str]:
                return {"Id": "net1"}


class Images:
    def resolve(self, image: object, *, recheck: bool = False) -> str:
        return "img:1"


class PoolEngine:
    """An engine whose default address pools hold *capacity* networks, then run out.

    It answers as Docker 20.10 does (measured on a dockerd with a 4-network pool): a create
    without IPAM past the pools gets 404 "could not find an available, non-overlapping IPv4
    address pool ...", a create whose subnet overlaps a network's gets 403 "Pool overlaps
    with other one on this address space". The next *races* explicit creates lose a race:
    another worker takes the very subnet asked for just before (it is listed from then on).
    Every request is recorded in :attr:`calls`.
    """

    remote = True
    docker_host = "unix:///var/run/docker.sock"
    environ: ClassVar[dict[str, str]] = {}

    def __init__(self, *, capacity: int, taken: list[str], races: int = 0) -> None:
        self.capacity = capacity
        self.subnets: dict[str, str] = {f"other{i}": s for i, s in enumerate(taken)}
        self.races = races
        self.calls: list[tuple[str, str | None]] = []
        self.client = self  # the SDK's client.networks.* are this object's methods
        self.networks = self
        self.api = self  # and client.api.create_network, the low-level create

    def create_network(self, name: str, *, ipam: Any = None, **kwargs: Any) -> None:
        subnet = ipam["Config"][0]["Subnet"] if ipam else None
        self.calls.append(("create", subnet))
        if subnet is None:
            if self.capacity <= 0:
                raise docker.errors.NotFound(
                    "404", explanation="could not find an available, non-overlapping IPv4 "
                    "address pool among the defaults to assign to the network")
            self.capacity -= 1
            self.subnets[name] = f"10.0.{len(self.subnets)}.0/24"
            return
        if self.races > 0:
            self.races -= 1
            self.subnets[f"racer{len(self.subnets)}"] = subnet
        wanted = ipaddress.ip_network(subnet)
        if any(wanted.overlaps(ipaddress.ip_network(s)) for s in self.subnets.values()):
            raise docker.errors.APIError(
                "403", explanation="Pool overlaps with other one on this address space")
        self.subnets[name] = subnet

    def list(self, **kwargs: Any) -> list[Any]:
        self.calls.append(("list", None))

        class Net:
            def __init__(self, subnet: str) -> None:
                self.attrs = {"IPAM": {"Config": [{"Subnet": subnet}]}}

        return [Net(s) for s in self.subnets.values()]


@dataclass
class FakeTarget:
    """A container whose state, logs and exec results the test scripts; counts inspects."""

    service: str = "svc"
    secrets: frozenset[str] = frozenset()
    states: list[ContainerState] = field(default_factory=lambda: [ContainerState("running")])
    log_text: str = ""
    exec_codes: list[int] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    inspections: int = 0
    #: What ``cat /proc/net/tcp /proc/net/tcp6`` prints (or raises) in the container.
    sockets: Callable[[], tuple[int, str]] = lambda: (0, "")
    commands: list[tuple[str, ...]] = field(default_factory=list)
    container: Any = None

    def host_endpoint(self, port: int | str) -> tuple[str, int]:
        return "127.0.0.1", self.ports[str(port) if "/" in str(port) else f"{port}/tcp"]

    def state(self) -> ContainerState:
        self.inspections += 1
        return self.states[min(self.inspections, len(self.states)) - 1]

    def logs(self) -> str:
        return self.log_text

    def exec(self, command: Sequence[str]) -> tuple[int, str]:
        self.commands.append(tuple(command))
        if tuple(command) == PROC_NET_TCP:
            return self.sockets()
        return (self.exec_codes.pop(0) if self.exec_codes else 0), "out"
