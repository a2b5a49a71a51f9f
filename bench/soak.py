"""Soak: many demo-stack cycles over two worker processes; nothing may leak or grow.

Each worker is a process of its own with its own :class:`~envkit.session.Envkit`, as an
xdist worker is, and runs its share of the cycles one after another: ``up()`` the demo
stack (two services, one reaching the other by alias), one request through it,
``down()``. After every cycle a worker asks the engine for what is left with its labels
(must be nothing) and samples itself: open file descriptors (``/proc/self/fd``), Python
threads and OS threads, and resident memory (``VmRSS``). Growth is measured from the
cycle at which the run has done ``--warmup`` stacks (connection pools filled, imports
done, caches warm) to the last; engine-wide object counts (every container, network
and volume, envkit's or not) are reported beside, for information only: other users of a
shared engine move them.

Usage: ``python bench/soak.py [--cycles 100] [--workers 2] [--warmup 10]
[--teardown sync|background] [--json]``.
Exits 1 when something leaked or grew beyond the tolerances (``--fd-tolerance``,
``--thread-tolerance``, ``--rss-tolerance-mib``), so a test can run it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from typing import Any

from envkit import labels
from envkit.config import Settings, new_session_id
from envkit.demo import demo
from envkit.inventory import list_stacks
from envkit.session import Envkit


@dataclass(frozen=True)
class Sample:
    """One worker's state after one of its cycles."""

    cycle: int
    seconds: float
    fds: int
    threads: int
    os_threads: int
    rss_kib: int
    left: int


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _sample(cycle: int, seconds: float, left: int) -> Sample:
    return Sample(cycle=cycle, seconds=round(seconds, 3), fds=len(os.listdir("/proc/self/fd")),
                  threads=threading.active_count(), os_threads=_status("Threads"),
                  rss_kib=_status("VmRSS"), left=left)


def engine_totals(kit: Envkit) -> dict[str, int]:
    """Every container, network and volume on the engine, and those with envkit labels."""
    client = kit.engine.client
    envkit_only = {"label": [labels.STACK]}
    return {
        "containers": len(client.api.containers(all=True, quiet=True)),
        "networks": len(client.api.networks()),
        "volumes": len(client.api.volumes().get("Volumes") or []),
        "envkit_containers": len(client.api.containers(all=True, quiet=True,
                                                       filters=envkit_only)),
        "envkit_networks": len(client.api.networks(filters=envkit_only)),
        "envkit_volumes": len(client.api.volumes(filters=envkit_only).get("Volumes") or []),
    }


def work(
    session: str, worker: str, cycles: int, baseline: int, background: bool = False
) -> dict[str, Any]:
    """One worker: *cycles* demo stacks up, used and down; samples after each.

    :param baseline: the worker's cycle after which engine totals are first taken.
    :param background: hand each stack to the remover thread (the plugin's default
        teardown) and wait for it before sampling, instead of ``down()`` in line.
    """
    kit = Envkit(settings=Settings.from_env(os.environ), environ=os.environ, session=session,
                 worker=worker)
    mine = labels.selector(session=kit.session, worker=kit.worker)
    samples: list[Sample] = []
    totals: dict[str, dict[str, int]] = {}
    for cycle in range(1, cycles + 1):
        began = time.perf_counter()
        stack = kit.stack(demo())
        stack.up()
        try:
            with urllib.request.urlopen(stack.url("client", 8080), timeout=10) as response:
                if not json.load(response)["upstream"]["ok"]:
                    raise RuntimeError(f"cycle {cycle}: the client does not reach web")
        finally:
            if background:
                kit.remove_later(stack)
                if failed := kit.finish_removals():
                    raise RuntimeError(f"cycle {cycle}: background removal failed: {failed}")
            else:
                stack.down()
        left = sum(len(s.resources) for s in list_stacks(kit.engine.client, selector=mine))
        samples.append(_sample(cycle, time.perf_counter() - began, left))
        # Progress on stderr (stdout carries the figures): a long soak shows it is alive.
        print(f"{worker} cycle {cycle}/{cycles}: {samples[-1]}", file=sys.stderr, flush=True)
        if cycle in (baseline, cycles):
            totals[str(cycle)] = engine_totals(kit)
    return {"worker": worker, "samples": [asdict(s) for s in samples], "totals": totals,
            "made": len(kit.made)}


def growth(result: dict[str, Any], baseline: int) -> dict[str, int]:
    """What grew in one worker from its *baseline* cycle to its last."""
    first, last = result["samples"][baseline - 1], result["samples"][-1]
    return {key: last[key] - first[key] for key in ("fds", "threads", "os_threads", "rss_kib")}


