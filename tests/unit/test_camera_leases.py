"""Camera leases: exclusive across processes, freed by the kernel when a holder dies."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from envkit.camera import devices, leases
from envkit.camera.plugin import _asked

HOLD = """
import sys, time
from pathlib import Path
from envkit.camera import leases
grant = leases.acquire(sys.argv[2].split(","), int(sys.argv[3]), Path(sys.argv[1]),
                       policy="fail")
print(",".join(grant.devices), flush=True)
time.sleep(60)
"""


def _holder(directory: Path, devs: list[str], count: int = 1) -> tuple[subprocess.Popen[str], str]:
    """A second process that leases *count* of *devs* and holds them; its devices."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), ",".join(devs),
                             str(count)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


@pytest.fixture
def devs(tmp_path: Path) -> list[str]:
    made = []
    for n in (7, 8):
        node = tmp_path / f"video{n}"
        node.touch()  # a lock keys on the path; the node itself is never opened here
        made.append(str(node))
    return made


def test_another_process_holds_a_device_exclusively(tmp_path: Path, devs: list[str]) -> None:
    proc, held = _holder(tmp_path / "locks", devs)
    try:
        assert held == devs[0]
        grant = leases.acquire(devs, 1, tmp_path / "locks", policy="fail")
        assert grant.devices == (devs[1],)  # the other one, never the held one
        with pytest.raises(leases.CameraLeaseError, match="0 free of 2"):
            leases.acquire(devs, 1, tmp_path / "locks", policy="fail")
        grant.release()
        assert leases.acquire(devs, 1, tmp_path / "locks", policy="fail").devices == (devs[1],)
    finally:
        proc.kill()
        proc.wait()


def test_sigkilled_holder_frees_its_lease(tmp_path: Path, devs: list[str]) -> None:
    """The kernel drops a killed holder's flock: no stale lock, no pid check.

    How soon is measured by bench/bench_camera_lease.py (a figure, never asserted here).
    """
    proc, held = _holder(tmp_path / "locks", devs[:1])
    assert held == devs[0]
    with pytest.raises(leases.CameraLeaseError):
        leases.acquire(devs[:1], 1, tmp_path / "locks", policy="fail")
    os.kill(proc.pid, signal.SIGKILL)
    grant = leases.acquire(devs[:1], 1, tmp_path / "locks", policy="wait", wait=30.0)
    assert proc.wait() == -signal.SIGKILL and grant.devices == (devs[0],)


def test_wait_policy_gets_the_device_when_its_holder_exits(tmp_path: Path,
                                                            devs: list[str]) -> None:
    proc, _ = _holder(tmp_path / "locks", devs[:1])
    try:
        with pytest.raises(leases.CameraLeaseError, match=r"still not free after 0\.3 s"):
            leases.acquire(devs[:1], 1, tmp_path / "locks", policy="wait", wait=0.3)
    finally:
        proc.terminate()
        proc.wait()
    assert leases.acquire(devs[:1], 1, tmp_path / "locks", policy="wait", wait=2).devices


def test_synthetic_policy_takes_the_free_ones_and_makes_up_the_rest(
    tmp_path: Path, devs: list[str]
) -> None:
    proc, _ = _holder(tmp_path / "locks", devs)
    try:
        grant = leases.acquire(devs, 2, tmp_path / "locks", policy="synthetic")
        assert grant.devices == (devs[1],) and grant.synthetic == 1
        assert "1 free of 2" in grant.reason
    finally:
        proc.kill()
        proc.wait()


def test_skip_and_fail_policies_say_why(tmp_path: Path, devs: list[str]) -> None:
    with pytest.raises(leases.CameraLeaseError) as skipped:
        leases.acquire(devs, 3, tmp_path / "locks", policy="skip")
    assert skipped.value.skip and "3 camera(s) asked for, 2 free of 2" in str(skipped.value)
    with pytest.raises(leases.CameraLeaseError) as failed:
        leases.acquire(devs, 3, tmp_path / "locks", policy="fail")
    assert not failed.value.skip and "fix:" in str(failed.value)


