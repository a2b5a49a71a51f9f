"""The ``camera-service`` block's camera fields in YAML stack files: leases and hot-plug."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

from envkit.camera import leases
from envkit.camera import stack as camera_stack
from envkit.camera.hotplug import V4L2_RULE
from envkit.config import Settings
from envkit.errors import SpecError
from envkit.spec import ServiceSpec, StackSpec
from envkit.stackfile import load_stack_file

T = TypeVar("T")


class Ctx:
    """A :class:`envkit.kits.KitContext` for the block: settings, environment, memo; no engine."""

    def __init__(self, cache: Path, devices: list[str], policy: str = "fail") -> None:
        self.settings = Settings(root=cache, cache_dir=cache, options={leases.POLICY: policy})
        self.environ = {leases.DEVICES_ENV: ",".join(devices)}
        self.session = "unit"
        self.made: list[str] = []
        self._memo: dict[str, Any] = {}

    @property
    def engine(self) -> Any:
        raise AssertionError("a block's camera fields need no engine")

    def memo(self, key: str, make: Callable[[], T]) -> T:
        if key not in self._memo:
            self.made.append(key)
            self._memo[key] = make()
        value: T = self._memo[key]
        return value


@pytest.fixture
def devs(tmp_path: Path) -> list[str]:
    made = [tmp_path / "dev" / f"video{n}" for n in (4, 5)]
    made[0].parent.mkdir()
    for node in made:
        node.touch()  # a lease keys on the path; nothing opens the node here
    return [str(node) for node in made]


def load(tmp_path: Path, ctx: Ctx, entry: str) -> StackSpec:
    path = tmp_path / "stack.yml"
    path.write_text("services:\n  mediamtx: {image: 'mtx:1'}\n  cams:\n    use: camera-service\n"
                    + textwrap.indent(textwrap.dedent(entry), "    "))

    def resolve(block: str, options: Mapping[str, Any]) -> ServiceSpec:
        assert block == "camera-service"
        return camera_stack.block(ctx, options)

    return load_stack_file(path, environ={"N": "2"}, services=resolve)


def mapped(svc: ServiceSpec) -> list[tuple[str, str]]:
    """(host, container) of each device; the spec keeps parsed ``Device`` values."""
    return [(d.host, d.container) for d in svc.devices if not isinstance(d, str)]


def env(svc: ServiceSpec) -> str:
    return svc.environment["CAMERA_SERVICE_CAMERAS_SYNTHETIC"]


def test_without_camera_fields_one_synthetic_camera_and_no_lease(tmp_path: Path,
                                                                  devs: list[str]) -> None:
    ctx = Ctx(tmp_path, devs)
    svc = load(tmp_path, ctx, "with: {}\n").service("cams")
    assert (svc.devices, env(svc), svc.device_cgroup_rules, ctx.made) == ((), "1", (), [])


def test_cameras_leases_and_maps_only_the_leased_devices(tmp_path: Path,
                                                         devs: list[str]) -> None:
    ctx = Ctx(tmp_path, devs)
    svc = load(tmp_path, ctx, "with: {cameras: 1}\n").service("cams")
    assert mapped(svc) == [(devs[0], "/dev/video4")]
    assert env(svc) == ""  # no synthetic camera beside a real one
    # The worker holds it: no one else may take it, and the block's next stack reuses it.
    with pytest.raises(leases.CameraLeaseError):
        leases.acquire(devs[:1], 1, leases.session_dir(ctx), policy="fail")
    again = load(tmp_path, ctx, "with: {cameras: 1}\n").service("cams")
    assert mapped(again) == mapped(svc) and len(ctx.made) == 1


def test_a_shortage_under_synthetic_stands_in_and_under_fail_names_the_fix(
    tmp_path: Path, devs: list[str]
) -> None:
    one = load(tmp_path, Ctx(tmp_path, devs), "with: {cameras: 1}\n").service("cams")
    # Another worker (its own leases; flock conflicts across open files, so within one
    # process too) asks for 2, from ${N}: the free one, and a synthetic camera.
    two = load(tmp_path, Ctx(tmp_path, devs, policy="synthetic"),
               "with: {cameras: '${N}'}\n").service("cams")
    assert mapped(one) == [(devs[0], "/dev/video4")]
    assert mapped(two) == [(devs[1], "/dev/video5")]
    assert env(two) == "90"  # synthetic indexes kept clear of the real ones
    with pytest.raises(SpecError) as refused:
        load(tmp_path, Ctx(tmp_path, devs), "with: {cameras: 1}\n")
    text = str(refused.value)
    assert "service 'cams': field 'with'" in text and "no camera lease" in text
    assert "0 free of 2" in text and "fix: attach cameras" in text


def test_hotplug_gives_the_v4l2_rule(tmp_path: Path, devs: list[str]) -> None:
    svc = load(tmp_path, Ctx(tmp_path, devs), "with: {hotplug: true}\n").service("cams")
    assert tuple(svc.device_cgroup_rules) == (V4L2_RULE,)


@pytest.mark.parametrize(("options", "message"), [
    ("{cameras: -1}", "field 'with.cameras' = -1: not a number of cameras (a whole number, "
     "0 or more)\n  fix: write e.g. cameras: 1"),
    ("{cameras: two}", "field 'with.cameras' = 'two': not a number of cameras"),
    ("{cameras: true}", "field 'with.cameras' = True: not a number of cameras"),
    ("{cameras: 1.5}", "field 'with.cameras' = 1.5: not a number of cameras"),
    ("{hotplug: maybe}", "field 'with.hotplug' = 'maybe': not true or false\n"
     "  fix: write hotplug: true"),
    ("{camera: 1}", "field 'with.camera' = 1: not an option of block 'camera-service'\n"
     "  fix: the camera-service block takes: name, mediamtx, synthetic, secret, cameras, "
     "hotplug"),
])
def test_bad_values_name_field_value_and_fix(tmp_path: Path, devs: list[str], options: str,
                                             message: str) -> None:
    with pytest.raises(SpecError) as bad:
        load(tmp_path, Ctx(tmp_path, devs), f"with: {options}\n")
    assert str(bad.value).startswith(f"stack 'stack', service 'cams': {message}"), bad.value
