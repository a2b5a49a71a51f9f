#!/usr/bin/env python3
"""Time to ready and to stop of the MediaMTX stand-in, beside a bare Python HTTP server.

Issue 9 asks the stand-in to answer its API within 1.2x of a bare Python HTTP server
started from the same image, measured in the same run, and to stop within 0.4 s. The
machine is shared and its load swings, so absolute times mean little: both containers
are started interleaved (the order alternating each round) and the medians' ratio is
what counts.

One sample, for each contender: ``docker run`` (create + start through the SDK, with the
stack's settings: read-only root, ``/tmp`` tmpfs, 9997 on an ephemeral 127.0.0.1 port)
until ``GET /v3/paths/list`` (the stand-in) or ``GET /`` (``python3 -m http.server``)
answers 200, then ``docker stop`` until it returns. Containers carry ``envkit.dev=1`` and
are removed in ``finally``.

Usage: ``.venv/bin/python bench/bench_standin.py [--rounds 9] [--image IMG]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker
from docker.models.containers import Container

from envkit.camera.mediamtx import STANDIN
from envkit.session import Envkit

ROOT = Path(__file__).resolve().parents[1]
LABELS = {"envkit.dev": "1", "envkit.bench": "standin"}
CONTENDERS = {
    "standin": (None, "/v3/paths/list"),
    "bare": (["python3", "-m", "http.server", "9997"], "/"),
}


def ensure_image(image: str | None) -> str:
    """*image* if given, else the camera kit's stand-in built by envkit's own builder."""
    if image is not None:
        return image
    kit = Envkit.from_env(os.environ, worker="bench", root=ROOT)
    return kit.images.resolve(STANDIN)


def _host_port(container: Container, deadline: float) -> int:
    while time.monotonic() < deadline:
        container.reload()
        bound = (container.attrs["NetworkSettings"]["Ports"] or {}).get("9997/tcp")
        if bound:
            return int(bound[0]["HostPort"])
        time.sleep(0.005)
    raise TimeoutError("port 9997 never published")


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as res:
            return bool(res.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def sample(client: docker.DockerClient, image: str, name: str) -> tuple[float, float]:
    """One contender's (seconds to HTTP 200, seconds to stop)."""
    command, probe = CONTENDERS[name]
    container: Container | None = None
    try:
        t0 = time.monotonic()
        container = client.containers.run(
            image, command, detach=True, labels=LABELS, read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev"}, ports={"9997/tcp": ("127.0.0.1", None)})
        deadline = t0 + 120
        url = f"http://127.0.0.1:{_host_port(container, deadline)}{probe}"
        while not _ok(url):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: {url} not answering 200")
            time.sleep(0.005)
        ready = time.monotonic() - t0
        t1 = time.monotonic()
        # The bare server (PID 1 without a SIGTERM handler) ignores SIGTERM: kill it.
        container.stop(timeout=10 if name == "standin" else 0)
        return ready, time.monotonic() - t1
    finally:
        if container is not None:
            container.remove(force=True)


def main() -> int:
    """Run the interleaved rounds and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--image", default=None)
    args = parser.parse_args()
    image = ensure_image(args.image)
    client = docker.from_env()
    ready: dict[str, list[float]] = {n: [] for n in CONTENDERS}
    stop: dict[str, list[float]] = {n: [] for n in CONTENDERS}
    sample(client, image, "standin")  # warm the page cache; not counted
    for i in range(args.rounds):
        order = list(CONTENDERS) if i % 2 == 0 else list(reversed(CONTENDERS))
        for name in order:
            r, s = sample(client, image, name)
            ready[name].append(r)
            stop[name].append(s)
            print(f"round {i} {name}: ready {r:.3f} s, stop {s:.3f} s", file=sys.stderr)
    med = {n: (statistics.median(ready[n]), statistics.median(stop[n])) for n in CONTENDERS}
    print(f"image {image}, {args.rounds} rounds, load {os.getloadavg()[0]:.1f}")
    for name, (r, _s) in med.items():
        print(f"{name:8s} docker run -> HTTP 200 median {r:.3f} s")
    print(f"ready ratio standin/bare {med['standin'][0] / med['bare'][0]:.2f} (target <= 1.2)")
    # Each round's pair ran back to back: its ratio is the least disturbed by load swings.
    paired = sorted(s / b for s, b in zip(ready["standin"], ready["bare"], strict=True))
    print(f"ready ratio per round: median {statistics.median(paired):.2f} "
          f"(min {paired[0]:.2f}, max {paired[-1]:.2f})")
    print(f"stop  bare (SIGKILL, the engine's floor) median {med['bare'][1]:.3f} s")
    print(f"stop  standin median {med['standin'][1]:.3f} s (target <= 0.4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