def run(cycles: int, workers: int, warmup: int, *, background: bool = False) -> dict[str, Any]:
    """The whole soak; figures per worker and the verdict's inputs."""
    session = new_session_id()
    share = [cycles // workers + (i < cycles % workers) for i in range(workers)]
    baseline = max(warmup // workers, 1)
    began = time.perf_counter()
    # spawn: each worker starts clean, as xdist's do, with no state forked from this one.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(work, session, f"soak{i}", n, baseline, background)
                   for i, n in enumerate(share)]
        results = [f.result() for f in futures]
    checker = Envkit(settings=Settings.from_env(os.environ), environ=os.environ,
                     session=session, worker="check")
    left_over = [r for s in list_stacks(checker.engine.client,
                                        selector=labels.selector(session=session))
                 for r in s.resources]
    return {
        "session": session, "cycles": sum(share), "workers": workers, "warmup": warmup,
        "teardown": "background" if background else "sync",
        "baseline_cycle_per_worker": baseline, "seconds": round(time.perf_counter() - began, 1),
        "cycle_seconds_median": sorted(s["seconds"] for r in results
                                       for s in r["samples"])[sum(share) // 2],
        "leaked_after_a_cycle": sum(s["left"] for r in results for s in r["samples"]),
        "left_at_end": left_over,
        "growth": {r["worker"]: growth(r, baseline) for r in results},
        "engine_totals": {r["worker"]: r["totals"] for r in results},
        "workers_detail": results,
    }


def verdict(figures: dict[str, Any], *, fds: int, threads: int, rss_mib: float) -> list[str]:
    """What breaks the promise: leaks, and growth beyond the tolerances."""
    problems = []
    if figures["leaked_after_a_cycle"] or figures["left_at_end"]:
        problems.append(f"leaked: {figures['leaked_after_a_cycle']} resources after cycles, "
                        f"{figures['left_at_end']} at the end")
    for worker, grew in figures["growth"].items():
        if grew["fds"] > fds:
            problems.append(f"{worker}: file descriptors grew by {grew['fds']} (> {fds})")
        if max(grew["threads"], grew["os_threads"]) > threads:
            problems.append(f"{worker}: threads grew by {grew['threads']} Python / "
                            f"{grew['os_threads']} OS (> {threads})")
        if grew["rss_kib"] > rss_mib * 1024:
            problems.append(f"{worker}: RSS grew by {grew['rss_kib']} KiB (> {rss_mib} MiB)")
    return problems


def _print(figures: dict[str, Any], problems: list[str]) -> None:
    print(f"soak: {figures['cycles']} demo-stack cycles over {figures['workers']} workers "
          f"({figures['teardown']} teardown) in "
          f"{figures['seconds']} s (median cycle {figures['cycle_seconds_median']} s)")
    print(f"leaks: {figures['leaked_after_a_cycle']} resources left after a cycle, "
          f"{len(figures['left_at_end'])} at the end")
    base = figures["baseline_cycle_per_worker"]
    for result in figures["workers_detail"]:
        first, last = result["samples"][base - 1], result["samples"][-1]
        print(f"{result['worker']}: cycle {base} -> {last['cycle']}: "
              + ", ".join(f"{k} {first[k]} -> {last[k]}"
                          for k in ("fds", "threads", "os_threads", "rss_kib")))
        for at, totals in result["totals"].items():
            print(f"  engine after its cycle {at}: " + ", ".join(
                f"{k} {v}" for k, v in totals.items()))
    print("verdict: " + ("; ".join(problems) if problems else "no leak, no growth"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=10,
                        help="stacks of the whole run before growth is measured")
    parser.add_argument("--fd-tolerance", type=int, default=2)
    parser.add_argument("--thread-tolerance", type=int, default=0)
    parser.add_argument("--rss-tolerance-mib", type=float, default=8.0)
    parser.add_argument("--teardown", choices=("sync", "background"), default="sync",
                        help="down() in line, or the plugin's remover thread")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.cycles < args.warmup + args.workers:
        parser.error("--cycles must exceed --warmup by at least one cycle per worker")
    figures = run(args.cycles, args.workers, args.warmup,
                  background=args.teardown == "background")
    problems = verdict(figures, fds=args.fd_tolerance, threads=args.thread_tolerance,
                       rss_mib=args.rss_tolerance_mib)
    if args.json:
        print(json.dumps({**figures, "problems": problems}))
    else:
        _print(figures, problems)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
