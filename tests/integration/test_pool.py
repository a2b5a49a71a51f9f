"""The warm pool on the real engine: spares are fresh stacks, counted, and never left.

A spare must be indistinguishable from a stack started when asked for: its own
containers and network (never one a test used), its ports published and reachable, its
spec equal to what was asked. At the end of a run, and when a run with spares and
pending background removals is SIGKILLed, nothing of it remains.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from envkit import cli, labels, reaper
from envkit.demo import demo
from envkit.inventory import list_resources, list_stacks
from envkit.runtime import Stack, StackState
from envkit.session import Envkit

CLEAN_WITHIN = 30.0
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q",
          "--envkit-no-sweep"]


def _upstream_ok(stack: Stack) -> bool:
    with urllib.request.urlopen(stack.url("client", 8080), timeout=5) as answer:
        return bool(json.load(answer)["upstream"]["ok"])


@pytest.fixture
def pooled_kit(envkit_session: Envkit) -> Iterator[Envkit]:
    """A kit of its own (own worker id) with a pool of one; ends with nothing of it left."""
    kit = Envkit(settings=envkit_session.settings, environ=os.environ,
                 session=envkit_session.session, worker=f"pool{uuid.uuid4().hex[:6]}", pool=1)
    try:
        yield kit
    finally:
        assert kit.close_pool(60) == []
        assert kit.finish_removals(60) == []
        found = list_stacks(kit.engine.client,
                            selector=labels.selector(session=kit.session, worker=kit.worker))
        assert found == [], f"left behind: {[s.stack for s in found]}"


def _ready_spare(kit: Envkit, spec_key: str) -> None:
    pool = kit._warm_pool()
    assert pool is not None
    deadline = time.monotonic() + 90
    while pool.ready(spec_key) < 1:
        assert time.monotonic() < deadline, f"no spare after 90 s: {pool.refused}"
        time.sleep(0.05)


def test_a_spare_is_a_fresh_started_stack_of_an_equal_spec(
    pooled_kit: Envkit, capsys: pytest.CaptureFixture[str],
) -> None:
    assert pooled_kit.take(demo(), key="demo", source=demo) is None  # none yet: starts one
    first = pooled_kit.stack(demo()).up()
    _ready_spare(pooled_kit, "demo")
    # `envkit ps` lists the spare, marked pooled.
    assert cli.main(["ps", "--json"]) == 0
    listed = {s["stack"]: s for s in json.loads(capsys.readouterr().out)}
    spares = [s for s in listed.values() if s["pooled"] and s["worker"] == pooled_kit.worker]
    assert len(spares) == 1 and spares[0]["state"] == "running"
    # Asking for another spec gets no spare (and the spare of demo stays).
    other = replace(demo(), name="demo2")
    assert pooled_kit.take(other, key="demo2", source=lambda: other) is None
    spare = pooled_kit.take(demo(), key="demo", source=demo)
    assert spare is not None and spare.id == spares[0]["stack"] and spare.id != first.id
    assert spare.state is StackState.UP and spare.spec == demo() and spare in pooled_kit.made
    assert _upstream_ok(spare) and _upstream_ok(first)
    host, port = spare.endpoint("client", 8080)
    assert host == "127.0.0.1" and (host, port) != first.endpoint("client", 8080)
    # Its containers are its own: not the first stack's, on its own network.
    ids = {spare.container(s).id for s in ("web", "client")}
    assert ids.isdisjoint({first.container(s).id for s in ("web", "client")})
    info = spare.container("web").attrs
    assert list(info["NetworkSettings"]["Networks"]) == [spare.network]
    assert info["Config"]["Labels"][labels.POOLED] == "true"
    pooled_kit.remove_later(first)
    pooled_kit.remove_later(spare)


def test_a_stack_a_test_used_never_comes_back(pooled_kit: Envkit) -> None:
    pooled_kit.take(demo(), key="demo", source=demo)
    seen: set[str] = set()
    for _ in range(3):
        _ready_spare(pooled_kit, "demo")
        stack = pooled_kit.take(demo(), key="demo", source=demo)
        assert stack is not None and stack.id not in seen
        seen.add(stack.id)
        pooled_kit.remove_later(stack)


def test_spares_across_specs_stay_within_the_bound(
    envkit_session: Envkit, capsys: pytest.CaptureFixture[str],
) -> None:
    """With room for one spare, asking for another spec retires the first's spare."""
    kit = Envkit(settings=envkit_session.settings, environ=os.environ,
                 session=envkit_session.session, worker=f"bound{uuid.uuid4().hex[:6]}",
                 pool=1, max_spares=1)
    other = replace(demo(), name="demo2")
    selector = labels.selector(session=kit.session, worker=kit.worker)
    try:
        assert kit.take(demo(), key="demo", source=demo) is None
        _ready_spare(kit, "demo")
        assert cli.main(["ps", "--json"]) == 0
        listed = [s for s in json.loads(capsys.readouterr().out)
                  if s["worker"] == kit.worker and s["pooled"]]
        assert len(listed) == 1, listed  # `envkit ps` counts the spare
        first = listed[0]["stack"]
        assert kit.take(other, key="demo2", source=lambda: other) is None
        assert kit.finish_removals(60) == []  # the retired spare went in the background
        _ready_spare(kit, "demo2")
        pooled = [s for s in list_stacks(kit.engine.client, selector=selector) if s.pooled]
        assert len(pooled) == 1 and pooled[0].stack != first, [s.stack for s in pooled]
        spare = kit.take(other, key="demo2", source=lambda: other)
        assert spare is not None and spare.id == pooled[0].stack and spare.spec == other
        kit.remove_later(spare)
    finally:
        assert kit.close_pool(60) == []
        assert kit.finish_removals(60) == []
        left = list_stacks(kit.engine.client, selector=selector)
        assert left == [], f"left behind: {[s.stack for s in left]}"


