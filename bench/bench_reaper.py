"""Measure the reaper: what spawning the watchdog costs, and owner death to clean engine.

The death-to-clean time is compared with the engine's own teardown of the same stack
(``docker rm -f`` of each container, then the network), measured in the same run.

Usage: ``python bench/bench_reaper.py [--runs 5]``
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from envkit import _watchdog, labels
from envkit.session import Envkit

OWNER_SCRIPT = """
import os, sys, time
from envkit.session import Envkit
from envkit.demo import demo
kit = Envkit.from_env(os.environ, worker="benchreap")
kit.stack(demo()).up()
print("up", flush=True)
time.sleep(600)
"""


def spawn_cost(runs: int) -> list[float]:
    """Seconds the owner is blocked spawning a watchdog."""
    costs = []
    for i in range(runs):
        dog = _watchdog.spawn(f"{labels.owner_id()}-bench{i}", docker_host="unix:///var/run/docker.sock")
        costs.append(dog.spawn_seconds)
        os.close(dog.write_fd)
        dog.process.wait(timeout=30)
    return costs


def death_to_clean(kit: Envkit) -> float:
    """SIGKILL an owner holding a demo stack; seconds until none of its resources remain."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT], stdout=subprocess.PIPE,
                             start_new_session=True)
    assert owner.stdout is not None and owner.stdout.readline().strip() == b"up"
    selector = labels.selector(owner=f"{labels.owner_id().split(':')[0]}:{owner.pid}")
    client = kit.engine.client
    os.killpg(owner.pid, signal.SIGKILL)
    owner.wait()
    killed = time.perf_counter()
    while client.containers.list(all=True, filters=selector, ignore_removed=True) or (
            client.networks.list(filters=selector)):
        time.sleep(0.05)
    return time.perf_counter() - killed


def engine_teardown(kit: Envkit) -> float:
    """The engine's own floor: remove the same stack's containers and network directly."""
    stack = kit.stack(kit.spec("demo")).up()
    client = kit.engine.client
    containers = client.containers.list(all=True, filters=labels.selector(stack=stack.id))
    start = time.perf_counter()
    for c in containers:
        c.remove(force=True)
    client.networks.get(stack.network).remove()
    elapsed = time.perf_counter() - start
    stack.down()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    kit = Envkit.from_env(os.environ, worker="bench")
    spawn = spawn_cost(max(args.runs, 10))
    reaped = [death_to_clean(kit) for _ in range(args.runs)]
    floor = [engine_teardown(kit) for _ in range(args.runs)]
    print(f"watchdog spawn: median {statistics.median(spawn) * 1000:.1f} ms, "
          f"max {max(spawn) * 1000:.1f} ms")
    print(f"owner SIGKILL -> clean engine: median {statistics.median(reaped):.2f} s "
          f"(engine's own rm -f of the stack: {statistics.median(floor):.2f} s, "
          f"ratio {statistics.median(reaped) / statistics.median(floor):.1f}x)")


if __name__ == "__main__":
    main()
