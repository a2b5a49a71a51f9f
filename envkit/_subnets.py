"""A stack network's own subnet, for when the engine's default address pools run out.

Docker's default pools hold about 31 bridge networks (the /16s of 172.17-31 and the /20s
of 192.168), and envkit makes one network per stack: with a warm pool and removals still
in the background, each worker can hold three, so ``pytest -n 16`` exhausts the engine,
which then answers a network create with "could not find an available, non-overlapping
IPv4 address pool". Only then does envkit pick a small subnet itself (IPAM config): a
free /24 of :data:`envkit.config.DEFAULT_SUBNETS` (or ``ENVKIT_SUBNETS``) that overlaps none of the
engine's networks nor, for a local engine, the host's routes (which the engine checks for
its own pools but not for an explicit subnet). Two workers may pick the same /24 at once;
the loser's create fails with "Pool overlaps", and it looks again, a bounded number of
times. Each worker starts its search at a different place (a hash of the network's name)
so that they seldom collide at all.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from ipaddress import IPv4Network
from pathlib import Path

from docker.types import IPAMConfig, IPAMPool
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random

from envkit import _engine
from envkit._engine import Engine
from envkit.config import SUBNETS_ENV
from envkit.errors import EngineError, EnvkitError

#: The prefix of a subnet envkit picks: 254 addresses, far more than a stack's services.
PREFIX = 24
#: Creates tried with a subnet of envkit's choosing before giving up (each lost to a race).
ATTEMPTS = 6
def pools_exhausted(exc: EngineError) -> bool:
    """Whether the engine refused a network because its default address pools are all used."""
    text = str(exc.__cause__ or exc).lower()
    return ("could not find an available, non-overlapping ipv4 address pool" in text
            or "all predefined address pools have been fully subnetted" in text)


def overlaps_taken(exc: BaseException) -> bool:
    """Whether a create with an explicit subnet lost a race for it ("Pool overlaps ...")."""
    # Not just "overlap": the exhaustion message says "non-overlapping".
    return isinstance(exc, EngineError) and "pool overlaps" in str(exc.__cause__ or exc).lower()


def choose(
    ranges: Sequence[IPv4Network], taken: Iterable[IPv4Network], *, seed: int,
    prefix: int = PREFIX,
) -> IPv4Network | None:
    """The free /*prefix* of *ranges* numbered *seed* (modulo how many are free), or ``None``.

    Free means it overlaps nothing in *taken*. Picking among the free ones, not the first
    free one after *seed*, matters when the engine's pools are used up: then nearly all
    of the default ranges is taken, and "the next free one" would be the same /24 for
    almost every worker. A range narrower than *prefix* counts as one subnet of its size.
    """
    used = [net for net in taken if net.version == 4]
    free = [start for whole in ranges for start in _free_in(whole, used, prefix)]
    if not free:
        return None
    start, bits = free[seed % len(free)]
    return IPv4Network((start, bits))


def _free_in(whole: IPv4Network, taken: Sequence[IPv4Network],
             prefix: int) -> Iterator[tuple[int, int]]:
    """The subnets of *whole* that overlap nothing in *taken*, as (address, prefix).

    Marked in a byte array by integer arithmetic: ``IPv4Network.overlaps`` on each of the
    default ranges' 4352 /24s took about 0.1 s.
    """
    bits = max(prefix, whole.prefixlen)
    step, base = 1 << (32 - bits), int(whole.network_address)
    last = base + whole.num_addresses - 1
    free = bytearray(b"\x01") * (whole.num_addresses // step)
    for net in taken:
        low, high = max(int(net.network_address), base), min(int(net.broadcast_address), last)
        if low <= high:
            free[(low - base) // step:(high - base) // step + 1] = bytes(
                (high - base) // step - (low - base) // step + 1)
    return ((base + i * step, bits) for i, ok in enumerate(free) if ok)


def seed_for(name: str) -> int:
    """Which free subnet *name* takes: spread over names, the same for each retry."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def host_routes(path: Path = Path("/proc/net/route")) -> list[IPv4Network]:
    """The host's IPv4 routes (Linux), but the default route; none where unreadable."""
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return []
    routes: list[IPv4Network] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest, mask = (socket.inet_ntoa(struct.pack("<I", int(f, 16)))
                          for f in (fields[1], fields[7]))
            net = IPv4Network(f"{dest}/{mask}", strict=False)
        except (ValueError, struct.error):
            continue
        if net.prefixlen:
            routes.append(net)
    return routes


def engine_subnets(networks: Iterable[dict[str, object]]) -> list[IPv4Network]:
    """Every IPv4 subnet the engine's *networks* (their inspect attributes) occupy."""
    found: list[IPv4Network] = []
    for attrs in networks:
        ipam = attrs.get("IPAM")
        configs = ipam.get("Config") if isinstance(ipam, dict) else None
        for config in configs if isinstance(configs, list) else ():
            subnet = config.get("Subnet") if isinstance(config, dict) else None
            try:
                net = ipaddress.ip_network(str(subnet), strict=False)
            except ValueError:
                continue
            if isinstance(net, IPv4Network):
                found.append(net)
    return found


def create_in_own_subnet(
    *, name: str, ranges: Sequence[IPv4Network], taken: Callable[[], list[IPv4Network]],
    create: Callable[[IPv4Network], None], attempts: int = ATTEMPTS,
) -> IPv4Network:
    """Create network *name* in a free subnet of *ranges*; the subnet it got.

    :param taken: the subnets in use now (the engine's networks and the host's routes),
        asked again after each lost race.
    :param create: makes the network in the given subnet.
    :raises EnvkitError: when every subnet of *ranges* is taken, naming the fix.
    :raises EngineError: when the create fails otherwise, or still overlaps after
        *attempts* tries.
    """

    def attempt() -> IPv4Network:
        subnet = choose(ranges, taken(), seed=seed_for(name))
        if subnet is None:
            shown = ",".join(str(r) for r in ranges)
            raise EnvkitError(
                f"the engine's default address pools are used up, and every /{PREFIX} of "
                f"{SUBNETS_ENV}={shown} overlaps one of its networks or a host route",
                fix=f"add a free range to {SUBNETS_ENV} (e.g. {shown},10.123.0.0/16), remove "
                "networks you no longer need, or run fewer workers (-n)")
        create(subnet)
        return subnet

    retrying = retry(retry=retry_if_exception(overlaps_taken), stop=stop_after_attempt(attempts),
                     wait=wait_random(0, 0.2), reraise=True)
    return retrying(attempt)()


def taken(engine: Engine) -> list[IPv4Network]:
    """The subnets a new network must not overlap, asked of the engine in one list call.

    Those of the engine's networks and, when the engine runs on this host, the host's
    routes (the engine avoids them for its own pools, not for an explicit subnet).
    """
    networks = _engine.call("list networks", lambda: engine.client.networks.list(greedy=False))
    used = engine_subnets(n.attrs for n in networks)
    return used if engine.remote else used + host_routes()


def create_network(
    engine: Engine, name: str, *, labels: dict[str, str], ranges: Sequence[IPv4Network],
) -> IPv4Network | None:
    """Create the bridge network *name*; the subnet envkit picked, ``None`` for the engine's.

    One create while the engine's default pools have room; only when it answers that they
    are used up does the slower path above (a listing, then a create in a free subnet) run.

    :raises EngineError: as :func:`envkit._engine.call` does (a 409 if *name* exists).
    :raises EnvkitError: when no subnet of *ranges* is free.
    """

    def post(subnet: IPv4Network | None = None) -> None:
        ipam = None if subnet is None else IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet))])
        # The low-level call: the SDK's networks.create inspects the network it made
        # (an engine request per stack) for a model nobody here reads.
        _engine.call(f"create network {name}" + (f" in {subnet}" if subnet else ""),
                     lambda: engine.client.api.create_network(
                         name, driver="bridge", labels=labels, check_duplicate=True, ipam=ipam))

    try:
        post()
        return None
    except EngineError as exc:
        if not pools_exhausted(exc):
            raise
    return create_in_own_subnet(name=name, ranges=ranges, create=post,
                                taken=partial(taken, engine))
