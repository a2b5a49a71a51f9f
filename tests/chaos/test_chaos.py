"""A misbehaving engine: ``up()`` succeeds or fails cleanly, and nothing is left.

``up()`` either succeeds or fails with one EnvkitError, retries stay bounded, and nothing
of the stack is left, whatever the engine does.

Each scenario runs the demo stack's whole life (connect, image check, network, two
services, readiness, a request through the stack, teardown) through
:class:`engine_proxy.EngineProxy` with its faults; the verdicts come from the real
socket. The figures of the module's run (faults per kind, outcomes, attempts) are
written to ``.pytest_cache/d/envkit-chaos/figures-<worker>.json`` and shown with ``-s``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest
from chaos_run import Outcome, Scenario, run
from engine_proxy import EngineProxy, Rule

from envkit import _engine
from envkit.errors import EngineError, EnvkitError
from envkit.session import Envkit

CREATE = r"/containers/create"
START = r"/containers/\{id\}/start"
INSPECT = r"/containers/\{id\}/json"
ANY = ".*"

#: The per-request bound: ``_engine.call`` tries a request at most 4 times.
MOST_TRIES = 4
#: A hang guard, not a speed check (the bound on retries is the count above): a scenario
#: takes 5-70 s on a busy shared machine, its slow answers and outages included.
MOST_SECONDS = 300.0


def _mixed(seed: int) -> Scenario:
    rules = (Rule(kind="reset", probability=0.04), Rule(kind="drop", probability=0.04),
             Rule(kind="error", status=503, probability=0.04),
             Rule(kind="slow", delay=0.4, probability=0.05))
    return Scenario(name=f"mixed-{seed}", rules=rules, seed=seed)


SCENARIOS = [
    Scenario(name="baseline", expect="up"),
    Scenario(name="create-503-twice", expect="up",
             rules=(Rule(kind="error", method="POST", endpoint=CREATE, status=503, times=2),)),
    Scenario(name="start-500-always", expect="error",
             rules=(Rule(kind="error", method="POST", endpoint=START, status=500),)),
    Scenario(name="network-create-answer-lost", expect="up",
             rules=(Rule(kind="drop", method="POST", endpoint="/networks/create", times=1),)),
    Scenario(name="container-create-answer-lost", expect="up",
             rules=(Rule(kind="drop", method="POST", endpoint=CREATE, times=1),)),
    Scenario(name="container-start-answer-lost", expect="up",
             rules=(Rule(kind="drop", method="POST", endpoint=START, times=1),)),
    Scenario(name="inspect-resets", seed=3,
             rules=(Rule(kind="reset", method="GET", endpoint=INSPECT, probability=0.3),)),
    Scenario(name="slow-answers", expect="up", seed=4,
             rules=(Rule(kind="slow", delay=1.0, probability=0.3),)),
    Scenario(name="restart-at-start", seed=5,
             rules=(Rule(kind="restart", method="POST", endpoint=START, times=1, delay=3.0),)),
    Scenario(name="restart-at-teardown", seed=6,
             rules=(Rule(kind="restart", method="DELETE", endpoint=r"/containers/\{id\}",
                         times=1, delay=3.0),)),
    Scenario(name="restart-in-readiness", seed=7,
             rules=(Rule(kind="restart", method="GET", endpoint=INSPECT, skip=2, times=1,
                         delay=4.0),)),
    Scenario(name="restart-at-network-create", expect="up",
             rules=(Rule(kind="restart", method="POST", endpoint="/networks/create", times=1,
                         delay=2.0),)),
    # Longer than envkit waits for a restart (RESTART_WINDOW, 15 s): a clean, bounded failure.
    Scenario(name="engine-gone-at-network-create", expect="error",
             rules=(Rule(kind="restart", method="POST", endpoint="/networks/create", times=1,
                         delay=_engine.RESTART_WINDOW + 5),)),
    Scenario(name="container-remove-answer-lost",
             rules=(Rule(kind="drop", method="DELETE", endpoint=r"/containers/\{id\}",
                         times=1),)),
    *[Scenario(name=f"resets-{seed}", seed=seed, rules=(Rule(kind="reset", probability=0.1),))
      for seed in (11, 12, 13)],
    *[Scenario(name=f"errors-{seed}", seed=seed,
               rules=(Rule(kind="error", status=500, probability=0.1),)) for seed in (21, 22, 23)],
    *[_mixed(seed) for seed in (31, 32, 33, 34)],
]

_OUTCOMES: list[Outcome] = []


@pytest.fixture(scope="module", autouse=True)
def _figures(request: pytest.FixtureRequest, envkit_session: Envkit) -> Iterator[None]:
    yield
    if not _OUTCOMES:
        return
    total: Counter[str] = Counter()
    for outcome in _OUTCOMES:
        total.update(outcome.faults)
    figures = {"scenarios": len(_OUTCOMES), "faults": dict(total),
               "up": sum(o.up for o in _OUTCOMES), "failed_cleanly": sum(
                   o.error is not None for o in _OUTCOMES),
               "runs": [o.figures() for o in _OUTCOMES]}
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    folder = cache.mkdir("envkit-chaos") if cache is not None else None
    if folder is not None:
        (folder / f"figures-{envkit_session.worker}.json").write_text(
            json.dumps(figures, indent=1))
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_up_succeeds_or_fails_cleanly_and_leaves_nothing(
    real_kit: Envkit, engine_proxy: EngineProxy, scenario: Scenario
) -> None:
    outcome = run(real_kit, engine_proxy, scenario, name=f"chaos-{scenario.name}")
    _OUTCOMES.append(outcome)
    print(json.dumps(outcome.figures()))
    if outcome.error is not None:
        assert isinstance(outcome.error, EnvkitError)
        assert str(outcome.error).strip(), "an error without a message"
        assert "Traceback" not in str(outcome.error)
        assert not getattr(outcome.error, "__notes__", None), (
            f"cleanup after the failed up() failed: {outcome.error.__notes__}")
    assert outcome.left_after_up_failed == [], "a failed up() left resources behind"
    assert outcome.left_after_down == [], "down() left resources behind"
    if scenario.expect == "up":
        assert outcome.up, f"the retries did not absorb the faults: {outcome.error}"
    elif scenario.expect == "error":
        assert not outcome.up, "up() passed although every attempt failed"
    if outcome.up:
        assert outcome.served, "the stack came up but does not serve"
    if scenario.name.startswith("engine-gone"):
        assert isinstance(outcome.error, EngineError) and "refused" in str(outcome.error)
    tries, request = outcome.most_tries()
    assert tries <= MOST_TRIES, f"{request} was tried {tries} times"
    assert outcome.seconds < MOST_SECONDS


def test_the_proxy_injects_what_it_is_told(
    real_kit: Envkit, engine_proxy: EngineProxy
) -> None:
    """The harness itself: a persistent fault is seen by every attempt (else tests lie)."""
    outcome = run(real_kit, engine_proxy, Scenario(name="probe", rules=(
        Rule(kind="error", method="POST", endpoint="/networks/create", status=503),)),
        name="chaos-probe")
    assert not outcome.up
    assert outcome.up_stats.faults == Counter({"error": MOST_TRIES})
    assert outcome.up_stats.endpoints[("POST", "/networks/create")] == MOST_TRIES
    assert "503" in str(outcome.error) or "chaos" in str(outcome.error)
    assert outcome.left_after_up_failed == []
