"""Measure what envkit's pytest plugins cost a run that uses none of their fixtures.

Whole-process wall time of ``python -m pytest -q -p no:cacheprovider one_test.py`` with
envkit's plugins loaded, against the same run with ``-p no:envkit -p no:envkit-camera``.
The two are interleaved (so a busy moment of the machine hits both alike) and the median
of each is reported. Issue 8's target: at most 0.05 s more with the plugins.

``DOCKER_HOST`` points at an unroutable address, so a plugin that reached for the engine
would show as a slow (or failed) run rather than a cheap one.

Usage: ``python bench/bench_plugin_cost.py [--runs 15]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ONE_TEST = "def test_one():\n    assert 1 + 1 == 2\n"
WITHOUT = ("-p", "no:envkit", "-p", "no:envkit-camera")
TARGET = 0.05


def run_once(where: Path, extra: tuple[str, ...]) -> float:
    """Seconds one whole pytest process takes; a failing run stops the benchmark."""
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra,
            "one_test.py"]
    env = {**os.environ, "DOCKER_HOST": "tcp://192.0.2.1:1", "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"run {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return elapsed


def measure(runs: int) -> tuple[list[float], list[float]]:
    """Interleaved timings with and without the plugins, after one warm-up of each."""
    with_plugin: list[float] = []
    without: list[float] = []
    with tempfile.TemporaryDirectory(prefix="envkit-bench-") as tmp:
        where = Path(tmp)
        (where / "one_test.py").write_text(ONE_TEST)
        run_once(where, ())  # warm the page cache and compile bytecode elsewhere
        run_once(where, WITHOUT)
        for _ in range(runs):
            with_plugin.append(run_once(where, ()))
            without.append(run_once(where, WITHOUT))
    return with_plugin, without


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each (default 15)")
    args = parser.parse_args()
    with_plugin, without = measure(args.runs)
    on, off = statistics.median(with_plugin), statistics.median(without)
    print(f"runs each:              {args.runs} (interleaved)")
    print(f"with envkit plugins:    median {on:.3f} s  (min {min(with_plugin):.3f}, "
          f"max {max(with_plugin):.3f})")
    print(f"-p no:envkit(-camera):  median {off:.3f} s  (min {min(without):.3f}, "
          f"max {max(without):.3f})")
    verdict = "within" if on - off <= TARGET else "OVER"
    print(f"difference:             {on - off:+.3f} s  ({verdict} the {TARGET:.2f} s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
