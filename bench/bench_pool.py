"""Time taking a stack from the warm pool, as a test sees it.

A pytest subprocess runs ``--tests`` tests that each call ``envkit_stack_factory("demo")``
and time that call with ``perf_counter``, after waiting (up to 120 s) until the pool has a
spare of it started, so the time is the take's and not the engine's load; each test then
does ``--work`` seconds of its own. The call's duration and
whether it got a spare (the stack's ``envkit.pooled`` label) go to a file per test. The
report gives the median, 90th percentile and maximum of the calls that took a spare,
and, for contrast, the calls that started a stack themselves (the first per worker, and
every call of a ``--envkit-pool 0`` run).

Usage: ``python bench/bench_pool.py [--tests 10] [--work 0.5] [--workers 2] [--runs 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

SUITE = """
import json, pathlib, time

import pytest

@pytest.mark.parametrize("n", range({tests}))
def test_take(envkit_session, envkit_stack_factory, n):
    # Time the take itself, not the engine's load: give the spare time to come up first.
    deadline = time.monotonic() + 120
    while ({pool} and test_take.asked and not envkit_session.spares_ready("demo")
           and time.monotonic() < deadline):
        time.sleep(0.05)
    test_take.asked = True
    started = time.perf_counter()
    stack = envkit_stack_factory("demo")
    took = time.perf_counter() - started
    pooled = stack.container("web").labels.get("envkit.pooled") == "true"
    pathlib.Path({out!r}, f"{{n}}.json").write_text(json.dumps([took, pooled]))
    time.sleep({work})


test_take.asked = False  # this worker asked for demo before (so a spare is coming)
"""


def run(folder: Path, args: argparse.Namespace, pool: int) -> list[tuple[float, bool]]:
    """One pytest run; each test's (factory call seconds, got a spare).

    :raises RuntimeError: if the run did not pass (its output attached).
    """
    out = folder / f"out-{uuid.uuid4().hex[:6]}"
    out.mkdir()
    (folder / "test_take.py").write_text(SUITE.format(tests=args.tests, work=args.work,
                                                      out=str(out), pool=pool))
    env = {**os.environ, "ENVKIT_SESSION": f"benchpool{uuid.uuid4().hex[:6]}"}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", str(args.workers),
           "--envkit-no-sweep", "--envkit-pool", str(pool), str(folder)]
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return [tuple(json.loads(p.read_text())) for p in out.iterdir()]


def summary(label: str, times: list[float]) -> str:
    if not times:
        return f"{label}: none"
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (f"{label}: n={len(times)} median {statistics.median(times) * 1000:.1f} ms, "
            f"p90 {p90 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=10)
    parser.add_argument("--work", type=float, default=0.5, help="seconds of each test's work")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    samples: dict[int, list[tuple[float, bool]]] = {1: [], 0: []}
    with tempfile.TemporaryDirectory(prefix="envkit-bench-pool-") as tmp:
        os.environ.setdefault("ENVKIT_PROJECT", Path(__file__).resolve().parent.parent.name)
        for i in range(args.runs):
            for pool in (1, 0) if i % 2 == 0 else (0, 1):
                samples[pool] += run(Path(tmp), args, pool)
    spares = [t for t, pooled in samples[1] if pooled]
    fresh_in_pooled = [t for t, pooled in samples[1] if not pooled]
    doc = {
        "taken_from_pool": spares, "started_in_pooled_run": fresh_in_pooled,
        "started_without_pool": [t for t, _ in samples[0]],
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(f"{args.tests} tests x {args.runs} runs at -n {args.workers}, "
          f"{args.work:g} s of work each; the envkit_stack_factory('demo') call:")
    print(summary("  took a spare (--envkit-pool 1)", spares))
    print(summary("  started its own, pool on (no spare yet)", fresh_in_pooled))
    print(summary("  started its own (--envkit-pool 0)", doc["started_without_pool"]))


if __name__ == "__main__":
    main()