def test_wait_does_not_wait_for_devices_that_do_not_exist(tmp_path: Path) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"waited {seconds} s for a device that does not exist")

    with pytest.raises(leases.CameraLeaseError, match="0 free of 0"):
        leases.acquire([], 1, tmp_path / "locks", policy="wait", wait=30, sleep=no_sleep)
    with pytest.raises(leases.CameraLeaseError, match=r"3 camera\(s\) asked for, 2 free of 2"):
        leases.acquire([str(tmp_path / "a"), str(tmp_path / "b")], 3, tmp_path / "locks",
                       policy="wait", wait=30, sleep=no_sleep)


def test_all_or_nothing_holds_nothing_between_attempts(tmp_path: Path,
                                                       devs: list[str]) -> None:
    proc, _ = _holder(tmp_path / "locks", devs[:1])
    try:
        with pytest.raises(leases.CameraLeaseError):
            leases.acquire(devs, 2, tmp_path / "locks", policy="fail")
        # The free device was let go again, so another process can still take it.
        assert leases.acquire(devs[1:], 1, tmp_path / "locks", policy="fail").devices
    finally:
        proc.kill()
        proc.wait()


def test_unknown_policy_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(leases.CameraLeaseError, match="wait, synthetic, skip, fail"):
        leases.acquire([], 1, tmp_path, policy="later")


def test_lock_dir_is_keyed_by_session_and_files_by_path(tmp_path: Path) -> None:
    one, two = leases.lock_dir(tmp_path, "s1"), leases.lock_dir(tmp_path, "s/2")
    assert one != two and two.name == "s_2"
    assert leases.lock_file(one, "/dev/video0").name == "%dev%video0.lock"


def test_discovery_override_and_capture_filter(tmp_path: Path) -> None:
    assert leases.discover({leases.DEVICES_ENV: "/a, /b,"}) == ("/a", "/b")
    assert leases.discover({}, pattern=str(tmp_path / "video*")) == ()
    (tmp_path / "video0").touch()  # opens, but is no V4L2 device
    assert leases.discover({}, pattern=str(tmp_path / "video*")) == ()


@pytest.mark.parametrize(("caps", "device_caps", "captures"), [
    (0x1, 0, True),  # capture, no per-node caps
    (0x80000001, 0x00800000, False),  # a UVC metadata node of a capture device
    (0x80000001, 0x1, True),
    (0x2, 0, False),  # output only
])
def test_is_capture_reads_the_nodes_own_caps(caps: int, device_caps: int,
                                             captures: bool) -> None:
    answer = struct.pack("16s32s32sIII3I", b"uvcvideo", b"Cam", b"usb", 1, caps, device_caps,
                         0, 0, 0)
    assert devices.is_capture("/dev/null", ioctl=lambda *_: answer) is captures


@pytest.mark.parametrize(("mark", "asked"), [
    (None, (1, True)),
    (pytest.mark.envkit_cameras(2).mark, (2, True)),
    (pytest.mark.envkit_cameras(n=0, real=False).mark, (0, False)),
])
def test_marker_arguments(mark: pytest.Mark | None, asked: tuple[int, bool]) -> None:
    assert _asked(mark) == asked


@pytest.mark.parametrize(("mark", "message"), [
    (pytest.mark.envkit_cameras("two").mark, "envkit_cameras('two'): n is not a number"),
    (pytest.mark.envkit_cameras(-1).mark, "envkit_cameras(-1): n is not a number"),
    (pytest.mark.envkit_cameras(1, real="yes").mark, "real='yes'): real is not True or False"),
])
def test_bad_marker_arguments_fail_the_test_with_the_fix(mark: pytest.Mark,
                                                         message: str) -> None:
    with pytest.raises(pytest.fail.Exception, match="fix: ") as failed:
        _asked(mark)
    assert message in str(failed.value) and not failed.value.pytrace
