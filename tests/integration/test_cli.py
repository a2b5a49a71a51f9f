"""The ``envkit`` console script against the real engine: ps, down, gc, images, doctor.

Stacks are planted by hand where a test needs an owner in a given state (dead, alive,
elsewhere, detached): a labelled ``sleep`` container and network are all ``gc`` sees.
Only envkit-labelled resources may ever go; every test keeps an unlabelled pair around
and checks it survived.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import docker
import pytest

from envkit import labels
from envkit.demo import TESTSVC
from envkit.inventory import list_stacks
from envkit.reaper import remove_stacks
from envkit.session import Envkit

ENVKIT = str(Path(sys.executable).with_name("envkit"))
HERE = labels.owner_namespace()
#: A PID namespace this host does not have: a runner in a container sharing our hostname.
ELSEWHERE = "00000000-0000-0000-0000-000000000000/4026530000"


def run(*argv: str, session: str | None = None, cwd: Path | None = None,
        **env: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, **env)
    if session:
        environ["ENVKIT_SESSION"] = session
    return subprocess.run([ENVKIT, *argv], capture_output=True, text=True, env=environ,
                          timeout=300, check=False, cwd=cwd)


_beyond = itertools.count(1)


def dead_pid() -> int:
    """A PID no process can have, now or later: above the kernel's ``pid_max``.

    The PID of a process that just exited is reused within seconds on a busy machine
    (pid_max is 32768 here), by a new process or, worse, while a watchdog is still
    reaping the stacks of the previous owner of that PID.
    """
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    return pid_max + next(_beyond)


class Planter:
    """Creates labelled and unlabelled resources, and removes all of them afterwards."""

    def __init__(self, kit: Envkit) -> None:
        self.kit = kit
        self.client: docker.DockerClient = kit.engine.client
        #: The run's Debian base: an image with ``sleep`` that the suite builds anyway.
        self.base = kit.images.ensure_base()
        self.tag = uuid.uuid4().hex[:8]
        self.session = f"plant{self.tag}"
        self.stacks: list[str] = []
        self.strangers: list[str] = []

    def stack(self, name: str, *, owner: str, age: timedelta = timedelta(seconds=5),
              detached: bool = False, start: str | None = None,
              namespace: str | None = HERE) -> str:
        made = labels.Ownership(
            session=self.session, worker="plant", stack=f"{self.session}-{name}", owner=owner,
            created=(datetime.now(timezone.utc) - age).replace(microsecond=0).isoformat(),
            detached=detached, owner_start=start, owner_ns=namespace)
        self.client.networks.create(f"envkit-{made.stack}", labels=made.stack_labels())
        self.client.containers.run(self.base, ["sleep", "600"], detach=True,
                                   name=f"envkit-{made.stack}-svc",
                                   labels=made.service_labels("svc"))
        self.stacks.append(made.stack)
        return made.stack

    def stranger(self) -> str:
        name = f"stranger-{self.tag}-{len(self.strangers)}"
        self.client.networks.create(name)
        self.client.containers.run(self.base, ["sleep", "600"], detach=True, name=name,
                                   network=name)
        self.strangers.append(name)
        return name

    def present(self) -> set[str]:
        return {s.stack for s in list_stacks(self.client,
                                             selector=labels.selector(session=self.session))}

    def strangers_alive(self) -> bool:
        return all(self.client.containers.get(n).status == "running"
                   and self.client.networks.get(n).name == n for n in self.strangers)

    def cleanup(self) -> None:
        remove_stacks(self.kit.engine, list_stacks(
            self.client, selector=labels.selector(session=self.session)))
        for name in self.strangers:
            self.client.containers.get(name).remove(force=True)
            self.client.networks.get(name).remove()


@pytest.fixture
def plant(envkit_session: Envkit) -> Iterator[Planter]:
    planter = Planter(envkit_session)
    yield planter
    planter.cleanup()


def test_up_ps_down_by_stack_and_session(plant: Planter) -> None:
    first, second = f"cli{plant.tag}a", f"cli{plant.tag}b"
    plant.stranger()
    try:
        up = run("up", "--detach", "--json", "--stack", "demo", session=first)
        assert up.returncode == 0, up.stderr
        stack_a = json.loads(up.stdout)["stack"]
        assert run("up", "--detach", "--stack", "demo", session=second).returncode == 0
        listing = {s["stack"]: s for s in json.loads(run("ps", "--json").stdout)}
        row = listing[stack_a]
        assert (row["session"], row["worker"], row["state"], row["detached"]) == (
            first, "cli", "running", True)
        assert row["owner"].startswith(f"{socket.gethostname()}:")
        assert any(e.startswith("web 8080/tcp -> 127.0.0.1:") for e in
                   [f"{c['service']} {e}" for c in row["containers"] for e in c["endpoints"]])
        plain = run("ps")
        assert plain.returncode == 0 and "STACK" in plain.stdout and stack_a in plain.stdout
        assert "(detached)" in plain.stdout
        assert run("down", "--session", first).returncode == 0
        remaining = {s["stack"] for s in json.loads(run("ps", "--json").stdout)}
        assert stack_a not in remaining and f"{second}-cli-demo" in remaining
        assert run("down", f"{second}-cli-demo").returncode == 0
        again = run("down", f"{second}-cli-demo")
        assert again.returncode == 1 and "fix:" in again.stderr
        assert run("down", "--session", second).returncode == 1
        assert plant.strangers_alive()
    finally:
        for session in (first, second):
            run("down", "--session", session)


@pytest.mark.engine_exclusive
def test_gc_removes_dead_owners_only(plant: Planter) -> None:
    """``gc`` judges every stack on the engine, so it runs alone (``engine_exclusive``).

    Run beside other tests it would race their sweeps for the planted dead stacks, and
    remove their own planted ones. The age limit, which removes anyone's stacks however
    alive, is checked with ``--dry-run`` only, so even an engine shared with other runs
    loses nothing it would miss.
    """
    host, me = socket.gethostname(), os.getpid()
    dead = plant.stack("dead", owner=f"{host}:{dead_pid()}")
    legacy = plant.stack("legacy", owner=f"{host}:{dead_pid()}", namespace=None)
    reused = plant.stack("reused", owner=f"{host}:{me}", start="1")
    alive = plant.stack("alive", owner=f"{host}:{me}", start=labels.process_start(me))
    elsewhere = plant.stack("elsewhere", owner="another-host:1")
    other_ns = plant.stack("otherns", owner=f"{host}:{dead_pid()}", namespace=ELSEWHERE)
    detached = plant.stack("detached", owner=f"{host}:{dead_pid()}", detached=True)
    old = plant.stack("old", owner=f"{host}:{me}", age=timedelta(days=2))
    plant.stranger()
    everything = {dead, legacy, reused, alive, elsewhere, other_ns, detached, old}

    dry = run("gc", "--dry-run", ENVKIT_GC_OLDER_THAN="")
    assert dry.returncode == 0, dry.stderr
    rows = {line.split()[0]: line for line in dry.stdout.splitlines()[1:] if line.strip()}
    assert {dead, alive} <= set(rows), f"gc --dry-run listed:\n{dry.stdout}\n{dry.stderr}"
    assert "would remove" in rows[dead] and "kept" in rows[alive]
    assert "kept" in rows[other_ns] and "another PID namespace" in rows[other_ns]
    assert plant.present() == everything
    aged = run("gc", "--dry-run", "--older-than", "1d", ENVKIT_GC_OLDER_THAN="")
    rows = {line.split()[0]: line for line in aged.stdout.splitlines()[1:]}
    assert "would remove" in rows[old] and "older than 1d" in rows[old]
    assert "kept" in rows[alive] and "kept" in rows[other_ns]
    assert plant.present() == everything

    done = run("gc", ENVKIT_GC_OLDER_THAN="")
    assert done.returncode == 0, done.stderr
    assert plant.present() == {alive, elsewhere, other_ns, detached, old}
    assert plant.strangers_alive()
    assert run("gc", "--older-than", "soon").returncode == 2  # usage, said by argparse


def test_reaping_an_owner_spares_namesakes_in_other_namespaces_and_pid_successors(
    plant: Planter,
) -> None:
    """``python -m envkit.reaper --owner`` is what a watchdog runs when its owner dies.

    The owner is on a host that is not this one, so no other run's sweep (which judges
    every stack on the engine, whenever another worker or a pytester run starts) takes a
    planted stack first: a sweep leaves other hosts' stacks alone, while ``--owner`` goes
    by the label alone and skips liveness checks. (The successor, a live PID stamped with
    another start time, is exactly what a sweep on the owner's host rightly removes.)
    """
    owner, started = f"elsewhere-{plant.tag}:{dead_pid()}", "4242"
    mine = plant.stack("mine", owner=owner, start=started)
    namesake = plant.stack("namesake", owner=owner, namespace=ELSEWHERE)
    # A later process that got the same PID before the reaping was over.
    successor = plant.stack("successor", owner=owner, start=str(int(started) + 1))
    done = subprocess.run([sys.executable, "-m", "envkit.reaper", "--owner", owner,
                           "--owner-start", started],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert f"removed stack {mine}" in done.stderr
    assert plant.present() == {namesake, successor}


@pytest.mark.engine_exclusive
def test_the_first_stack_of_a_session_sweeps_dead_owners(plant: Planter, tmp_path: Path) -> None:
    """The sweep judges every stack on the engine: alone, like ``gc``.

    A run that makes no stack sweeps nothing (the plugin costs nothing until used); the
    first stack a run makes removes dead owners' stacks before it starts.
    """
    dead = plant.stack("dead", owner=f"{socket.gethostname()}:{dead_pid()}")
    alive = plant.stack("alive", owner=f"{socket.gethostname()}:{os.getpid()}")
    plant.stranger()

    def pytest_run(body: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "test_it.py").write_text(body)
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
            cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)

    idle = pytest_run("def test_nothing():\n    pass\n")
    assert idle.returncode == 0, idle.stdout
    assert plant.present() == {dead, alive}  # no fixture, no sweep
    session = pytest_run("def test_uses_a_stack(envkit_stack_factory):\n"
                         "    envkit_stack_factory('demo')\n")
    assert session.returncode == 0, session.stdout
    assert plant.present() == {alive}
    assert plant.strangers_alive()


@pytest.mark.engine_exclusive
@pytest.mark.skipif(os.environ.get("ENVKIT_TEST_DOWN_ALL") != "1",
                    reason="removes every envkit stack on the engine, other runs' too; "
                    "opt in with ENVKIT_TEST_DOWN_ALL=1 on an engine of your own")
def test_down_all_spares_unlabelled(plant: Planter) -> None:
    plant.stack("one", owner="another-host:1")
    plant.stack("two", owner="another-host:2", detached=True)
    plant.stranger()
    result = run("down", "--all")
    assert result.returncode == 0, result.stderr
    assert plant.present() == set()
    assert plant.strangers_alive()


@pytest.fixture
def project(tmp_path: Path, envkit_session: Envkit) -> Iterator[Path]:
    """A project of its own (a unique name) with ``images/testsvc``; its images go after."""
    root = tmp_path / f"clip{uuid.uuid4().hex[:8]}"
    shutil.copytree(Path(str(TESTSVC.context)), root / "images" / "testsvc")
    yield root
    client = envkit_session.engine.client
    for image in client.images.list(name=f"envkit/{root.name}/testsvc"):
        for tag in image.tags:
            client.images.remove(tag)


def test_images_ls_build_prune(envkit_session: Envkit, project: Path) -> None:
    """Build, list and prune the images of the project in the working directory.

    A stale tag is an older build of the same image (another content hash): prune removes
    it and keeps the current one. Both carry a nonce, so neither comes from the build cache
    with an older creation time than the other.
    """
    client = envkit_session.engine.client
    svc = project / "images" / "testsvc" / "svc.py"
    svc.write_text(f"{svc.read_text()}\n# stale build {uuid.uuid4().hex}\n")
    stale_build = run("images", "build", "testsvc", cwd=project)
    assert stale_build.returncode == 0, stale_build.stderr
    stale = stale_build.stdout.split()[1]
    time.sleep(1.1)  # image creation times count in seconds
    svc.write_text(f"{svc.read_text()}\n# current build {uuid.uuid4().hex}\n")
    built = run("images", "build", "testsvc", cwd=project)
    assert built.returncode == 0, built.stderr
    name, tag = built.stdout.split()
    assert name == "testsvc" and tag.startswith(f"envkit/{project.name}/testsvc:")
    assert stale != tag and stale.startswith(f"envkit/{project.name}/testsvc:")
    listing = run("images", cwd=project)
    assert listing.returncode == 0
    rows = {line.split()[0]: line.split()[-1] for line in listing.stdout.splitlines()[1:]}
    assert (rows.get(tag), rows.get(stale)) == ("yes", "no"), listing.stdout
    pruned = run("images", "prune", cwd=project)
    assert pruned.returncode == 0, pruned.stderr
    assert stale in pruned.stdout.split()
    assert tag not in pruned.stdout.split()
    assert client.images.get(tag)
    assert run("images", "ls", "extra", cwd=project).returncode == 2


def test_doctor_reports_and_fails_with_fixes(tmp_path: Path, envkit_session: Envkit) -> None:
    """Per-check lines on a machine whose state the suite knows; exit 1 exactly on a fail.

    The engine answers and the base image exists (the suite builds on it); an empty
    images directory leaves no per-image lines; cameras, leftovers and disk depend on the
    machine, so only their status words are checked, and the exit code against them.
    """
    base = envkit_session.images.ensure_base()  # the suite builds on it
    good = run("doctor", cwd=tmp_path)  # an empty project: no images/ of its own
    lines = good.stdout.splitlines()
    assert any(line.startswith("ok    engine: Docker Engine ") for line in lines), good.stdout
    assert any(line.startswith("ok    api version: API 1.") for line in lines)
    assert f"ok    base image: {base}" in lines
    assert not any(" image " in line for line in lines)
    checks = {line.split(":")[0][6:]: line[:4].strip() for line in lines
              if line[:4].strip() in ("ok", "warn", "fail")}
    assert checks.keys() >= {"engine", "api version", "storage driver", "base image",
                             "leftovers", "address pools", "free disk"}
    assert checks["leftovers"] in ("ok", "warn")  # never fails a run
    failed = sorted(name for name, status in checks.items() if status == "fail")
    assert good.returncode == (1 if failed else 0), good.stdout
    assert failed in ([], ["free disk"]), good.stdout  # all else is known good here
    bad = run("doctor", DOCKER_HOST="tcp://127.0.0.1:9")
    assert bad.returncode == 1
    assert "fail  engine:" in bad.stdout and "fix:" in bad.stdout


def test_usage_errors_exit_2() -> None:
    assert run("down").returncode == 2
    assert run("frobnicate").returncode == 2