SUITE = """
import json, pathlib, time, urllib.request

import pytest

@pytest.mark.parametrize("n", range(6))
def test_fresh_stack(envkit_stack_factory, n):
    stack = envkit_stack_factory("demo")
    web = stack.container("web")
    # A fresh stack: no test wrote here before.
    assert web.exec_run(["test", "-e", "/tmp/used"]).exit_code == 1
    web.exec_run(["touch", "/tmp/used"])
    with urllib.request.urlopen(stack.url("client", 8080), timeout=5) as r:
        assert json.load(r)["upstream"]["ok"] is True
    pathlib.Path("ids").joinpath(stack.id).write_text(
        web.labels.get("envkit.pooled", "false"))
    time.sleep(1)
"""


def test_a_suite_takes_spares_and_ends_clean(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, envkit_session: Envkit,
) -> None:
    session = f"pool{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ENVKIT_SESSION", session)
    pytester.makepyfile(SUITE)
    (pytester.path / "ids").mkdir()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2",
                                           "--envkit-no-sweep", "--envkit-pool", "1")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out
    assert "6 passed" in out and "left" not in out and "removal failed" not in out
    taken = {p.name: p.read_text() for p in (pytester.path / "ids").iterdir()}
    assert len(taken) == 6  # six distinct stacks
    assert list(taken.values()).count("true") >= 2, taken  # the later tests got spares
    assert list_resources(envkit_session.engine.client, session=session) == []


MANY_SPECS = """
import json, pathlib
from dataclasses import replace

import pytest

from envkit.demo import demo

@pytest.mark.parametrize("n", range(8))
def test_many_specs(envkit_session, envkit_stack_factory, n):
    spec = replace(demo(), name=f"spec{n % 4}")  # four specs in turn
    envkit_stack_factory(spec)
    held = envkit_session._warm_pool().held()
    pathlib.Path("held").joinpath(str(n)).write_text(json.dumps(sum(held.values())))
"""


def test_a_suite_of_many_specs_holds_spares_within_the_bound_and_ends_clean(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, envkit_session: Envkit,
) -> None:
    session = f"poolb{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ENVKIT_SESSION", session)
    pytester.makepyfile(MANY_SPECS)
    (pytester.path / "held").mkdir()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly",
                                           "--envkit-no-sweep", "--envkit-pool", "1",
                                           "--envkit-pool-max-spares", "1")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out
    assert "8 passed" in out and "left" not in out and "removal failed" not in out
    held = [json.loads(p.read_text()) for p in (pytester.path / "held").iterdir()]
    assert len(held) == 8 and max(held) == 1, held  # four specs, never more than one spare
    assert list_resources(envkit_session.engine.client, session=session) == []


STUBBORN_RUN = """
import pathlib, time

import pytest

from envkit.demo import TESTSVC
from envkit.spec import ServiceSpec, StackSpec

# Ignores SIGTERM and may take 30 s to stop: its background removal stays pending.
STUBBORN = StackSpec(name="stubborn", services=[ServiceSpec(
    name="svc", image=TESTSVC, command=["sh", "-c", "trap '' TERM; sleep 600"],
    stop_timeout=30)])

@pytest.mark.parametrize("n", range(8))
def test_it(envkit_stack_factory, n):
    stubborn = envkit_stack_factory(STUBBORN)
    envkit_stack_factory("demo")
    pathlib.Path("done").joinpath(str(n)).write_text(stubborn.id)
    time.sleep(0.5 if n < 4 else 120)
"""


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_sigkill_with_spares_and_pending_removals_leaves_nothing(
    tmp_path: Path, envkit_session: Envkit,
) -> None:
    engine = envkit_session.engine
    client: docker.DockerClient = engine.client
    session = f"poolkill{uuid.uuid4().hex[:6]}"
    (tmp_path / "test_it.py").write_text(textwrap.dedent(STUBBORN_RUN))
    (tmp_path / "done").mkdir()
    env = dict(os.environ, ENVKIT_SESSION=session, PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.Popen([*PYTEST, "-n", "2", "--envkit-pool", "1", str(tmp_path)],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, start_new_session=True)

    def spares_and_pending() -> bool:
        found = list_stacks(client, selector=labels.selector(session=session))
        # Tests 0-3 end at once: their stubborn stacks are handed over and go down slowly.
        ended = {p.read_text() for p in (tmp_path / "done").iterdir()
                 if int(p.name) < 4 and time.time() - p.stat().st_mtime > 1.5}
        pending = ended & {s.stack for s in found}
        return any(s.pooled for s in found) and len(pending) >= 2

    try:
        deadline = time.monotonic() + 180
        while not spares_and_pending():
            assert run.poll() is None, run.communicate()[0].decode()
            assert time.monotonic() < deadline, "never saw spares and pending removals"
            time.sleep(0.1)
        before = list_stacks(client, selector=labels.selector(session=session))
        os.killpg(run.pid, signal.SIGKILL)
        killed = time.monotonic()
        while list_resources(client, session=session):
            assert time.monotonic() - killed < CLEAN_WITHIN, (
                f"left after {CLEAN_WITHIN:.0f} s: {list_resources(client, session=session)}")
            time.sleep(0.1)
        took = time.monotonic() - killed
        print(f"SIGKILL with {sum(s.pooled for s in before)} pooled of {len(before)} stacks: "
              f"engine clean {took:.2f} s after the signal")
    finally:
        _kill(run)
        reaper.remove_stacks(engine, list_stacks(client, selector=labels.selector(
            session=session)))
