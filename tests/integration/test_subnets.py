"""An engine whose default address pools run out: stacks come up in subnets envkit picks.

A private ``dockerd`` (see :mod:`dockerd`) is started with a default pool of four /26
networks; six demo stacks are brought up at once on it. The first four get the engine's
own /26s (the fast path), the others a /24 of ``ENVKIT_SUBNETS`` that envkit picked after
the engine answered "could not find an available, non-overlapping IPv4 address pool".
Every stack's client must reach its web service by alias, no two subnets may overlap, and
nothing may be left on the engine afterwards.
"""

from __future__ import annotations

import itertools
import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Network

import docker
import dockerd
import pytest

from envkit import labels, reaper
from envkit.inventory import list_resources, list_stacks
from envkit.runtime import Stack
from envkit.session import Envkit

STACKS = 6
#: Four networks: ``base=10.<n>.0.0/24,size=26``.
POOL_BASE, POOL_SIZE = 24, 26


@pytest.fixture(scope="module")
def tiny_engine() -> Iterator[dockerd.Dockerd]:
    """A private dockerd with four networks' worth of default pool.

    Its index is apart from test_engines' (0, 1...), whose engines may still run in this
    worker's session: two engines with one index would share a bridge name.
    """
    with dockerd.running(index=dockerd.worker_index(40), pool_base=POOL_BASE,
                         pool_size=POOL_SIZE) as engine:
        yield engine


@pytest.fixture
def kit(tiny_engine: dockerd.Dockerd, envkit_session: Envkit) -> Iterator[Envkit]:
    """An Envkit bound to the tiny engine (images copied from the main one, not rebuilt).

    Its subnets are the engine's /16, which the harness's accept rule lets containers
    talk within; the stacks are removed should an assertion fail first.
    """
    envkit_session.images.ensure_base()
    main = envkit_session.engine.docker_host
    environ = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    environ.update(ENVKIT_DOCKER_HOSTS=f"{main},{tiny_engine.url}", ENVKIT_SUBNETS=tiny_engine.pool,
                   ENVKIT_SESSION=f"sub{uuid.uuid4().hex[:8]}")
    made = Envkit.from_env(environ, worker="gw1", root=envkit_session.settings.root)
    assert made.engine.docker_host == tiny_engine.url
    yield made
    reaper.remove_stacks(made.engine, list_stacks(made.engine.client, selector=labels.selector(
        session=made.session)))


def _talks(stack: Stack) -> bool:
    with urllib.request.urlopen(stack.url("client", 8080), timeout=10) as answer:
        return bool(json.load(answer)["upstream"]["ok"])


def _subnets(client: docker.DockerClient, session: str) -> list[IPv4Network]:
    nets = client.networks.list(filters=labels.selector(session=session))
    return [IPv4Network(c["Subnet"]) for n in nets for c in n.attrs["IPAM"]["Config"]]


def test_more_stacks_than_the_engines_pools_hold_all_come_up_and_leave_nothing(
    tiny_engine: dockerd.Dockerd, kit: Envkit
) -> None:
    stacks = [kit.stack(kit.spec("demo")) for _ in range(STACKS)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(Stack.up, stacks))
    try:
        assert all(_talks(s) for s in stacks)
        subnets = _subnets(kit.engine.client, kit.session)
        print(f"{STACKS} stacks on a 4-network engine, subnets: {sorted(map(str, subnets))}")
        default = IPv4Network(tiny_engine.pool.replace("/16", f"/{POOL_BASE}"))
        own = [s for s in subnets if not s.subnet_of(default)]
        assert len(subnets) == STACKS
        assert sorted(s.prefixlen for s in subnets if s.subnet_of(default)) == [POOL_SIZE] * 4
        assert len(own) == STACKS - 4 and all(s.prefixlen == 24 for s in own), subnets
        assert all(s.subnet_of(IPv4Network(tiny_engine.pool)) for s in own), subnets
        assert not any(a.overlaps(b) for a, b in itertools.combinations(subnets, 2)), subnets
    finally:
        for stack in stacks:
            stack.down()
    assert list_resources(kit.engine.client, session=kit.session) == []
    # The engine's pools hold four again: a stack made now takes the fast path.
    again = kit.stack(kit.spec("demo"))
    with again:
        assert _talks(again)
        assert _subnets(kit.engine.client, kit.session)[0].prefixlen == POOL_SIZE
    assert list_resources(kit.engine.client, session=kit.session) == []
