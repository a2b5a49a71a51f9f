"""A stack network's own subnet when the engine's default pools are used up (pure logic).

The choice (which /24, skipping what is taken, wrapping), ``ENVKIT_SUBNETS`` parsing and
the route table are tested directly; ``Stack._create_network`` runs against
:class:`engine_fakes.PoolEngine`, which answers as a measured Docker 20.10 does.
tests/integration/test_subnets.py runs the same path on a dockerd with a 4-network pool.
"""

from __future__ import annotations

from ipaddress import IPv4Network, ip_network
from pathlib import Path

import docker.errors
import pytest
from engine_fakes import Images, PoolEngine

from envkit import EngineError, EnvkitError, ServiceSpec, StackSpec, _subnets, runtime
from envkit.config import DEFAULT_SUBNETS, Settings, parse_subnets
from envkit.spec import Build

N = IPv4Network


def test_unset_or_empty_means_dockers_own_ranges() -> None:
    assert parse_subnets(None) == parse_subnets("") == DEFAULT_SUBNETS
    assert Settings.from_env({}).subnets == DEFAULT_SUBNETS
    assert [str(n) for n in DEFAULT_SUBNETS] == ["172.16.0.0/12", "192.168.0.0/16"]


def test_a_list_is_read_in_order_with_spaces_and_a_trailing_comma() -> None:
    got = Settings.from_env({"ENVKIT_SUBNETS": " 10.50.0.0/16, 192.168.8.0/22,"}).subnets
    assert got == (N("10.50.0.0/16"), N("192.168.8.0/22"))


@pytest.mark.parametrize(("raw", "says"), [
    ("172.17.0.0/12", "has host bits set; the network is 172.16.0.0/12"),
    ("10.0.0.0/33", "'10.0.0.0/33' is not an IPv4 network"),
    ("fd00::/64", "'fd00::/64' is not an IPv4 network"),
    ("10.0.0.0/8;192.168.0.0/16", "is not an IPv4 network"),
    (" , ", "names no network"),
])
def test_a_bad_value_names_the_variable_the_value_and_the_fix(raw: str, says: str) -> None:
    with pytest.raises(EnvkitError) as caught:
        Settings.from_env({"ENVKIT_SUBNETS": raw})
    text = str(caught.value)
    assert f"ENVKIT_SUBNETS={raw!r}" in text and says in text, text
    assert "fix: set ENVKIT_SUBNETS to comma-separated IPv4 networks" in text


def test_choose_picks_among_the_free_subnets_only() -> None:
    ranges = [N("10.0.0.0/22")]  # four /24s; 10.0.1 and 10.0.2-3 are taken
    taken = [N("10.0.1.0/26"), N("10.0.2.0/23"), ip_network("fd00::/8")]
    assert {_subnets.choose(ranges, taken, seed=s) for s in range(5)} == {N("10.0.0.0/24")}
    assert [_subnets.choose(ranges, [], seed=s) for s in (0, 3, 4, 7)] == [
        N("10.0.0.0/24"), N("10.0.3.0/24"), N("10.0.0.0/24"), N("10.0.3.0/24")]
    assert _subnets.choose(ranges, [N("10.0.0.0/16")], seed=0) is None
    assert _subnets.choose(ranges, [N("9.255.255.255/32"), N("10.0.4.0/32")], seed=3) == N(
        "10.0.3.0/24")  # a neighbour on either side takes nothing


def test_choose_walks_several_ranges_as_one_and_keeps_narrow_ones_whole() -> None:
    ranges = [N("10.1.0.0/23"), N("10.9.9.0/26")]
    picked = [_subnets.choose(ranges, [], seed=i) for i in range(4)]
    assert picked == [N("10.1.0.0/24"), N("10.1.1.0/24"), N("10.9.9.0/26"), N("10.1.0.0/24")]
    assert _subnets.choose(ranges, [N("10.1.0.0/23")], seed=0) == N("10.9.9.0/26")


def test_with_dockers_31_pools_used_16_workers_pick_16_subnets_of_172_16() -> None:
    """The case that matters: nearly all of the default ranges taken, all workers at once.

    "The first free /24 after a hashed start" gave most of them 172.16.0.0/24; picking
    among the free ones spreads them.
    """
    taken = [N(f"172.{n}.0.0/16") for n in range(17, 32)] + [
        N(f"192.168.{16 * i}.0/20") for i in range(16)]
    picks = {_subnets.choose(DEFAULT_SUBNETS, taken, seed=_subnets.seed_for(
        f"envkit-s-gw{i}-demo-1")) for i in range(16)}
    assert len(picks) == 16
    assert all(p is not None and p.subnet_of(N("172.16.0.0/16")) and p.prefixlen == 24
               for p in picks)


