"""Nothing left behind: a test run killed mid-flight leaves its engine clean by itself.

Each scenario runs a real ``pytest -n 2`` in its own process group with a known
``ENVKIT_SESSION``, waits until both workers' stacks are up, signals the whole group the
way a terminal or CI runner would, and then only watches the engine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from envkit import _watchdog, labels, reaper
from envkit.inventory import list_resources, list_stacks
from envkit.session import Envkit

# No session-start sweep: these runs are about watchdogs and finalizers, and a sweep
# would remove other tests' planted dead-owner stacks from under them.
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--envkit-no-sweep"]
CLEAN_WITHIN = 30.0

SLOW_TESTS = """
import time

def test_one(envkit_stack_factory):
    envkit_stack_factory("demo")
    time.sleep(120)

def test_two(envkit_stack_factory):
    envkit_stack_factory("demo")
    time.sleep(120)
"""

QUICK_TESTS = """
import json, urllib.request

def _ok(stack):
    with urllib.request.urlopen(stack.url("client", 8080), timeout=5) as r:
        assert json.load(r)["upstream"]["ok"] is True

def test_one(envkit_stack_factory):
    _ok(envkit_stack_factory("demo"))

def test_two(envkit_stack_factory):
    _ok(envkit_stack_factory("demo"))
"""


def _running(client: docker.DockerClient, session: str) -> int:
    return len(client.api.containers(filters=labels.selector(session=session)))


def _start_run(tmp_path: Path, name: str, body: str, session: str) -> subprocess.Popen[bytes]:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "test_it.py").write_text(textwrap.dedent(body))
    env = dict(os.environ, ENVKIT_SESSION=session, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.Popen(
        [*PYTEST, "-n", "2", "-p", "no:randomly", str(folder)], cwd=folder, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _wait(condition: object, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def engine(envkit_session: Envkit) -> docker.DockerClient:
    return envkit_session.engine.client


@pytest.fixture
def bystander(engine: docker.DockerClient, envkit_session: Envkit) -> Iterator[str]:
    """An unlabelled container and network nobody may touch (on the run's Debian base)."""
    name = f"bystander-{uuid.uuid4().hex[:8]}"
    network = engine.networks.create(name)
    base = envkit_session.images.ensure_base()
    container = engine.containers.run(base, ["sleep", "600"], name=name, detach=True,
                                      network=name)
    yield name
    container.remove(force=True)
    network.remove()


@pytest.fixture
def cleanup_sessions(envkit_session: Envkit) -> Iterator[list[str]]:
    """Sessions whose leftovers are removed after the test, should an assertion fail."""
    sessions: list[str] = []
    yield sessions
    for session in sessions:
        stacks = list_stacks(envkit_session.engine.client,
                                    selector=labels.selector(session=session))
        reaper.remove_stacks(envkit_session.engine, stacks)


def _reaper_log() -> str:
    path = reaper.log_path(os.environ)
    return path.read_text() if path.exists() else ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM, "SIGINTx2"],
                         ids=["SIGKILL", "SIGINT", "SIGTERM", "SIGINTx2"])
def test_killed_run_leaves_nothing_behind(
    sig: signal.Signals | str, tmp_path: Path, engine: docker.DockerClient, bystander: str,
    cleanup_sessions: list[str],
) -> None:
    victim, other = f"victim{uuid.uuid4().hex[:6]}", f"other{uuid.uuid4().hex[:6]}"
    cleanup_sessions.extend([victim, other])
    run = _start_run(tmp_path, "victim", SLOW_TESTS, victim)
    # The second session shares the engine; only with SIGKILL, to keep the suite short.
    second = _start_run(tmp_path, "other", QUICK_TESTS, other) if sig is signal.SIGKILL else None
    try:
        # At least: each worker's spare (warm pool) may come up beside its stack.
        _wait(lambda: _running(engine, victim) >= 4, 90, "both workers' stacks to be up")
        if sig == "SIGINTx2":
            # Ctrl-C twice: the second interrupts the teardown; the watchdogs finish it.
            os.killpg(run.pid, signal.SIGINT)
            time.sleep(0.3)
            sig = signal.SIGINT
            os.killpg(run.pid, sig)
            run.communicate(timeout=CLEAN_WITHIN)
        else:
            os.killpg(run.pid, sig)
        cleaned = _wait(lambda: not list_resources(engine, session=victim), CLEAN_WITHIN,
                        f"session {victim} to be gone: {list_resources(engine, session=victim)}")
        print(f"{sig.name}: engine clean {cleaned:.2f}s after the signal")
        if second is not None:
            out, _ = second.communicate(timeout=90)
            assert second.returncode == 0, out.decode()
            assert b"2 passed" in out
        if sig is not signal.SIGKILL and run.returncode is None:
            # Ctrl-C and SIGTERM unwind: the run's own finalizers remove its stacks, and the
            # watchdogs, waking up to an owner gone, find nothing left to log.
            out, _ = run.communicate(timeout=CLEAN_WITHIN)
            assert run.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
            time.sleep(1.0)
            assert victim not in _reaper_log(), "the reaper, not the run, removed stacks"
    finally:
        _kill_group(run)
        if second is not None:
            _kill_group(second)
    assert engine.containers.get(bystander).status == "running"
    assert engine.networks.get(bystander).name == bystander


def test_watchdog_with_nothing_to_reap_exits_quietly() -> None:
    """After a normal teardown the owner's death finds nothing: exit 0, touch nothing.

    (Its spawn cost is measured by ``bench/bench_reaper.py``, not asserted here.)
    """
    owner = f"{labels.owner_id()}-nothing"
    dog = _watchdog.spawn(owner, docker_host="unix:///var/run/docker.sock")
    assert dog.process.poll() is None  # alive while the owner's pipe end is open
    os.close(dog.write_fd)  # the owner "dies"
    assert dog.process.wait(timeout=20) == 0
