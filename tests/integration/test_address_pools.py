"""``envkit doctor``'s address-pool check against engines whose networks are counted.

On a private ``dockerd`` (see :mod:`dockerd`) with four networks of default pool, the
count doctor makes must agree with the engine's own: four free at the start, fewer as
envkit networks take them, none exactly when the engine refuses another network.
The engine reports its configured pools, which doctor reads; the machine's own engine,
which has none configured, is counted against Docker's built-in 31 networks.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

import docker
import dockerd
import pytest

from envkit import _addrpools, doctor, labels
from envkit.doctor import Check
from envkit.session import Envkit

POOL_BASE, POOL_SIZE = 24, 26


@pytest.fixture(scope="module")
def tiny_engine() -> Iterator[dockerd.Dockerd]:
    """A private dockerd with four /26 networks of default pool (index apart from others')."""
    with dockerd.running(index=dockerd.worker_index(30), pool_base=POOL_BASE,
                         pool_size=POOL_SIZE) as engine:
        yield engine


def _pools_check(kit: Envkit) -> Check:
    found = [c for c in doctor.run(kit) if c.name == "address pools"]
    assert len(found) == 1, found
    return found[0]


def test_doctor_counts_an_engines_pool_networks_as_the_engine_hands_them_out(
    tiny_engine: dockerd.Dockerd, tmp_path: Path,
) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "ENVKIT_DOCKER_HOSTS"}
    environ.update(DOCKER_HOST=tiny_engine.url, ENVKIT_SUBNETS=tiny_engine.pool)
    kit = Envkit.from_env(environ, root=tmp_path / "root")
    client = kit.engine.client
    session = f"pools{uuid.uuid4().hex[:8]}"
    check = _pools_check(kit)
    assert check.detail.startswith("4 of 4 networks free (0 taken by envkit, 0 "), check
    assert "configured pools" in check.detail, check
    made = []
    try:
        while True:
            try:
                made.append(client.networks.create(f"{session}-{len(made)}", driver="bridge",
                                                   labels={labels.SESSION: session}))
            except docker.errors.APIError as exc:
                assert "address pool" in str(exc).lower() or "subnetted" in str(exc), exc
                break
            check = _pools_check(kit)
            left = 4 - len(made)
            assert check.detail.startswith(
                f"{left} of 4 networks free ({len(made)} taken by envkit, 0 "), check
            # Below what a `-n auto` run here may need (3 per core): a warning with the fix.
            assert check.status == "warn" and "default-address-pools" in check.fix, check
        assert len(made) == 4  # the engine refused exactly when doctor counted none free
        print(f"tiny engine: {check.status} {check.detail}")
    finally:
        for network in made:
            network.remove()
        client.close()


def test_doctor_counts_the_machines_engine_against_its_pools(envkit_session: Envkit) -> None:
    """The counts add up, and a network the engine cuts from its pools is counted.

    The main engine is shared with other tests, so its counts move while this runs.
    """
    engine = envkit_session.engine
    session = f"pools{uuid.uuid4().hex[:8]}"
    network = engine.client.networks.create(f"{session}-0", driver="bridge",
                                            labels={labels.SESSION: session})
    try:
        network.reload()
        subnet = IPv4Network(network.attrs["IPAM"]["Config"][0]["Subnet"])
        found = _addrpools.engine_usage(engine, fallback=envkit_session.settings.subnets)
        pools, source = _addrpools.pools_from(engine.client.info())
        print(f"main engine: {found} ({source}), test network in {subnet}")
        assert found.capacity == sum(p.capacity for p in pools) and found.free >= 0, found
        assert found.envkit >= 1, found
        if any(subnet.subnet_of(p.base) for p in pools):  # else the pools were used up
            assert _addrpools.usage(pools, envkit=[subnet], other=[]).envkit == 1
    finally:
        network.remove()
