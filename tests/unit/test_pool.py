"""The warm pool's rules, with stand-in stacks: no engine, real threads."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from envkit import _plugin_options, plugin
from envkit._pool import Pool
from envkit.demo import demo
from envkit.session import unpoolable
from envkit.spec import ServiceSpec, StackSpec

WAIT = 10.0


@dataclass(eq=False)
class Made:
    """A stand-in stack: which spec it was started from, and its serial number."""

    spec: str
    n: int


@dataclass
class Engine:
    """Starts stand-in stacks, optionally held at a gate or failing; records discards."""

    gate: threading.Event = field(default_factory=threading.Event)
    fail: bool = False
    started: list[Made] = field(default_factory=list)
    discarded: list[Made] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    done: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def __post_init__(self) -> None:
        self.gate.set()

    def start(self, spec: str) -> Made:
        try:
            assert self.gate.wait(WAIT), "the test never opened the gate"
            if self.fail:
                raise RuntimeError("no such image")
            made = Made(spec, next(self.counter))
            self.started.append(made)
            return made
        finally:
            self.done.release()

    def discard(self, made: Made) -> None:
        self.discarded.append(made)

    def wait_starts(self, count: int) -> None:
        for _ in range(count):
            assert self.done.acquire(timeout=WAIT), "a spare start never ended"


def pool_of(engine: Engine, size: int = 1,
            eligible: Callable[[str], str | None] = lambda spec: None) -> Pool[str, Made]:
    return Pool(size=size, start=engine.start, discard=engine.discard, eligible=eligible)


def ready(pool: Pool[str, Made], key: str, count: int = 1) -> None:
    """Wait until *key* has *count* started spares."""
    for _ in range(int(WAIT / 0.01)):
        if pool.ready(key) >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{key}: {pool.ready(key)} spares ready, wanted {count}")


def test_a_pool_of_zero_starts_nothing() -> None:
    engine = Engine()
    pool = pool_of(engine, size=0)
    assert pool.take("demo", "demo", lambda: "demo") is None
    pool.prepare("demo", lambda: "demo")
    assert pool.close(WAIT) == [] and engine.started == []


def test_the_first_request_starts_a_spare_for_the_next_which_gets_it() -> None:
    engine = Engine()
    pool = pool_of(engine)
    assert pool.take("demo", "demo", lambda: "demo") is None
    ready(pool, "demo")
    spare = pool.take("demo", "demo", lambda: "demo")
    assert spare is engine.started[0]
    # Taking it started the next one; a taken spare never comes back.
    ready(pool, "demo")
    again = pool.take("demo", "demo", lambda: "demo")
    assert again is not None and again is not spare and again.n == 2
    ready(pool, "demo")
    pool.close(WAIT)
    assert spare not in engine.discarded and again not in engine.discarded
    assert engine.discarded == [engine.started[2]]


def test_a_spare_of_another_spec_is_never_given_and_goes() -> None:
    engine = Engine()
    pool = pool_of(engine)
    pool.take("stack.yml", "v1", lambda: "v1")
    ready(pool, "stack.yml")
    old = engine.started[0]
    # The file changed: the v1 spare is not what is asked for now.
    assert pool.take("stack.yml", "v2", lambda: "v2") is None
    assert old in engine.discarded
    ready(pool, "stack.yml")
    assert pool.take("stack.yml", "v2", lambda: "v2").spec == "v2"  # type: ignore[union-attr]
    pool.close(WAIT)


def test_a_key_that_resolves_differently_each_time_is_not_pooled() -> None:
    secrets = (f"secret-{n}" for n in itertools.count())
    engine = Engine()
    pool = pool_of(engine)
    assert pool.take("camera", next(secrets), lambda: next(secrets)) is None
    for _ in range(int(WAIT / 0.01)):
        if pool.refused:
            break
        threading.Event().wait(0.01)
    assert "differs" in pool.refused["camera"]
    assert pool.take("camera", next(secrets), lambda: next(secrets)) is None
    assert pool.close(WAIT) == [] and engine.started == []


def test_an_ineligible_spec_is_never_started() -> None:
    engine = Engine()
    pool = pool_of(engine, eligible=lambda spec: "maps host devices")
    assert pool.take("cams", "cams", lambda: "cams") is None
    pool.prepare("other", lambda: "other")
    pool.close(WAIT)
    assert engine.started == [] and pool.refused["cams"] == "maps host devices"


def test_a_spare_that_fails_to_start_refuses_its_key() -> None:
    engine = Engine(fail=True)
    pool = pool_of(engine)
    assert pool.take("demo", "demo", lambda: "demo") is None
    engine.wait_starts(1)
    assert pool.take("demo", "demo", lambda: "demo") is None
    assert "no such image" in pool.refused["demo"]
    pool.close(WAIT)
    assert engine.started == []


def test_a_spare_still_starting_is_waited_for() -> None:
    engine = Engine()
    pool = pool_of(engine)
    engine.gate.clear()
    pool.take("demo", "demo", lambda: "demo")
    got: list[Made | None] = []
    taker = threading.Thread(target=lambda: got.append(pool.take("demo", "demo", lambda: "demo")))
    taker.start()
    threading.Event().wait(0.2)
    assert got == []  # waiting for the spare still starting
    engine.gate.set()
    taker.join(WAIT)
    assert got == [engine.started[0]]
    pool.close(WAIT)


def test_prepare_starts_a_spare_before_anyone_asks() -> None:
    engine = Engine()
    pool = pool_of(engine, size=2)
    pool.prepare("demo", lambda: "demo")
    ready(pool, "demo")
    assert pool.take("demo", "demo", lambda: "demo") is engine.started[0]
    ready(pool, "demo", 2)  # refilled to two
    pool.close(WAIT)
    engine.wait_starts(3)
    assert sorted(m.n for m in engine.discarded) == [2, 3]


def test_close_discards_spares_and_starts_no_more() -> None:
    engine = Engine()
    pool = pool_of(engine, size=2)
    engine.gate.clear()
    pool.take("a", "a", lambda: "a")
    pool.take("b", "b", lambda: "b")
    threading.Event().wait(0.2)  # the first start is running, held at the gate
    closer = threading.Thread(target=pool.close, args=(WAIT,))
    closer.start()
    threading.Event().wait(0.1)
    engine.gate.set()  # the first start, already running, completes; the rest are called off
    closer.join(WAIT)
    assert not closer.is_alive()
    assert engine.discarded == engine.started and len(engine.started) == 1
    assert pool.take("a", "a", lambda: "a") is None
    pool.prepare("a", lambda: "a")
    threading.Event().wait(0.1)
    assert len(engine.started) == 1


def test_close_reports_a_spare_still_starting_after_its_timeout() -> None:
    engine = Engine()
    pool = pool_of(engine)
    engine.gate.clear()
    pool.take("demo", "demo", lambda: "demo")
    threading.Event().wait(0.1)
    lines = pool.close(0.1)
    assert len(lines) == 1 and "still starting" in lines[0]
    engine.gate.set()
    engine.wait_starts(1)
    for _ in range(100):  # discarded when its start ends, after all
        if engine.discarded:
            break
        threading.Event().wait(0.01)
    assert engine.discarded == engine.started


def test_close_calls_off_the_start_in_progress_and_a_later_close_waits_for_it() -> None:
    """Ctrl-C closes at once (timeout 0); the session's end then waits for the spare."""
    engine = Engine()
    stops: list[int] = []

    def stop() -> None:  # a start called off ends early, as Stack.cancel makes up() do
        stops.append(1)
        engine.gate.set()

    pool = Pool(size=1, start=engine.start, discard=engine.discard, stop=stop)
    engine.gate.clear()
    pool.take("demo", "demo", lambda: "demo")
    threading.Event().wait(0.1)
    pool.close(0)
    assert pool.close(WAIT) == []  # waited until the spare was discarded
    assert stops == [1] and engine.discarded == engine.started and len(engine.started) == 1


