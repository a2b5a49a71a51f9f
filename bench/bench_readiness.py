"""Measure what the Tcp check's look inside the container costs: per probe and per stack up.

``Tcp`` proves that the service itself listens by reading the container's socket tables:
from this host's ``/proc`` when the engine is local, else by one exec of ``cat`` once the
published port holds a connection (``--no-host-view`` forces that path). Before issue 14
it only connected to the published port (``HostOnlyTcp`` below, kept here to compare).

- per probe: a ready service (the path every ready Tcp check ends on) and a service that
  never listens (how often docker-proxy's EOF ends the probe before the exec);
- per stack: ``up`` of a two-service chain (b depends on a), each checked by ``Tcp``,
  interleaved new/old, medians.

Usage: ``python bench/bench_readiness.py [--probes 30] [--runs 7] [--no-host-view] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from envkit import Check, Http, ServiceSpec, StackSpec, Tcp, readiness
from envkit.demo import TESTSVC
from envkit.readiness import NotReady, Target
from envkit.session import Envkit

SERVE = ["python3", "/app/svc.py", "serve", "--port", "8080"]


@dataclass(frozen=True)
class HostOnlyTcp:
    """The check before issue 14: the published port holds a connection for *settle* s."""

    port: int
    settle: float = 0.05

    def describe(self) -> str:
        return f"HostOnlyTcp({self.port})"

    def probe(self, target: Target) -> None:
        host, port = target.host_endpoint(self.port)
        try:
            with socket.create_connection((host, port), timeout=1.0) as sock:
                sock.settimeout(self.settle)
                try:
                    if sock.recv(1, socket.MSG_PEEK) == b"":
                        raise NotReady("closed at once")
                except TimeoutError:
                    return
        except OSError as exc:
            raise NotReady(str(exc)) from exc


class Counting:
    """A target that counts the execs a probe makes."""

    def __init__(self, inner: Target) -> None:
        self.inner, self.execs = inner, 0
        self.service = inner.service

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def exec(self, command: Sequence[str]) -> tuple[int, str]:
        self.execs += 1
        return self.inner.exec(command)


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 1),
            "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1] * 1000, 1)}


def per_probe(kit: Envkit, probes: int) -> dict[str, object]:
    """Time ``probe`` on a listening and on a mute service, new check and old."""
    spec = StackSpec(name="probecost", services=[
        ServiceSpec(name="ready", image=TESTSVC, ports=[8080], command=SERVE,
                    ready=[Http(8080, "/health")]),
        ServiceSpec(name="mute", image=TESTSVC, ports=[8080], command=["sleep", "600"],
                    ready=[]),
    ])
    stack = kit.stack(spec)
    stack.up()
    try:
        out: dict[str, object] = {}
        for service, checks in (("ready", (Tcp(8080), HostOnlyTcp(8080))),
                                ("mute", (Tcp(8080),))):
            target = Counting(stack._handle(service))
            for check in checks:
                times, passed = [], 0
                target.execs = 0
                for _ in range(probes):
                    began = time.perf_counter()
                    try:
                        check.probe(target)
                        passed += 1
                    except NotReady:
                        pass
                    times.append(time.perf_counter() - began)
                out[f"{service}/{check.describe()}"] = {
                    **_ms(times), "passed": passed, "execs": target.execs, "probes": probes}
        return out
    finally:
        stack.down()


def per_stack(kit: Envkit, runs: int) -> dict[str, object]:
    """Median ``up`` of a two-service Tcp-checked chain, new check vs old, interleaved."""
    def chain(check: Callable[[int], Check]) -> StackSpec:
        return StackSpec(name="tcpchain", services=[
            ServiceSpec(name="a", image=TESTSVC, ports=[8080], command=SERVE,
                        ready=[check(8080)]),
            ServiceSpec(name="b", image=TESTSVC, ports=[8080], command=SERVE,
                        ready=[check(8080)], depends_on=["a"]),
        ])

    ups: dict[str, list[float]] = {"Tcp": [], "HostOnlyTcp": []}
    for _ in range(runs):
        for label, check in (("Tcp", Tcp), ("HostOnlyTcp", HostOnlyTcp)):
            stack = kit.stack(chain(check))  # type: ignore[arg-type]
            began = time.perf_counter()
            stack.up()
            ups[label].append(time.perf_counter() - began)
            stack.down()
    return {label: {"median_s": round(statistics.median(v), 3),
                    "all_s": [round(x, 3) for x in v]} for label, v in ups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-host-view", action="store_true",
                        help="measure the exec path, as with a remote engine")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.no_host_view:
        readiness.host_view = lambda target, **_: None  # type: ignore[assignment]
    kit = Envkit.from_env(os.environ, worker="bench")
    results = {"host_view": not args.no_host_view, "load_before": os.getloadavg()[0],
               "probe": per_probe(kit, args.probes), "up": per_stack(kit, args.runs),
               "load_after": os.getloadavg()[0]}
    print(json.dumps(results, indent=2) if args.json else results)


if __name__ == "__main__":
    main()
