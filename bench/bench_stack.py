"""Measure envkit's stack up (to ready) and down against raw docker-SDK calls, same run.

Three shapes: ``demo`` (a web service and a dependent that reaches it by alias, which
must start in order), ``fanout`` (three independent web services, which envkit starts
concurrently) and ``default`` (MediaMTX and the camera service, images built). The
baseline makes the fewest SDK calls a careful script would, one service after another.
Results are medians; ratios are envkit / baseline.

Usage: ``python bench/bench_stack.py [--runs 7] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import urllib.request
import uuid
from collections.abc import Callable
from functools import partial

import docker

from envkit import Http, ServiceSpec, StackSpec
from envkit.demo import TESTSVC, demo
from envkit.session import Envkit


def fanout() -> StackSpec:
    """Three services with no dependencies between them."""
    return StackSpec(name="fanout", services=[
        ServiceSpec(name=f"web{i}", image=TESTSVC, ports=[8080],
                    ready=[Http(8080, "/health")]) for i in range(3)
    ])


def _wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.02)


def _first_http(svc: ServiceSpec) -> Http:
    return next(c for c in svc.ready if isinstance(c, Http))


def raw_cycle(
    client: docker.DockerClient, spec: StackSpec, tags: dict[str, str]
) -> tuple[float, float]:
    """Sequential baseline: network, then each service created, started and awaited."""
    name = f"bench-raw-{uuid.uuid4().hex[:8]}"
    labels = {"envkit.session": "bench-raw"}  # so a crashed bench is still swept
    t0 = time.perf_counter()
    net = client.networks.create(name, labels=labels)
    containers = []
    for svc in spec.start_order():
        command = list(svc.command) if svc.command else None
        check = _first_http(svc)
        c = client.containers.run(
            tags[svc.name], command=command, detach=True, network=name, labels=labels,
            ports={str(p): ("127.0.0.1",) for p in svc.published},
            environment=dict(svc.environment),
            networking_config={name: client.api.create_endpoint_config(aliases=[svc.name])},
        )
        containers.append(c)
        c.reload()
        port = c.attrs["NetworkSettings"]["Ports"][f"{check.port}/tcp"][0]["HostPort"]
        _wait_http(f"http://127.0.0.1:{port}{check.path}")
    t1 = time.perf_counter()
    for c in containers:
        c.remove(force=True)
    net.remove()
    return t1 - t0, time.perf_counter() - t1


def envkit_cycle(kit: Envkit, spec: StackSpec) -> tuple[float, float]:
    """envkit: the same stack through Stack.up() and Stack.down()."""
    stack = kit.stack(spec)
    t0 = time.perf_counter()
    stack.up()
    t1 = time.perf_counter()
    stack.down()
    return t1 - t0, time.perf_counter() - t1


def _interleaved(
    contenders: dict[str, Callable[[], tuple[float, float] | None]], runs: int
) -> dict[str, dict[str, float]]:
    """Alternate the contenders run by run, so drift in the machine's load hits both alike."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for i in range(runs):
        order = list(contenders) if i % 2 == 0 else list(reversed(contenders))
        for name in order:
            got = contenders[name]()
            if got is not None:  # a contender may report a failed run as None
                samples[name].append(got)
    return {
        name: {"up": statistics.median(u for u, _ in got),
               "down": statistics.median(d for _, d in got)}
        for name, got in samples.items() if got
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--shapes", default="demo,fanout,default",
                        help="comma-separated subset of demo, fanout, default")
    args = parser.parse_args()
    kit = Envkit.from_env(os.environ, worker="bench")
    client = kit.engine.client
    results: dict[str, dict[str, dict[str, float]]] = {}
    shapes: dict[str, Callable[[], StackSpec]] = {
        "demo": demo, "fanout": fanout, "default": partial(kit.spec, "default"),
    }
    for spec in (shapes[name]() for name in args.shapes.split(",")):
        tags = {svc.name: kit.images.resolve(svc.image) for svc in spec.services}
        envkit_cycle(kit, spec)  # warm-up: first start pays one-off engine costs
        results[spec.name] = _interleaved({
            "raw_sdk_sequential": partial(raw_cycle, client, spec, tags),
            "envkit": partial(envkit_cycle, kit, spec),
        }, args.runs)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"engine {kit.engine.server_version()}, median of {args.runs} runs")
    for shape, rows in results.items():
        base = rows["raw_sdk_sequential"]
        for who, row in rows.items():
            print(f"{shape:<7} {who:<20} up {row['up']:.3f}s ({row['up'] / base['up']:.2f}x)"
                  f"  down {row['down']:.3f}s ({row['down'] / base['down']:.2f}x)")


if __name__ == "__main__":
    main()