def test_a_taker_interrupted_while_waiting_leaves_the_spare_to_close() -> None:
    engine = Engine()
    pool = pool_of(engine)
    engine.gate.clear()
    pool.take("demo", "demo", lambda: "demo")
    threading.Event().wait(0.1)  # its start is running, held at the gate

    def interrupt(self: Future[Made], timeout: float | None = None) -> Made:
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        mp.setattr(Future, "result", interrupt)  # Ctrl-C lands while take() waits
        pool.take("demo", "demo", lambda: "demo")
    engine.gate.set()
    assert pool.close(WAIT) == []
    assert engine.discarded == engine.started and len(engine.started) == 1


def test_only_stacks_without_host_state_are_pooled() -> None:
    assert unpoolable(demo()) is None
    cams = StackSpec(name="cams", services=[ServiceSpec(name="cam", image="alpine",
                                                          devices=["/dev/video0"])])
    assert "devices" in (unpoolable(cams) or "")
    data = StackSpec(name="data", services=[ServiceSpec(name="db", image="alpine",
                                                          volumes=["/srv/data:/data"])])
    assert "host directory" in (unpoolable(data) or "")
    volume = StackSpec(name="vol", services=[ServiceSpec(name="db", image="alpine",
                                                           volumes=["data:/data"])])
    assert unpoolable(volume) is None


class Config:
    """Just enough of pytest's config for the option's parsing."""

    def __init__(self, option: Any = None, ini: Any = None) -> None:
        self.option = SimpleNamespace(envkit_pool=option)
        self._ini = ini

    def getoption(self, name: str) -> Any:
        return getattr(self.option, name)

    def getini(self, name: str) -> Any:
        return self._ini


