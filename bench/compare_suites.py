"""Suites of K tests for ``compare.py``: a fresh stack per test, or one stack per worker.

Each contender runs the same tests its own way: envkit through its fixtures under
pytest-xdist, testcontainers-python written by hand in a fixture under pytest-xdist,
pytest-docker's ``docker_services`` under pytest-xdist, and the raw SDK floor in threads
at the same concurrency (no pytest). A pytest run of the same tests with no stack at all
shows what pytest and xdist cost by themselves. Each test appends the seconds it waited
for its stack to the file named by ``BENCH_TAKES``.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench_suite import run_pytest
from compare_stacks import Chain, compose_file, raw_cycle

TOOK = """
import os
import time

import pytest


def took(seconds):
    with open(os.environ["BENCH_TAKES"], "a") as out:
        out.write(f"{{seconds}}\\n")
"""

ENVKIT = TOOK + """

@pytest.mark.parametrize("n", range({tests}))
def test_fresh(envkit_stack_factory, n):
    started = time.perf_counter()
    envkit_stack_factory("demo")
    took(time.perf_counter() - started)
    time.sleep({work})


@pytest.mark.parametrize("n", range({tests}))
def test_shared(envkit_stack, n):
    time.sleep({work})
"""

# The chain's services as (alias, command, environment, port, health path) literals.
WAIT = """
import urllib.request

SERVICES = {services!r}
LABELS = {{"envkit.bench": os.environ["BENCH_RUN"]}}


def wait_http(url):
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.02)
"""

TESTCONTAINERS = TOOK + WAIT + """
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network


@pytest.fixture(scope="{scope}")
def chain():
    started = time.perf_counter()
    net = Network(docker_network_kw={{"labels": LABELS}}).create()
    boxes = []
    try:
        for alias, command, env, port, path in SERVICES:
            box = DockerContainer(os.environ["BENCH_IMAGE"], labels=LABELS, network=net,
                                  network_aliases=[alias], env=env, ports=[port],
                                  command=command)
            boxes.append(box.start())
            wait_http(f"http://{{box.get_container_host_ip()}}:{{box.get_exposed_port(port)}}"
                      f"{{path}}")
        took(time.perf_counter() - started)
        yield boxes
    finally:
        for box in reversed(boxes):
            box.stop()
        net.remove()


@pytest.mark.parametrize("n", range({tests}))
def test_chain(chain, n):
    time.sleep({work})
"""

PYTEST_DOCKER = TOOK + WAIT + """
import uuid

from pytest_docker.plugin import containers_scope


@pytest.fixture(scope=containers_scope)
def docker_compose_command():
    return "docker-compose"


@pytest.fixture(scope=containers_scope)
def docker_compose_file():
    return os.environ["BENCH_COMPOSE"]


@pytest.fixture(scope=containers_scope)
def docker_compose_project_name():
    return f"benchcmp{{uuid.uuid4().hex[:10]}}"


@pytest.fixture(scope=containers_scope)
def docker_setup():
    return ["up -d"]  # docker-compose v1 has no --wait (pytest-docker's default)


@pytest.fixture(scope=containers_scope)
def chain(request):
    started = time.perf_counter()
    services = request.getfixturevalue("docker_services")
    for alias, _, _, port, path in SERVICES:
        wait_http(f"http://127.0.0.1:{{services.port_for(alias, port)}}{{path}}")
    took(time.perf_counter() - started)
    return services


@pytest.mark.parametrize("n", range({tests}))
def test_chain(chain, n):
    time.sleep({work})
"""

NOTHING = TOOK + """

@pytest.mark.parametrize("n", range({tests}))
def test_nothing(n):
    time.sleep({work})
