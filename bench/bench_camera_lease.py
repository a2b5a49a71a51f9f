"""Measure how soon a SIGKILLed holder's camera lease is taken by a process waiting for it.

Two figures, on a stand-in device path (a lease keys on the path and never opens the node):

- ``process``: a holder subprocess leases the device; a thread of this process waits for
  it with envkit's ``wait`` policy (``leases.acquire``, which polls every 0.1 s: expect
  about half that, plus the kernel's part), and a
  second thread with a bare blocking ``flock``, the kernel's own figure. The holder is
  SIGKILLed once both wait; each time is from ``kill()`` to the lease being held.
- ``--pytest-runs N``: N real ``pytest -n 2`` runs: two workers ask for one device, the
  one holding it SIGKILLs itself once the other waits, and the waiter records when it
  got the lease (the same suite as tests/plugin/test_camera_leases_xdist.py).

Usage: ``python bench/bench_camera_lease.py [--runs 20] [--pytest-runs 3]``
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from envkit.camera import leases

HOLDER = """
import sys, time
from pathlib import Path
from envkit.camera import leases
grant = leases.acquire(sys.argv[2:], len(sys.argv) - 2, Path(sys.argv[1]), policy="fail")
print("held", flush=True)
time.sleep(600)
"""

SUITE = """
import json, os, signal, time
from pathlib import Path
import pytest

OUT = Path(os.environ["CAMBENCH_OUT"])

@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef, request):
    if fixturedef.argname == "envkit_cameras":
        (OUT / f"asked-{request.node.name}").write_text(repr(time.time()))
"""

TESTS = """
import os, signal, time
from pathlib import Path
import pytest

OUT = Path(os.environ["CAMBENCH_OUT"])

@pytest.mark.envkit_cameras(1)
@pytest.mark.parametrize("n", range(2))
def test_hold_or_wait(n, envkit_cameras):
    if (OUT / "killed").exists():
        (OUT / "got").write_text(repr(time.time()))
        return
    while len(list(OUT.glob("asked-*"))) < 2:
        time.sleep(0.02)
    time.sleep(0.5)
    (OUT / "killed").write_text(repr(time.time()))
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _flock_waiter(path: Path, got: list[float]) -> None:
    """A bare blocking flock on the lease's lock file: when the kernel hands it over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    got.append(time.perf_counter())
    os.close(fd)


def one_kill(root: Path) -> tuple[float, float]:
    """SIGKILL a holder; seconds until envkit's waiter, and a bare flock, hold the device."""
    # Two devices, one per waiter, so neither waits behind the other; one kill frees both.
    device, raw, directory = str(root / "video0"), str(root / "video1"), root / "locks"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory), device, raw],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    envkit_got: list[float] = []
    kernel_got: list[float] = []

    def envkit_waiter() -> None:
        grant = leases.acquire([device], 1, directory, policy="wait", wait=60)
        envkit_got.append(time.perf_counter())
        grant.release()

    threads = [threading.Thread(target=envkit_waiter),
               threading.Thread(target=_flock_waiter,
                                args=(leases.lock_file(directory, raw), kernel_got))]
    for thread in threads:
        thread.start()
    # Both wait by now; the random part keeps the kill from falling at one phase of the
    # 0.1 s poll (a fixed 0.3 s lands just after a poll every time: ~100 ms each run).
    time.sleep(0.3 + random.uniform(0, leases._POLL))
    killed = time.perf_counter()
    os.kill(holder.pid, signal.SIGKILL)
    for thread in threads:
        thread.join()
    holder.wait()
    return envkit_got[0] - killed, kernel_got[0] - killed


def pytest_kill(root: Path) -> float:
    """One ``pytest -n 2`` run whose lease holder SIGKILLs itself; kill to the waiter's lease."""
    out = root / "out"
    out.mkdir(parents=True)
    node = root / "video0"
    node.touch()
    (root / "conftest.py").write_text(SUITE)
    (root / "test_kill.py").write_text(TESTS)
    env = {**os.environ, "CAMBENCH_OUT": str(out), "ENVKIT_CAMERA_DEVICES": str(node),
           "XDG_CACHE_HOME": str(root / "cache")}
    env.pop("ENVKIT_SESSION", None)
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider",
                    "--envkit-no-sweep", "--rootdir", str(root), str(root)],
                   cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False)
    got, killed = (float((out / name).read_text()) for name in ("got", "killed"))
    return got - killed


def _summary(label: str, values: list[float]) -> str:
    return (f"{label}: median {statistics.median(values) * 1000:.1f} ms, "
            f"min {min(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms "
            f"(n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="holder kills (process level)")
    parser.add_argument("--pytest-runs", type=int, default=0,
                        help="real pytest -n 2 runs whose holding worker is SIGKILLed")
    args = parser.parse_args()
    envkit_times, kernel_times, worker_times = [], [], []
    with tempfile.TemporaryDirectory(prefix="envkit-bench-lease-") as tmp:
        for i in range(args.runs):
            envkit_s, kernel_s = one_kill(Path(tmp) / f"p{i}")
            envkit_times.append(envkit_s)
            kernel_times.append(kernel_s)
        for i in range(args.pytest_runs):
            worker_times.append(pytest_kill(Path(tmp) / f"w{i}"))
            print(f"pytest run {i + 1}: {worker_times[-1] * 1000:.1f} ms", flush=True)
    if envkit_times:
        print(_summary("SIGKILL -> lease held, envkit wait policy (polls 0.1 s)", envkit_times))
        print(_summary("SIGKILL -> bare blocking flock (kernel)", kernel_times))
    if worker_times:
        print(_summary("SIGKILL of a pytest worker -> waiting worker's lease", worker_times))
    print(json.dumps({"envkit_s": envkit_times, "kernel_s": kernel_times,
                      "pytest_worker_s": worker_times}))


if __name__ == "__main__":
    main()
