"""Camera leases in real ``pytest -n`` runs, on stand-in device nodes made for the test.

This machine has no ``/dev/video*``: two character nodes with V4L2's major (81) and minors
no driver has are made with ``mknod`` in a temporary directory and named to the kit by
``ENVKIT_CAMERA_DEVICES``. A lease keys on the node's path and never opens it, so the
stand-ins exercise exactly what a real camera would. Every inner test writes when it asked
(before its fixtures), when it got its device and when it was done (before releasing); the
outer test checks the intervals, so exclusivity is shown, not assumed.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration  # the envkit_session fixture connects to the engine

NO_SWEEP = ("-p", "no:cacheprovider", "--envkit-no-sweep")

#: Writes ``asked-<test>`` as the lease is asked for: the fixture's own dependencies (the
#: engine's session) are set up by then, so what follows is the lease's wait alone.
CONFTEST = """
import os, time
from pathlib import Path
import pytest
from envkit.camera import leases

OUT = Path(os.environ["CAMTEST_OUT"])

@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef, request):
    if fixturedef.argname != "envkit_cameras":
        return
    (OUT / f"asked-{request.node.name}").write_text(repr(time.time()))
    # The kernel's word on whether every device is held by another worker right now
    # (a probe that gets one lets go at once; the lease's own wait retries past it).
    directory = leases.session_dir(request.getfixturevalue("envkit_session"))
    probes = [leases.try_lease(d, directory) for d in leases.discover(os.environ)]
    for probe in probes:
        if probe is not None:
            probe.release()
    (OUT / f"all-busy-{request.node.name}").write_text(repr(all(p is None for p in probes)))
"""

#: Nine tests, each holding one camera for 1 s (long beside a test's own overhead, so the
#: third worker often asks while the other two hold both), on three workers, two devices.
EXCLUSIVE = """
import json, os, time
from pathlib import Path
import pytest

OUT = Path(os.environ["CAMTEST_OUT"])

@pytest.mark.envkit_cameras(1)
@pytest.mark.parametrize("n", range(9))
def test_hold(n, request, envkit_cameras):
    got = time.time()
    (device,) = envkit_cameras.devices
    time.sleep(1.0)
    (OUT / f"rec-{n}.json").write_text(json.dumps({
        "worker": os.environ["PYTEST_XDIST_WORKER"], "device": device,
        "asked": float((OUT / f"asked-{request.node.name}").read_text()),
        "got": got, "done": time.time()}))
"""

#: Whoever gets the one device first waits until the other asked, then SIGKILLs itself.
KILLED = """
import json, os, signal, time
from pathlib import Path
import pytest

OUT = Path(os.environ["CAMTEST_OUT"])

@pytest.mark.envkit_cameras(1)
@pytest.mark.parametrize("n", range(2))
def test_hold_or_wait(n, envkit_cameras):
    got = time.time()
    record = {"worker": os.environ["PYTEST_XDIST_WORKER"], "device": envkit_cameras.devices[0],
              "got": got, "asked": float((OUT / f"asked-test_hold_or_wait[{n}]").read_text())}
    if (OUT / "killed").exists():  # the waiter: the lease came free when its holder died
        (OUT / "waiter.json").write_text(json.dumps(record))
        return
    (OUT / "holder.json").write_text(json.dumps(record))
    deadline = time.time() + 60
    while len(list(OUT.glob("asked-*"))) < 2 and time.time() < deadline:
        time.sleep(0.02)
    assert len(list(OUT.glob("asked-*"))) == 2, "the other test never asked"
    time.sleep(0.5)  # the waiter is in its polling loop by now
    (OUT / "killed").write_text(repr(time.time()))
    os.kill(os.getpid(), signal.SIGKILL)
"""

#: Holds devices in the run's lock directory, from outside the run, until told to stop.
HOLDER = """
import os, sys, time
from pathlib import Path
from envkit.camera import leases

directory, devices, release_after = Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
grant = leases.acquire(devices, len(devices), directory, policy="fail")
print(",".join(grant.devices), flush=True)
deadline = time.time() + 120
while time.time() < deadline and not (release_after and Path(release_after).exists()):
    time.sleep(0.02)
time.sleep(0.3)  # the run's test is polling by now
Path(directory / "released").write_text(repr(time.time()))
"""


@pytest.fixture
def nodes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two stand-in V4L2 character nodes, the run's only cameras, locks in the test's dir."""
    made = []
    for minor in (240, 241):
        node = pytester.path / "dev" / f"video{minor - 230}"
        node.parent.mkdir(exist_ok=True)
        os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(81, minor))
        made.append(str(node))
    out = pytester.path / "out"
    out.mkdir()
    monkeypatch.setenv("ENVKIT_CAMERA_DEVICES", ",".join(made))
    monkeypatch.setenv("CAMTEST_OUT", str(out))
    monkeypatch.setenv("XDG_CACHE_HOME", str(pytester.path / "cache"))
    monkeypatch.setenv("ENVKIT_SESSION", f"camlease{os.getpid()}")
    monkeypatch.delenv("ENVKIT_MEDIAMTX", raising=False)
    pytester.makeconftest(CONFTEST)
    return made


