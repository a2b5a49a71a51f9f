"""One stack up and down, five ways, for ``compare.py``: each contender's own idiom.

* ``raw``: the fewest docker-SDK calls a careful script makes (low-level API: network
  create, then per service create, start, inspect, wait for HTTP; down: remove each
  container with force, then the network), one service after another.
* ``testcontainers``: testcontainers-python written by hand (``Network``,
  ``DockerContainer`` with a network alias, an HTTP wait, ``stop()``).
* ``compose``: ``docker-compose up -d`` of a compose file, ports read through the SDK,
  the same HTTP wait; ``docker-compose down -v``.
* ``pytest-docker``: its own ``get_docker_services`` with ``docker-compose`` (v1 has no
  ``--wait``, so ``up -d``), ``port_for`` and ``wait_until_responsive``.
* ``envkit``: ``Stack.up()`` / ``Stack.down()`` (``bench_stack.envkit_cycle``).

Every resource made here carries the run's ``envkit.bench`` label, so ``compare.py`` can
remove whatever a Ctrl-C left behind.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import yaml
from bench_stack import _first_http, _wait_http

from envkit.spec import StackSpec

BENCH_LABEL = "envkit.bench"
# Ids and names in a path are one kind of call: /containers/abc123/start -> {id}/start.
_ID_IN_PATH = re.compile(r"^/(containers|networks|volumes|images|exec)/(?!create$|json$)[^/]+")
_ID_FORM = r"/\1/{id}"


def call_kind(method: str, url: str) -> str:
    """``POST /containers/{id}/start`` from a docker-py request's method and URL."""
    path = re.sub(r"^https?://[^/]+|^http\+docker://[^/]+", "", url).split("?")[0]
    path = re.sub(r"^/v\d+\.\d+", "", path)
    path = re.sub(r"^/images/.+/(json|history|tag|push|get)$", r"/images/{id}/\1", path)
    return f"{method} {_ID_IN_PATH.sub(_ID_FORM, path)}"


