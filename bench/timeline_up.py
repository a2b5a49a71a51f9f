"""Where one stack's ``up()`` spends its wall time: engine requests and probes on a timeline.

``compare.py`` counts and sums the engine requests of an up; this shows them in order,
per service thread, beside each readiness check's first probe and the probe that passed,
so the critical path can be read off (for the default stack: network, MediaMTX's create
and start, the camera service's create and start, then its own start-up until
``/health/ready``). Times are milliseconds since ``up()`` was called.

Usage: ``python bench/timeline_up.py [--stack default] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import defaultdict
from typing import Any

from compare_stacks import call_kind

from envkit import readiness
from envkit.session import Envkit


class Timeline:
    """Events of one up, each at (seconds since the start, thread name, text)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.events: list[tuple[float, str, str]] = []
        self.probes: dict[tuple[str, str], list[float]] = defaultdict(list)
        self._lock = threading.Lock()

    def restart(self) -> None:
        """Forget what was seen; times count from now."""
        with self._lock:
            self.start = time.perf_counter()
            self.events.clear()
            self.probes.clear()

    def note(self, text: str, at: float | None = None) -> None:
        """Record *text* at *at* (``perf_counter``; now by default) on this thread."""
        when = (time.perf_counter() if at is None else at) - self.start
        with self._lock:
            self.events.append((when, threading.current_thread().name, text))

    def attach(self, api: Any) -> None:
        """Record every request of *api* (a docker-py ``APIClient``) with its duration."""
        original = api.request

        def timed(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(method, url, *args, **kwargs)
            finally:
                took = (time.perf_counter() - began) * 1000
                self.note(f"{call_kind(method, url)} ({took:.0f} ms, began "
                          f"{(began - self.start) * 1000:.0f})")

        api.request = timed

    def watch_probes(self) -> None:
        """Count every readiness probe; record the first and the one that passed."""
        for cls in (readiness.Http, readiness.LogLine, readiness.Tcp, readiness.Exec):
            cls.probe = self._timed_probe(cls.probe)  # type: ignore[method-assign]

    def _timed_probe(self, probe: Any) -> Any:
        def timed(check: Any, target: Any) -> None:
            seen = self.probes[(target.service, check.describe())]
            seen.append(time.perf_counter() - self.start)
            if len(seen) == 1:
                self.note(f"{target.service}: first probe of {check.describe()}")
            probe(check, target)
            self.note(f"{target.service}: {check.describe()} passed at probe {len(seen)}")

        return timed

    def show(self) -> None:
        """Print the events in time order."""
        for when, thread, text in sorted(self.events):
            print(f"{when * 1000:7.0f}  {thread[-16:]:16s}  {text}")


def main() -> None:
    """Bring the stack up and down *rounds* times, printing each up's timeline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="default")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    session = f"timeline{os.urandom(3).hex()}"
    kit = Envkit.from_env({**os.environ, "ENVKIT_SESSION": session}, worker="timeline")
    timeline = Timeline()
    timeline.attach(kit.engine.client.api)
    timeline.watch_probes()
    spec = kit.spec(args.stack)
    for svc in spec.services:  # built or found before the clock starts
        kit.images.resolve(svc.image)
    for round_ in range(args.rounds):
        stack = kit.stack(spec)
        timeline.restart()
        try:
            stack.up()
            took = time.perf_counter() - timeline.start
        finally:
            stack.down()
        print(f"--- round {round_ + 1}: up {took * 1000:.0f} ms (down not shown)")
        timeline.events = [e for e in timeline.events if e[0] <= took]
        timeline.show()


if __name__ == "__main__":
    main()