"""


@dataclass(frozen=True)
class Suite:
    """One suite shape: *tests* tests of *work* seconds each, fresh or shared stacks."""

    tests: int
    work: float
    fresh: bool  # a fresh stack per test; otherwise one per worker
    workers: int


@dataclass
class SuiteRunner:
    """Runs each contender's suite in its own folder and collects stack-take times.

    :param chain: the two-service chain (its tags, the run label, a work folder).
    :param api: a low-level docker-py client for the raw floor.
    :param pool_option: envkit's warm-pool option (e.g. ``--envkit-pool``), if it exists.
    :param sessions: every ENVKIT_SESSION used is appended (compare.py sweeps them).
    """

    chain: Chain
    api: Any
    pool_option: str | None
    sessions: list[str]

    def __post_init__(self) -> None:
        #: Seconds each test waited for its stack, per contender and suite.
        self.takes: dict[tuple[str, Suite], list[float]] = {}

    def contenders(self) -> dict[str, Callable[[Suite], float]]:
        """Every contender that can run here, by name."""
        found: dict[str, Callable[[Suite], float]] = {
            "raw": self.raw, "testcontainers": self.testcontainers,
            "pytest-docker": self.pytest_docker, "envkit": self.envkit,
            "pytest alone": self.nothing,
        }
        if self.pool_option:
            found["envkit pool"] = self.envkit_pool
        return found

    def raw(self, suite: Suite) -> float:
        """The raw SDK floor: the same stack lifecycles in *workers* threads."""
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=suite.workers) as pool:
            if suite.fresh:
                jobs = [pool.submit(raw_cycle, self.api, self.chain, work=suite.work)
                        for _ in range(suite.tests)]
            else:
                shares = [len(range(i, suite.tests, suite.workers))
                          for i in range(suite.workers)]
                jobs = [pool.submit(raw_cycle, self.api, self.chain, work=share * suite.work)
                        for share in shares if share]
            for job in jobs:
                job.result()
        return time.perf_counter() - started

    def envkit(self, suite: Suite, extra: tuple[str, ...] = (), name: str = "envkit") -> float:
        """Run envkit's fixtures: ``envkit_stack_factory`` per test or ``envkit_stack``."""
        session = f"bench{uuid.uuid4().hex[:8]}"
        self.sessions.append(session)
        chosen = "test_fresh" if suite.fresh else "test_shared"
        if self.pool_option and not extra:
            extra = (self.pool_option, "0")  # off, whatever the checkout's default
        return self._pytest(name, ENVKIT, suite, [
            "--envkit-no-sweep", "--envkit-stack", "demo", "-k", chosen, *extra,
        ], {"ENVKIT_SESSION": session})

    def envkit_pool(self, suite: Suite) -> float:
        """Run envkit with its warm pool on: one spare per spec (the default is 0, off)."""
        assert self.pool_option is not None
        return self.envkit(suite, (self.pool_option, "1"), name="envkit pool")

    def testcontainers(self, suite: Suite) -> float:
        """Run testcontainers by hand in a fixture: function scope, or session per worker."""
        scope = "function" if suite.fresh else "session"
        return self._pytest("testcontainers", TESTCONTAINERS, suite, [],
                            {"TESTCONTAINERS_RYUK_DISABLED": "true"}, scope=scope)

    def pytest_docker(self, suite: Suite) -> float:
        """pytest-docker's ``docker_services`` with ``--container-scope``."""
        scope = "function" if suite.fresh else "session"
        return self._pytest("pytest-docker", PYTEST_DOCKER, suite,
                            ["--container-scope", scope],
                            {"BENCH_COMPOSE": str(compose_file(self.chain))})

    def nothing(self, suite: Suite) -> float:
        """The same tests with no stack: what pytest and xdist cost by themselves."""
        return self._pytest("nothing", NOTHING, suite, [], {})

    def _pytest(self, name: str, template: str, suite: Suite, args: list[str],
                env: dict[str, str], *, scope: str = "function") -> float:
        folder = self.chain.workdir / f"suite-{name.replace(' ', '-')}"
        folder.mkdir(exist_ok=True)
        (folder / "test_suite.py").write_text(template.format(
            tests=suite.tests, work=suite.work, scope=scope, services=self._services()))
        takes = folder / "takes.txt"
        takes.unlink(missing_ok=True)
        full_env = {**os.environ, **env, "BENCH_TAKES": str(takes),
                    "BENCH_RUN": self.chain.run, "BENCH_IMAGE": self.chain.tags["web"]}
        took = run_pytest(folder, ["-n", str(suite.workers), *args], full_env)
        if takes.exists():
            self.takes.setdefault((name, suite), []).extend(
                float(line) for line in takes.read_text().split())
        return took

    def _services(self) -> list[tuple[str, list[str] | None, dict[str, str], int, str]]:
        out = []
        for svc in self.chain.spec.start_order():
            check = next(c for c in svc.ready if hasattr(c, "path"))
            out.append((svc.name, list(svc.command) if svc.command else None,
                        dict(svc.environment), int(check.port), str(check.path)))
        return out

    def median_take(self, name: str, suite: Suite) -> float | None:
        """Median seconds a test of *suite* waited for its stack, if any was recorded."""
        got = self.takes.get((name, suite))
        return statistics.median(got) if got else None