@dataclass
class CallLog:
    """Counts and times every engine request a docker-py client makes while recording.

    Wraps the client's ``requests.Session.request`` (every docker-py call goes through
    it), so the kinds of calls envkit makes can be set beside the raw script's.
    """

    #: (kind, started at perf_counter, seconds) of each recorded request.
    calls: list[tuple[str, float, float]] = field(default_factory=list)
    recording: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, api: Any) -> None:
        """Start timing *api*'s requests (a docker-py ``APIClient``)."""
        original = api.request

        def timed(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(method, url, *args, **kwargs)
            finally:
                if self.recording:
                    with self._lock:
                        self.calls.append((call_kind(method, url), started,
                                           time.perf_counter() - started))

        api.request = timed

    @contextmanager
    def record(self) -> Iterator[list[tuple[str, float, float]]]:
        """Record the calls made inside the block into the list it yields."""
        with self._lock:
            self.calls = []
        self.recording = True
        try:
            yield self.calls
        finally:
            self.recording = False


def summarize(
    calls: list[tuple[str, float, float]], rounds: int = 1
) -> dict[str, tuple[float, float]]:
    """Per kind of call: how many, and their total seconds, per round (a mean)."""
    out: dict[str, list[float]] = defaultdict(list)
    for kind, _, took in calls:
        out[kind].append(took)
    return {kind: (len(times) / rounds, sum(times) / rounds)
            for kind, times in sorted(out.items())}


@dataclass(frozen=True)
class Chain:
    """What every contender needs to start one spec: its tags, a run label, a workdir."""

    spec: StackSpec
    tags: Mapping[str, str]
    run: str
    workdir: Path

    @property
    def labels(self) -> dict[str, str]:
        """The label every resource of this benchmark run carries."""
        return {BENCH_LABEL: self.run}


def raw_cycle(api: Any, chain: Chain, phases: dict[str, float] | None = None,
              work: float = 0.0) -> tuple[float, float]:
    """The sequential floor: fewest low-level calls, one service after another.

    :param phases: if given, seconds spent waiting for readiness are added under ``ready``
        and the moment up ended (``perf_counter``) is put under ``up_end``.
    :param work: seconds to sleep while the stack is up (a test's own work).
    """
    name = f"bench-raw-{uuid.uuid4().hex[:10]}"
    t0 = time.perf_counter()
    net = api.create_network(name, driver="bridge", labels=chain.labels)
    ids = []
    try:
        for svc in chain.spec.start_order():
            ids.append(_raw_start(api, chain, svc, name, phases))
        t1 = time.perf_counter()
        if phases is not None:
            phases["up_end"] = t1
        time.sleep(work)
    finally:
        t2 = time.perf_counter()
        for cid in ids:
            api.remove_container(cid, force=True)
        api.remove_network(net["Id"])
    return t1 - t0, time.perf_counter() - t2


def _raw_start(api: Any, chain: Chain, svc: Any, network: str,
               phases: dict[str, float] | None) -> str:
    host_config = api.create_host_config(
        network_mode=network, init=svc.init, security_opt=["no-new-privileges"],
        port_bindings={str(p): ("127.0.0.1", None) for p in svc.published})
    created = api.create_container(
        chain.tags[svc.name], command=list(svc.command) if svc.command else None,
        environment=dict(svc.environment), labels=chain.labels, detach=True,
        ports=[(p.number, p.protocol) for p in svc.published], host_config=host_config,
        networking_config=api.create_networking_config(
            {network: api.create_endpoint_config(aliases=[svc.name])}))
    api.start(created["Id"])
    check = _first_http(svc)
    ports = api.inspect_container(created["Id"])["NetworkSettings"]["Ports"]
    started = time.perf_counter()
    _wait_http(f"http://127.0.0.1:{ports[f'{check.port}/tcp'][0]['HostPort']}{check.path}")
    if phases is not None:
        phases["ready"] = phases.get("ready", 0.0) + time.perf_counter() - started
    return str(created["Id"])


def testcontainers_cycle(chain: Chain) -> tuple[float, float]:
    """testcontainers-python by hand: a Network, containers joined under their alias."""
    # Imported late: testcontainers freezes TESTCONTAINERS_RYUK_DISABLED at import, and
    # compare.py sets it first (Ryuk's image cannot be pulled here).
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415
    from testcontainers.core.network import Network  # noqa: PLC0415

    t0 = time.perf_counter()
    net = Network(docker_network_kw={"labels": chain.labels}).create()
    started = []
    try:
        for svc in chain.spec.start_order():
            check = _first_http(svc)
            box = DockerContainer(
                chain.tags[svc.name], labels=chain.labels, network=net,
                network_aliases=[svc.name], env=dict(svc.environment),
                ports=[p.number for p in svc.published],
                command=list(svc.command) if svc.command else None)
            started.append(box.start())
            port = box.get_exposed_port(check.port)
            _wait_http(f"http://{box.get_container_host_ip()}:{port}{check.path}")
        t1 = time.perf_counter()
    finally:
        t2 = time.perf_counter()
        for box in reversed(started):
            box.stop()
        net.remove()
    return t1 - t0, time.perf_counter() - t2


def compose_file(chain: Chain) -> Path:
    """The chain as a compose file (v2.4, as docker-compose v1 reads it), labelled."""
    services: dict[str, Any] = {}
    for svc in chain.spec.services:
        services[svc.name] = {
            "image": chain.tags[svc.name], "labels": chain.labels, "init": svc.init,
            "environment": dict(svc.environment),
            "ports": [f"127.0.0.1::{p.number}" for p in svc.published],
            **({"command": list(svc.command)} if svc.command else {}),
            **({"depends_on": list(svc.depends_on)} if svc.depends_on else {}),
        }
    doc = {"version": "2.4", "services": services,
           "networks": {"default": {"labels": chain.labels}}}
    path = chain.workdir / f"compose-{chain.spec.name}.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def compose_cycle(client: docker.DockerClient, chain: Chain) -> tuple[float, float]:
    """``docker-compose up -d``, host ports through the SDK, HTTP waits, ``down -v``."""
    project = f"benchcmp{uuid.uuid4().hex[:10]}"
    base = ["docker-compose", "-p", project, "-f", str(compose_file(chain))]
    t0 = time.perf_counter()
    try:
        subprocess.run([*base, "up", "-d"], check=True, capture_output=True)
        for svc in chain.spec.start_order():
            check = _first_http(svc)
            box = client.containers.list(filters={"label": [
                f"com.docker.compose.project={project}",
                f"com.docker.compose.service={svc.name}"]})[0]
            port = box.ports[f"{check.port}/tcp"][0]["HostPort"]
            _wait_http(f"http://127.0.0.1:{port}{check.path}")
        t1 = time.perf_counter()
    finally:
        t2 = time.perf_counter()
        subprocess.run([*base, "down", "-v"], check=True, capture_output=True)
    return t1 - t0, time.perf_counter() - t2


def pytest_docker_cycle(chain: Chain) -> tuple[float, float]:
    """pytest-docker's own context manager around ``docker-compose`` v1."""
    from pytest_docker.plugin import get_docker_services  # noqa: PLC0415 (optional)

    project = f"benchcmp{uuid.uuid4().hex[:10]}"
    t0 = time.perf_counter()
    with get_docker_services("docker-compose", str(compose_file(chain)), project,
                             ["up -d"], ["down -v"]) as services:
        for svc in chain.spec.start_order():
            check = _first_http(svc)
            url = (f"http://127.0.0.1:{services.port_for(svc.name, check.port)}"
                   f"{check.path}")
            services.wait_until_responsive(_responds(url), timeout=60, pause=0.02)
        t1 = time.perf_counter()
    return t1 - t0, time.perf_counter() - t1


def _responds(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            _wait_http(url, timeout=0)
        except OSError:
            return False
        return True

    return check
