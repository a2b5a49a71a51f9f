"""The arithmetic of doctor's address-pool check: capacity, who takes what, the verdict."""

from __future__ import annotations

from ipaddress import IPv4Network as Net

from envkit import _addrpools
from envkit._addrpools import DOCKER_DEFAULT_POOLS, AddressPool, PoolUsage, pools_from, usage
from envkit.doctor import pool_finding


def test_dockers_built_in_pools_hold_31_networks() -> None:
    assert sum(p.capacity for p in DOCKER_DEFAULT_POOLS) == 31
    assert usage(DOCKER_DEFAULT_POOLS, envkit=[], other=[]).free == 31


def test_each_pool_network_is_counted_once_by_whoever_overlaps_it() -> None:
    found = usage(
        DOCKER_DEFAULT_POOLS,
        envkit=[Net("192.168.16.0/20"), Net("172.18.0.0/16"), Net("172.16.5.0/24")],
        other=[Net("172.17.0.0/16"),       # docker0
               Net("172.20.5.0/24"),       # a host route inside one pool network
               Net("172.18.3.0/24"),       # overlaps envkit's: counted as envkit's
               Net("192.168.0.0/19"),      # spans two /20s
               Net("10.0.0.0/8")],         # outside every pool
    )
    # 172.16.5.0/24 lies outside the pools (ENVKIT_SUBNETS' own /24s), so it takes none.
    assert (found.envkit, found.other, found.free) == (2, 3, 26)


def test_a_large_configured_pool_is_counted_without_a_walk_per_network() -> None:
    pool = AddressPool(base=Net("10.0.0.0/8"), size=24)
    found = usage([pool], envkit=[Net("10.1.0.0/16")], other=[Net("10.2.3.0/24")])
    assert (pool.capacity, found.envkit, found.other) == (65536, 256, 1)


def test_pools_are_the_configured_ones_the_engine_reports_else_dockers_built_in() -> None:
    reported = {"DefaultAddressPools": [{"Base": "10.10.0.0/16", "Size": 24},
                                        {"Base": "bad", "Size": 24}]}
    assert pools_from(reported) == (
        (AddressPool(base=Net("10.10.0.0/16"), size=24),), "configured pools")
    assert pools_from({}) == (DOCKER_DEFAULT_POOLS, "Docker's built-in pools")
    assert pools_from({"DefaultAddressPools": None})[0] == DOCKER_DEFAULT_POOLS


def test_the_finding_warns_below_what_a_parallel_run_needs_and_fails_with_nowhere_left() -> None:
    def finding(envkit: int, other: int, fallback: bool = True) -> tuple[str, str, str]:
        found = PoolUsage(capacity=31, envkit=envkit, other=other, source="assumed",
                          fallback=fallback)
        check = pool_finding(found, wanted=6, fallback="172.16.0.0/12")
        return check.status, check.detail, check.fix

    status, detail, _ = finding(3, 2)
    assert status == "ok" and detail.startswith("26 of 31 networks free (3 taken by envkit, 2 ")
    status, detail, fix = finding(20, 6)
    assert status == "warn" and "5 of 31" in detail and "may need 6" in detail
    assert "default-address-pools" in fix and "docker network ls" in fix
    status, detail, fix = finding(25, 6, fallback=False)
    assert status == "fail" and "every /24 of ENVKIT_SUBNETS=172.16.0.0/12" in detail
    assert "ENVKIT_SUBNETS" in fix


def test_a_run_wants_three_networks_per_worker() -> None:
    assert _addrpools.wanted(16) == 48
