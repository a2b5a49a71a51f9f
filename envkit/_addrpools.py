"""How full the engine's default address pools are, for ``envkit doctor``.

Every stack is a bridge network, and the engine cuts each network's subnet from its
default address pools: Docker's built-in ones hold 31 networks (the /16s of 172.17-31 and
the /20s of 192.168.0.0/16). Once they are used up envkit still gets networks (a /24 of
``ENVKIT_SUBNETS`` it picks itself, see :mod:`envkit._subnets`), but by a slower path,
and other tools on the machine simply fail; so doctor warns before that happens, while
there is still time to remove networks or give the engine larger pools.

The engine reports its pools in ``/info`` (``DefaultAddressPools``) only when they are
configured; without them it uses Docker's built-in ones, which are counted then.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network

from envkit import _engine, labels
from envkit._engine import Engine
from envkit._subnets import PREFIX, choose, engine_subnets, host_routes

#: Networks one worker may hold at once: its stack, a warm spare, one still being removed.
NETWORKS_PER_WORKER = 3


@dataclass(frozen=True, kw_only=True)
class AddressPool:
    """One default address pool: *base* cut into networks of prefix length *size*."""

    base: IPv4Network
    size: int

    @property
    def capacity(self) -> int:
        """How many networks it holds."""
        return 1 << max(0, self.size - self.base.prefixlen)


#: Docker's built-in default pools (libnetwork's ipamutils), used when none are configured.
DOCKER_DEFAULT_POOLS = (
    *(AddressPool(base=IPv4Network(f"172.{n}.0.0/16"), size=16) for n in range(17, 32)),
    AddressPool(base=IPv4Network("192.168.0.0/16"), size=20),
)


@dataclass(frozen=True, kw_only=True)
class PoolUsage:
    """How many of the pools' networks are taken, by envkit and by everything else.

    :param source: which pools they are (configured, or Docker's built-in ones).
    :param fallback: whether ``ENVKIT_SUBNETS`` still has a free /24 for when they run out.
    """

    capacity: int
    envkit: int
    other: int
    source: str = ""
    fallback: bool = True

    @property
    def free(self) -> int:
        """Networks the engine can still hand out from its pools."""
        return self.capacity - self.envkit - self.other


def usage(pools: Sequence[AddressPool], *, envkit: Iterable[IPv4Network],
          other: Iterable[IPv4Network], source: str = "") -> PoolUsage:
    """Count the pools' networks that *envkit*'s subnets or *other* ones overlap.

    *other* holds the engine's other networks and, for a local engine, the host's routes
    (the engine skips a pool network that overlaps one). A subnet spanning several pool
    networks takes each; one that both sides overlap counts as envkit's.
    """
    taken = {"envkit": 0, "other": 0}
    mine, theirs = list(envkit), list(other)
    for pool in pools:
        marks = bytearray(pool.capacity)  # 0 free, 1 envkit, 2 other
        for mark, nets in ((2, theirs), (1, mine)):
            for low, high in _slots(pool, nets):
                marks[low:high + 1] = bytes([mark]) * (high - low + 1)
        taken["envkit"] += marks.count(1)
        taken["other"] += marks.count(2)
    return PoolUsage(capacity=sum(p.capacity for p in pools), envkit=taken["envkit"],
                     other=taken["other"], source=source)


def _slots(pool: AddressPool, nets: Iterable[IPv4Network]) -> Iterable[tuple[int, int]]:
    """The first and last index of *pool*'s networks that each of *nets* overlaps."""
    base, step = int(pool.base.network_address), 1 << (32 - max(pool.size, pool.base.prefixlen))
    last = int(pool.base.broadcast_address)
    for net in nets:
        low, high = max(int(net.network_address), base), min(int(net.broadcast_address), last)
        if low <= high:
            yield (low - base) // step, (high - base) // step


def pools_from(info: Mapping[str, object]) -> tuple[tuple[AddressPool, ...], str]:
    """The engine's default pools, from its ``/info``, and where they were learnt.

    An engine reports ``DefaultAddressPools`` only when they are configured (daemon.json's
    ``default-address-pools`` or ``--default-address-pool``); otherwise it uses Docker's
    built-in ones.
    """
    reported = info.get("DefaultAddressPools")
    if isinstance(reported, list) and reported:
        return _parse(reported, "Base", "Size"), "configured pools"
    return DOCKER_DEFAULT_POOLS, "Docker's built-in pools"


def _parse(entries: list[object], base: str, size: str) -> tuple[AddressPool, ...]:
    pools = []
    for entry in entries:
        if isinstance(entry, dict):
            try:
                pools.append(AddressPool(base=IPv4Network(str(entry[base]), strict=False),
                                         size=int(entry[size])))
            except (KeyError, ValueError, TypeError):
                continue
    return tuple(pools)


def engine_usage(engine: Engine, *, fallback: Sequence[IPv4Network]) -> PoolUsage:
    """The pools' usage on *engine*, by its networks (and, when local, the host's routes).

    :param fallback: the ranges envkit picks from when the pools are used up.
    :raises EngineError: when the engine keeps refusing the listing.
    """
    info = _engine.call("read engine info", engine.client.info)
    pools, source = pools_from(info)
    networks = _engine.call("list networks", lambda: engine.client.networks.list(greedy=False))
    ours = [n.attrs for n in networks if labels.SESSION in (n.attrs.get("Labels") or {})]
    others = [n.attrs for n in networks if labels.SESSION not in (n.attrs.get("Labels") or {})]
    mine = engine_subnets(ours)
    theirs = [*engine_subnets(others), *([] if engine.remote else host_routes())]
    found = usage(pools, envkit=mine, other=theirs, source=source)
    spare = choose(fallback, [*mine, *theirs], seed=0, prefix=PREFIX) is not None
    return dataclasses.replace(found, fallback=spare)


def wanted(cpus: int | None = None) -> int:
    """Free networks a ``pytest -n auto`` run on this machine may need at once."""
    return NETWORKS_PER_WORKER * (cpus or os.cpu_count() or 1)