def _records(out: Path, pattern: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob(pattern))]


def test_three_workers_never_hold_one_of_two_devices_at_once(
    pytester: pytest.Pytester, nodes: list[str]
) -> None:
    pytester.makepyfile(EXCLUSIVE)
    result = pytester.runpytest_subprocess("-n", "3", *NO_SWEEP)
    result.assert_outcomes(passed=9)
    out = pytester.path / "out"
    recs = _records(out, "rec-*.json")
    assert len(recs) == 9 and {r["device"] for r in recs} == set(nodes)
    assert len({r["worker"] for r in recs}) == 3
    for device in nodes:
        held = sorted((r["got"], r["done"], r["worker"]) for r in recs if r["device"] == device)
        for before, after in itertools.pairwise(held):
            assert after[0] >= before[1], f"{device} held twice at once: {before} {after}"
    # Not vacuous: some test asked while the kernel said both devices were held (by the
    # two other workers), so it had to wait for one, and still nothing overlapped.
    busy = [p.read_text() for p in out.glob("all-busy-*")]
    assert len(busy) == 9 and "True" in busy, busy


def test_a_sigkilled_workers_lease_goes_to_the_waiting_worker(
    pytester: pytest.Pytester, nodes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel frees a dead worker's flock; the waiter takes it. The time is printed.

    One device for two workers. The figure (and its spread over many trials) comes from
    ``bench/bench_camera_lease.py``; here it is shown, never asserted.
    """
    monkeypatch.setenv("ENVKIT_CAMERA_DEVICES", nodes[0])
    pytester.makepyfile(KILLED)
    result = pytester.runpytest_subprocess("-n", "2", *NO_SWEEP, "--envkit-camera-wait", "60")
    out = pytester.path / "out"
    result.assert_outcomes(passed=1, failed=1)  # the killed worker's test counts as failed
    assert "crashed" in result.stdout.str() or "node down" in result.stdout.str()
    holder = json.loads((out / "holder.json").read_text())
    waiter = json.loads((out / "waiter.json").read_text())
    killed = float((out / "killed").read_text())
    assert holder["worker"] != waiter["worker"]
    assert holder["device"] == waiter["device"] == nodes[0]
    # The waiter asked while the device was held, and got it only once its holder died.
    assert holder["got"] < killed and waiter["asked"] < killed < waiter["got"], (
        holder, waiter, killed)
    print(f"SIGKILL of the holding worker -> lease taken by the waiting worker: "
          f"{waiter['got'] - killed:.3f} s")


@pytest.fixture
def holder(pytester: pytest.Pytester, nodes: list[str]) -> Iterator[Any]:
    """``hold(devices, release_when=None)``: lease *devices* from outside the run."""
    procs: list[subprocess.Popen[str]] = []
    directory = (pytester.path / "cache" / "envkit" / "camera-leases"
                 / os.environ["ENVKIT_SESSION"])

    def hold(devices: list[str], release_when: Path | None = None) -> Path:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory),
                                 ",".join(devices), str(release_when or "")],
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == ",".join(devices)
        return directory / "released"

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


POLICY_TEST = """
import json, os, time
from pathlib import Path
import pytest

OUT = Path(os.environ["CAMTEST_OUT"])

@pytest.mark.envkit_cameras({count})
def test_cameras(envkit_cameras):
    (OUT / "grant").write_text(json.dumps([envkit_cameras.devices, envkit_cameras.synthetic,
                                           envkit_cameras.reason, time.time()]))
"""


def _grant(pytester: pytest.Pytester) -> tuple[tuple[str, ...], int, str, float]:
    devices, synthetic, reason, at = json.loads((pytester.path / "out" / "grant").read_text())
    return tuple(devices), int(synthetic), str(reason), float(at)


def test_wait_policy_gets_a_device_freed_before_its_deadline(
    pytester: pytest.Pytester, nodes: list[str], holder: Any
) -> None:
    released = holder(nodes, release_when=pytester.path / "out" / "asked-test_cameras")
    pytester.makepyfile(POLICY_TEST.format(count=1))
    result = pytester.runpytest_subprocess("-n", "2", *NO_SWEEP, "--envkit-camera-policy",
                                           "wait", "--envkit-camera-wait", "60")
    result.assert_outcomes(passed=1)
    devices, synthetic, _, got = _grant(pytester)
    asked = float((pytester.path / "out" / "asked-test_cameras").read_text())
    assert devices[0] in nodes and synthetic == 0
    assert asked < float(released.read_text()) < got  # it waited for the holder to let go


def test_wait_policy_fails_at_its_deadline_with_the_fix(
    pytester: pytest.Pytester, nodes: list[str], holder: Any
) -> None:
    holder(nodes)
    pytester.makepyfile(POLICY_TEST.format(count=1))
    result = pytester.runpytest_subprocess("-n", "2", *NO_SWEEP, "--envkit-camera-policy",
                                           "wait", "--envkit-camera-wait", "0.5")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "envkit: no camera lease: 1 camera(s) asked for, 0 free of 2" in out
    assert "still not free after 0.5 s" in out and "fix: attach cameras" in out
    assert "Traceback" not in out and "leases.py" not in out
    assert not (pytester.path / "out" / "grant").exists()


def test_synthetic_policy_stands_in_for_the_missing_camera(
    pytester: pytest.Pytester, nodes: list[str], holder: Any
) -> None:
    holder(nodes[:1])
    pytester.makepyfile(POLICY_TEST.format(count=2))
    result = pytester.runpytest_subprocess("-n", "2", *NO_SWEEP, "--envkit-camera-policy",
                                           "synthetic")
    result.assert_outcomes(passed=1)
    devices, synthetic, reason, _ = _grant(pytester)
    assert (devices, synthetic) == ((nodes[1],), 1)
    assert reason.startswith("2 camera(s) asked for, 1 free of 2"), reason


def test_skip_policy_skips_with_the_reason(
    pytester: pytest.Pytester, nodes: list[str], holder: Any
) -> None:
    holder(nodes)
    pytester.makepyfile(POLICY_TEST.format(count=1))
    result = pytester.runpytest_subprocess("-n", "2", "-rs", *NO_SWEEP,
                                           "--envkit-camera-policy", "skip")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED *envkit: no camera lease: 1 camera(s) asked for, 0 free of 2 (*video10*"])
    assert not (pytester.path / "out" / "grant").exists()


def test_fail_policy_fails_at_once_naming_devices_and_fix(
    pytester: pytest.Pytester, nodes: list[str], holder: Any
) -> None:
    holder(nodes)
    pytester.makepyfile(POLICY_TEST.format(count=1))
    result = pytester.runpytest_subprocess("-n", "2", *NO_SWEEP, "--envkit-camera-policy",
                                           "fail", "--envkit-camera-wait", "600")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert f"0 free of 2 ({nodes[0]}, {nodes[1]})" in out and "still not free" not in out
    assert "fix: attach cameras" in out and "Traceback" not in out


#: Each worker's default stack, started on the real engine, as ``--envkit-cameras 1`` made it.
DEFAULT_STACK = """
import json, os
from pathlib import Path

OUT = Path(os.environ["CAMTEST_OUT"])

def test_default(envkit_stack):
    svc = envkit_stack.spec.service("camera-service")
    inside = envkit_stack.exec("camera-service", "ls /dev").output.split()
    (OUT / f"default-{os.environ['PYTEST_XDIST_WORKER']}.json").write_text(json.dumps({
        "devices": [str(d) for d in svc.devices],
        "nodes": sorted(n for n in inside if n.startswith("video")),
        "synthetic": svc.environment["CAMERA_SERVICE_CAMERAS_SYNTHETIC"]}))

test_default_again = test_default
"""


def test_each_workers_default_stack_gets_only_its_leased_device(
    pytester: pytest.Pytester, nodes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One device, two workers: one default stack maps it, the other stands in (synthetic)."""
    monkeypatch.setenv("ENVKIT_CAMERA_DEVICES", nodes[0])
    pytester.makepyfile(DEFAULT_STACK)
    result = pytester.runpytest_subprocess(
        "-n", "2", *NO_SWEEP, "--envkit-mediamtx", "standin", "--envkit-cameras", "1",
        "--envkit-camera-policy", "synthetic")
    result.assert_outcomes(passed=2)
    got = sorted((r["devices"], r["nodes"], r["synthetic"])
                 for r in _records(pytester.path / "out", "default-gw*.json"))
    assert got == [([], [], "1"), ([f"{nodes[0]}:/dev/video10:rwm"], ["video10"], "")], got


STACK_FILE = """
services:
  mediamtx: {use: mediamtx}
  camera-service:
    use: camera-service
    with: {cameras: 1, hotplug: true}
"""

STACK_FILE_TEST = """
import json, os
from pathlib import Path

OUT = Path(os.environ["CAMTEST_OUT"])

def test_spec(envkit_session):
    svc = envkit_session.spec("stack.yml").service("camera-service")
    assert svc.device_cgroup_rules == ("c 81:* rmw",)
    (OUT / f"file-{os.environ['PYTEST_XDIST_WORKER']}.json").write_text(json.dumps(
        [[str(d) for d in svc.devices], svc.environment["CAMERA_SERVICE_CAMERAS_SYNTHETIC"]]))

test_spec_again = test_spec
"""


def test_a_stack_files_camera_field_leases_per_worker(
    pytester: pytest.Pytester, nodes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cameras: 1`` in a stack file, through the real kits: one worker maps the device."""
    monkeypatch.setenv("ENVKIT_CAMERA_DEVICES", nodes[0])
    pytester.makefile(".yml", stack=STACK_FILE)
    pytester.makepyfile(STACK_FILE_TEST)
    result = pytester.runpytest_subprocess("-n", "2", *NO_SWEEP, "--envkit-mediamtx", "standin",
                                           "--envkit-camera-policy", "synthetic")
    result.assert_outcomes(passed=2)
    got = sorted(tuple(r) for r in _records(pytester.path / "out", "file-gw*.json"))
    assert got == [([], "1"), ([f"{nodes[0]}:/dev/video10:rwm"], "")], got
