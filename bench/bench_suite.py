"""Time a suite of tests that each take a fresh two-service stack and do work of their own.

Each test asks ``envkit_stack_factory`` for the ``demo`` stack (an HTTP service and a
dependent reaching it by alias) and then sleeps ``--work`` seconds, standing in for a
real integration test waiting on I/O. The suite runs as a pytest subprocess at each
``-n`` given, without the warm pool (``--envkit-pool 0``) with teardown in the background
and with ``--envkit-sync-teardown``, and with a pool of one spare (envkit's default); the
variants are interleaved round by round so drift in the machine's load hits all alike.
Times are wall-clock medians of the whole pytest run (interpreter and xdist start
included, the same for every variant).

Usage: ``python bench/bench_suite.py [--tests 12] [--work 1] [--workers 1,2] [--runs 3]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

SUITE = """
import time

import pytest

@pytest.mark.parametrize("n", range({tests}))
def test_with_fresh_stack(envkit_stack_factory, n):
    envkit_stack_factory("demo")
    time.sleep({work})
"""

MODES = {"background": ["--envkit-pool", "0"],
         "sync": ["--envkit-pool", "0", "--envkit-sync-teardown"],
         "pool": ["--envkit-pool", "1"]}


def run_pytest(folder: Path, args: list[str], env: dict[str, str]) -> float:
    """One pytest run in *folder* with *args*; its wall time in seconds.

    The run gets a process group of its own: on Ctrl-C (or any error here) the whole group,
    xdist workers included, gets SIGINT and time to remove its stacks, then SIGKILL.

    :raises RuntimeError: if the run did not pass (its output attached).
    """
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args, str(folder)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate()
    except BaseException:
        _stop_group(proc)
        raise
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out}")
    return took


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGINT the run's process group, give it 30 s to clean up, then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


NAMES = {"background": "pool 0, background teardown", "sync": "pool 0, sync teardown",
         "pool": "pool 1, background teardown"}


def run_suite(folder: Path, workers: int, mode: str) -> float:
    """One pytest run of the suite in *folder*; its wall time in seconds.

    :raises RuntimeError: if the run did not pass (its output attached).
    """
    env = {**os.environ, "ENVKIT_SESSION": f"bench{uuid.uuid4().hex[:8]}"}
    return run_pytest(folder, ["-n", str(workers), "--envkit-no-sweep", *MODES[mode]], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=12)
    parser.add_argument("--work", type=float, default=1.0, help="seconds of each test's work")
    parser.add_argument("--workers", default="1,2", help="comma-separated -n values")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"comma-separated variants: {', '.join(MODES)}")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    modes = args.modes.split(",")
    variants = [(n, mode) for n in counts for mode in modes]
    samples: dict[tuple[int, str], list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="envkit-bench-suite-") as tmp:
        folder = Path(tmp)
        (folder / "test_suite.py").write_text(SUITE.format(tests=args.tests, work=args.work))
        # Same project namespace as this checkout, so the suite reuses its built images.
        os.environ.setdefault("ENVKIT_PROJECT", Path(__file__).resolve().parent.parent.name)
        for i in range(args.runs):
            for variant in variants if i % 2 == 0 else list(reversed(variants)):
                samples[variant].append(run_suite(folder, *variant))
    medians = {f"-n {n} {mode}": statistics.median(samples[(n, mode)]) for n, mode in variants}
    if args.json:
        print(json.dumps(medians, indent=2))
        return
    floor = args.tests * args.work
    print(f"{args.tests} tests x {args.work:g} s of work (serial work alone {floor:g} s), "
          f"median of {args.runs} runs, wall time of the pytest run")
    for n in counts:
        print(f"-n {n}: " + ", ".join(f"{NAMES[m]} {medians[f'-n {n} {m}']:.1f} s"
                                       for m in modes))


if __name__ == "__main__":
    main()
