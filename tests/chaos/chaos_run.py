"""One chaos scenario: the demo stack brought up and down through a misbehaving engine.

The proxy (:mod:`engine_proxy`) injects the scenario's faults into every request of
``up()`` and ``down()``; whatever happens is judged through the real engine's socket,
which the proxy never touches: what is left of the stack, and what the proxy counted.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

from engine_proxy import EngineProxy, Rule, Stats

from envkit import labels
from envkit.demo import demo
from envkit.errors import EnvkitError
from envkit.inventory import list_stacks
from envkit.runtime import Stack
from envkit.session import Envkit

#: Requests that change the engine; each is tried at most this often in one phase.
MUTATING = {"POST", "PUT", "DELETE"}


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """Faults to inject, and what ``up()`` may do under them.

    :param expect: ``"up"`` (the retries must absorb the faults), ``"error"`` (``up()``
        must fail with one EnvkitError) or ``"either"``.
    """

    name: str
    rules: tuple[Rule, ...] = ()
    seed: int = 0
    expect: str = "either"


@dataclass(kw_only=True)
class Outcome:
    """What happened in one scenario, for the assertions and the figures."""

    scenario: str
    stack: str
    up: bool = False
    served: bool = False
    error: BaseException | None = None
    down_error: BaseException | None = None
    left_after_up_failed: list[str] = field(default_factory=list)
    left_after_down: list[str] = field(default_factory=list)
    seconds: float = 0.0
    up_stats: Stats = field(default_factory=Stats)
    down_stats: Stats = field(default_factory=Stats)

    @property
    def faults(self) -> Counter[str]:
        return self.up_stats.faults + self.down_stats.faults

    def most_tries(self) -> tuple[int, str]:
        """The most attempts of one mutating request in one phase, and which request."""
        tries = [(n, f"{m} {t}") for stats in (self.up_stats, self.down_stats)
                 for (m, t), n in stats.requests.items() if m in MUTATING]
        return max(tries, default=(0, ""))

    def figures(self) -> dict[str, object]:
        return {
            "scenario": self.scenario, "outcome": "up" if self.up else "error",
            "error": _one_line(self.error), "down_error": _one_line(self.down_error),
            "served": self.served, "seconds": round(self.seconds, 2),
            "faults": dict(self.faults), "requests": sum(self.up_stats.endpoints.values())
            + sum(self.down_stats.endpoints.values()),
            "most_tries": self.most_tries()[0],
            "left": self.left_after_up_failed + self.left_after_down,
        }


def _one_line(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def left_of(real: Envkit, stack_id: str) -> list[str]:
    """What of *stack_id* is on the engine, asked through the real socket."""
    found = list_stacks(real.engine.client, selector=labels.selector(stack=stack_id))
    return sorted({r for s in found for r in s.resources})


def run(real: Envkit, proxy: EngineProxy, scenario: Scenario, *, name: str) -> Outcome:
    """Bring the demo stack up, use it, and take it down, all through *proxy*'s faults.

    Only EnvkitError is caught: any other exception out of envkit fails the test as it is.
    """
    chaotic = Envkit(settings=real.settings, environ={**real.environ, "DOCKER_HOST": proxy.url},
                     session=real.session, worker=real.worker)
    outcome = Outcome(scenario=scenario.name, stack=chaotic.stack_id(name))
    proxy.reset(scenario.rules, seed=scenario.seed)
    began = time.monotonic()
    stack: Stack | None = None
    try:
        stack = chaotic.stack(demo(), name=name)
        stack.up()
        outcome.up = True
    except EnvkitError as exc:
        outcome.error = exc
        proxy.wait_until_up()
        outcome.left_after_up_failed = left_of(real, outcome.stack)
    outcome.up_stats = proxy.reset(scenario.rules, seed=scenario.seed + 1)
    try:
        if stack is not None and outcome.up:
            outcome.served = _served(stack)
            stack.down()
    except EnvkitError as exc:
        outcome.down_error = exc
    finally:
        outcome.seconds = time.monotonic() - began
        proxy.wait_until_up()
        outcome.down_stats = proxy.reset()
        if outcome.down_error is not None and stack is not None:
            stack.down()  # what the error's fix says: down again (no faults now)
        outcome.left_after_down = left_of(real, outcome.stack)
        if chaotic.connected:
            chaotic.engine.client.close()
    return outcome


def _served(stack: Stack) -> bool:
    """Whether the stack works: the client reaches web by its alias (host ports, no proxy)."""
    with urllib.request.urlopen(stack.url("client", 8080), timeout=5) as response:
        body = json.load(response)
    return bool(body.get("upstream", {}).get("ok"))
