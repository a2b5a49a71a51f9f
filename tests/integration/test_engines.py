"""Several engines: a ``pytest -n 2`` run over two engines puts each worker on its own.

The second engine is a private ``dockerd`` started for this module (see
:mod:`dockerd`). Its images come from the main engine by ``docker save | load`` (the base
is never bootstrapped twice), and a run over both engines must pass, show each worker's
stacks on its engine in ``envkit ps``, and leave nothing on either; killed with SIGKILL,
its watchdogs must clean both engines within 30 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import dockerd
import pytest

from envkit import labels, reaper
from envkit._engine import connect
from envkit.inventory import list_resources, list_stacks
from envkit.session import Envkit

CLEAN_WITHIN = 30.0
# No sweep (it would judge other tests' planted stacks on the shared engine) and no warm
# pool (spares would only add stacks to start and remove on a busy machine).
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
          "-q", "--envkit-no-sweep", "--envkit-pool", "0"]

#: Each test starts a demo stack, proves its services talk, says so, and holds it until
#: the outer test has looked (a ``go`` file) so both workers' stacks are up at once.
HOLDING_TESTS = """
import json, os, time, urllib.request
from pathlib import Path

HERE = Path(__file__).parent

def _hold(envkit_stack_factory):
    stack = envkit_stack_factory("demo")
    with urllib.request.urlopen(stack.url("client", 8080), timeout=10) as r:
        assert json.load(r)["upstream"]["ok"] is True
    (HERE / f"up-{os.environ['PYTEST_XDIST_WORKER']}").write_text(stack.id)
    deadline = time.monotonic() + 120
    while not (HERE / "go").exists():
        assert time.monotonic() < deadline, "never told to go on"
        time.sleep(0.1)

def test_one(envkit_stack_factory):
    _hold(envkit_stack_factory)

def test_two(envkit_stack_factory):
    _hold(envkit_stack_factory)
"""


@pytest.fixture(scope="session")
def second_engine() -> Iterator[dockerd.Dockerd]:
    """A private dockerd for this worker's session; skipped only when it cannot start."""
    with dockerd.running(index=dockerd.worker_index()) as engine:
        yield engine


@pytest.fixture
def engines(
    second_engine: dockerd.Dockerd, envkit_session: Envkit
) -> dict[str, docker.DockerClient]:
    """URL -> docker client of both engines; the main engine's base is made sure of first.

    The main engine needs the base anyway; having it there first is what lets the second
    engine's copy be a transfer.
    """
    envkit_session.images.ensure_base()
    main = envkit_session.engine
    second = connect({"DOCKER_HOST": second_engine.url})
    return {main.docker_host: main.client, second.docker_host: second.client}


def _start(folder: Path, session: str, hosts: str) -> subprocess.Popen[bytes]:
    folder.mkdir()
    (folder / "test_it.py").write_text(textwrap.dedent(HOLDING_TESTS))
    env = dict(os.environ, ENVKIT_SESSION=session, ENVKIT_DOCKER_HOSTS=hosts,
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("DOCKER_HOST", None)
    return subprocess.Popen([*PYTEST, "-n", "2", str(folder)], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait(condition: Callable[[], object], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _both_up(folder: Path, run: subprocess.Popen[bytes]) -> bool:
    if run.poll() is not None:
        out = run.stdout.read().decode() if run.stdout else ""
        raise AssertionError(f"the run ended before both stacks were up:\n{out}")
    return all((folder / f"up-gw{n}").exists() for n in (0, 1))


def _ps(hosts: str) -> list[dict[str, object]]:
    env = dict(os.environ, ENVKIT_DOCKER_HOSTS=hosts)
    done = subprocess.run([sys.executable, "-m", "envkit.cli", "ps", "--json"], env=env,
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found: list[dict[str, object]] = json.loads(done.stdout)
    return found


def _left(engines: dict[str, docker.DockerClient], session: str) -> dict[str, list[str]]:
    return {url: found for url, client in engines.items()
            if (found := list_resources(client, session=session))}


@pytest.fixture
def sessions(engines: dict[str, docker.DockerClient]) -> Iterator[list[str]]:
    """Sessions whose leftovers are removed from both engines should an assertion fail."""
    made: list[str] = []
    yield made
    for url, client in engines.items():
        engine = connect({"DOCKER_HOST": url})
        for session in made:
            reaper.remove_stacks(engine, list_stacks(client, selector=labels.selector(
                session=session)))
        del engine


def _kill(run: subprocess.Popen[bytes]) -> None:
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)


def _clean_run(engines: dict[str, docker.DockerClient], session: str, folder: Path) -> None:
    """A run that passes: each worker's stacks on its own engine, nothing left after."""
    main_url, second_url = engines
    hosts = f"{main_url},{second_url}"
    run = _start(folder, session, hosts)
    try:
        up = _wait(lambda: _both_up(folder, run), 240, "both workers' stacks")
        print(f"run over two engines: both stacks up {up:.1f}s after the start")
        listed = [s for s in _ps(hosts) if s["session"] == session]
        where = {str(s["worker"]): s["engine"] for s in listed}
        assert where == {"gw0": main_url, "gw1": second_url}, listed
        (folder / "go").touch()
        out, _ = run.communicate(timeout=120)
    finally:
        _kill(run)
    assert run.returncode == 0, out.decode()
    assert b"2 passed" in out, out.decode()
    assert _left(engines, session) == {}


def _killed_run(engines: dict[str, docker.DockerClient], session: str, folder: Path) -> float:
    """A run killed with SIGKILL while both engines hold its stacks; seconds to clean."""
    main_url, second_url = engines
    run = _start(folder, session, f"{main_url},{second_url}")
    try:
        up = _wait(lambda: _both_up(folder, run), 240, "both workers' stacks")
        print(f"run to be killed: both stacks up {up:.1f}s after the start")
        on = {url for url, client in engines.items() if list_resources(client, session=session)}
        assert on == set(engines), f"stacks on {on}, expected on both engines"
        os.killpg(run.pid, signal.SIGKILL)
        return _wait(lambda: not _left(engines, session), CLEAN_WITHIN,
                     f"session {session} to be gone from both engines after SIGKILL")
    finally:
        _kill(run)


def test_runs_over_two_engines_put_each_worker_on_its_own_and_leave_both_clean(
    engines: dict[str, docker.DockerClient], sessions: list[str], tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    """A passing run, then a run killed with SIGKILL (one test: one second dockerd).

    The second engine starts empty, so the first run also proves the copy: its base has
    the main engine's image ID (a bootstrap would give another).
    """
    clean, killed = f"two{uuid.uuid4().hex[:8]}", f"kill{uuid.uuid4().hex[:8]}"
    sessions.extend([clean, killed])
    _clean_run(engines, clean, tmp_path / "clean")
    bases = [{i.id for i in client.images.list(name="envkit/base")}
             for client in engines.values()]
    assert bases[1] and bases[1] <= bases[0], bases
    cleaned = _killed_run(engines, killed, tmp_path / "killed")
    record_property("sigkill_clean_seconds", round(cleaned, 2))
    print(f"SIGKILL over two engines: both clean {cleaned:.2f}s after the signal")