ROUTES = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
bad\tzz\n
"""


def test_host_routes_are_read_from_the_route_table_without_the_default(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(ROUTES)
    assert _subnets.host_routes(table) == [N("192.168.1.0/24"), N("172.17.0.0/16")]
    assert _subnets.host_routes(tmp_path / "absent") == []


def test_engine_subnets_take_ipv4_configs_and_ignore_the_rest() -> None:
    networks = [{"IPAM": {"Config": [{"Subnet": "10.2.0.0/24"}, {"Subnet": "fd00::/64"}]}},
                {"IPAM": {"Config": None}}, {"IPAM": None}, {},
                {"IPAM": {"Config": [{"Gateway": "10.3.0.1"}, {"Subnet": "junk"}]}}]
    assert _subnets.engine_subnets(networks) == [N("10.2.0.0/24")]


def engine_error(exc: Exception) -> EngineError:
    try:
        raise EngineError(action="create network x", cause=str(exc)) from exc
    except EngineError as err:
        return err


def test_exhaustion_and_overlap_are_told_from_other_refusals() -> None:
    exhausted = docker.errors.NotFound("404", explanation="could not find an available, "
                                       "non-overlapping IPv4 address pool among the defaults "
                                       "to assign to the network")
    newer = docker.errors.APIError("400", explanation="all predefined address pools have "
                                   "been fully subnetted")
    overlap = docker.errors.APIError("403", explanation="Pool overlaps with other one on "
                                     "this address space")
    conflict = docker.errors.APIError("409", explanation="network with name x already exists")
    assert _subnets.pools_exhausted(engine_error(exhausted))
    assert _subnets.pools_exhausted(engine_error(newer))
    assert not _subnets.pools_exhausted(engine_error(overlap))
    assert not _subnets.pools_exhausted(engine_error(conflict))
    assert _subnets.overlaps_taken(engine_error(overlap))
    assert not _subnets.overlaps_taken(engine_error(exhausted))
    assert not _subnets.overlaps_taken(ValueError("overlap"))


def stack(engine: PoolEngine, *ranges: str) -> runtime.Stack:
    spec = StackSpec(name="s", services=[ServiceSpec(name="a", image=Build(name="x"))])
    return runtime.Stack(spec, engine=engine, images=Images(), session="t",  # type: ignore[arg-type]
                         worker="gw0", subnets=tuple(N(r) for r in ranges) or DEFAULT_SUBNETS)


def test_with_room_in_the_pools_one_create_and_nothing_else() -> None:
    engine = PoolEngine(capacity=1, taken=[])
    stack(engine)._create_network()
    assert engine.calls == [("create", None)]


def test_used_up_pools_mean_one_list_and_a_create_in_a_free_subnet() -> None:
    engine = PoolEngine(capacity=0, taken=["10.7.0.0/24", "10.7.1.0/24", "10.7.3.0/25"])
    stack(engine, "10.7.0.0/22")._create_network()
    assert engine.calls == [("create", None), ("list", None), ("create", "10.7.2.0/24")]


def test_a_lost_race_for_a_subnet_looks_again() -> None:
    engine = PoolEngine(capacity=0, taken=[], races=2)
    stack(engine, "10.7.0.0/22")._create_network()
    assert [kind for kind, _ in engine.calls] == ["create"] + ["list", "create"] * 3
    asked = [s for kind, s in engine.calls if kind == "create" and s]
    assert len(asked) == 3 and asked[0] != asked[1]
    assert engine.subnets["envkit-t-gw0-s"] == asked[2]


def test_races_lost_every_time_end_in_the_engines_error_after_bounded_tries() -> None:
    engine = PoolEngine(capacity=0, taken=[], races=100)
    with pytest.raises(EngineError, match="Pool overlaps"):
        stack(engine, "10.0.0.0/16")._create_network()
    assert sum(kind == "list" for kind, _ in engine.calls) == _subnets.ATTEMPTS


def test_no_free_subnet_left_names_the_variable_and_the_fix() -> None:
    engine = PoolEngine(capacity=0, taken=["10.7.0.0/23"])
    with pytest.raises(EnvkitError) as caught:
        stack(engine, "10.7.0.0/24", "10.7.1.0/25")._create_network()
    text = str(caught.value)
    assert "every /24 of ENVKIT_SUBNETS=10.7.0.0/24,10.7.1.0/25 overlaps" in text, text
    assert "fix: add a free range to ENVKIT_SUBNETS" in text
    assert engine.calls == [("create", None), ("list", None)]