@pytest.mark.parametrize(("option", "ini", "size"), [
    (None, None, plugin.DEFAULT_POOL), (None, "", plugin.DEFAULT_POOL), (0, "3", 0),
    (None, "3", 3), (2, None, 2),
])
def test_pool_size_from_option_then_ini_then_default(option: Any, ini: Any, size: int) -> None:
    assert _plugin_options.pool_size(Config(option, ini)) == size  # type: ignore[arg-type]


@pytest.mark.parametrize(("option", "ini", "where"), [
    (-1, None, "--envkit-pool"), (None, "many", "ini envkit_pool"),
])
def test_a_bad_pool_size_names_where_and_the_fix(option: Any, ini: Any, where: str) -> None:
    with pytest.raises(pytest.UsageError, match=f"{where} is .*whole number >= 0"):
        _plugin_options.pool_size(Config(option, ini))  # type: ignore[arg-type]


def bounded(engine: Engine, max_spares: int, size: int = 1) -> Pool[str, Made]:
    return Pool(size=size, start=engine.start, discard=engine.discard, max_spares=max_spares)


def discarded(engine: Engine, count: int) -> None:
    """Wait until *count* stand-ins were discarded (a retired spare goes once started)."""
    for _ in range(int(WAIT / 0.01)):
        if len(engine.discarded) >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{len(engine.discarded)} discarded, wanted {count}")


def test_spares_across_keys_stay_within_the_bound_least_recent_key_going_first() -> None:
    engine = Engine()
    pool = bounded(engine, max_spares=2)
    for key in ("a", "b"):
        pool.take(key, key, lambda key=key: key)  # type: ignore[misc]
        ready(pool, key)
    taken = pool.take("a", "a", lambda: "a")  # a is now the most recent: b is the least
    ready(pool, "a")
    assert list(pool.held()) == ["b", "a"]
    pool.take("c", "c", lambda: "c")
    assert pool.held() == {"a": 1, "c": 1}
    discarded(engine, 1)
    assert [m.spec for m in engine.discarded] == ["b"]
    ready(pool, "c")
    # A retired key is pooled again when asked for (the least recent, a, makes room).
    assert pool.take("b", "b", lambda: "b") is None
    assert pool.held() == {"c": 1, "b": 1}
    assert pool.close(WAIT) == []
    # Every spare but the one taken went: retired or closed, none left held.
    assert sorted(m.n for m in engine.discarded) == sorted(
        m.n for m in engine.started if m is not taken)


def test_a_spare_not_yet_started_is_called_off_when_retired() -> None:
    engine = Engine()
    pool = bounded(engine, max_spares=1)
    engine.gate.clear()
    pool.take("a", "a", lambda: "a")  # starting, held at the gate
    threading.Event().wait(0.1)
    pool.take("b", "b", lambda: "b")  # queued behind it; retires a
    pool.take("c", "c", lambda: "c")  # retires b before it ever ran
    assert pool.held() == {"c": 1}
    engine.gate.set()
    engine.wait_starts(2)  # a (which started anyway) and c; never b
    assert pool.close(WAIT) == []
    assert sorted(m.spec for m in engine.started) == ["a", "c"]
    assert sorted(m.n for m in engine.discarded) == sorted(m.n for m in engine.started)


def test_the_bound_caps_one_key_too_and_zero_keeps_none() -> None:
    engine = Engine()
    pool = bounded(engine, max_spares=2, size=3)
    pool.take("a", "a", lambda: "a")
    engine.wait_starts(2)
    assert pool.held() == {"a": 2}
    pool.close(WAIT)
    none = bounded(Engine(), max_spares=0)
    assert none.take("a", "a", lambda: "a") is None
    none.prepare("a", lambda: "a")
    assert none.held() == {} and none.close(WAIT) == []


def test_prepared_spares_count_against_the_bound() -> None:
    engine = Engine()
    pool = bounded(engine, max_spares=1)
    pool.prepare("a", lambda: "a")
    ready(pool, "a")
    pool.prepare("b", lambda: "b")
    ready(pool, "b")
    assert pool.held() == {"b": 1}
    discarded(engine, 1)
    assert [m.spec for m in engine.discarded] == ["a"]
    pool.close(WAIT)


class SparesConfig(Config):
    def __init__(self, option: Any = None, ini: Any = None) -> None:
        super().__init__(ini=ini)
        self.option = SimpleNamespace(envkit_pool_max_spares=option)


@pytest.mark.parametrize(("option", "ini", "count"), [
    (None, None, _plugin_options.DEFAULT_MAX_SPARES), (None, "5", 5), (0, "5", 0), (3, None, 3),
])
def test_max_spares_from_option_then_ini_then_default(option: Any, ini: Any, count: int) -> None:
    assert _plugin_options.pool_max_spares(SparesConfig(option, ini)) == count  # type: ignore[arg-type]


def test_a_bad_max_spares_names_where_and_the_fix() -> None:
    with pytest.raises(pytest.UsageError, match=r"ini envkit_pool_max_spares is 'x'.*>= 0"):
        _plugin_options.pool_max_spares(SparesConfig(None, "x"))  # type: ignore[arg-type]
