"""Least privilege as specs say it: capabilities, user, groups, limits, read-only root.

The same settings through Python, stack files and compose files, and the create request
they become; the real engine's view of them is in tests/integration/test_privileges.py.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any

import docker
import pytest

from envkit import _privileges
from envkit._containers import _create_args
from envkit.compose import load_compose
from envkit.errors import SpecError
from envkit.spec import DEFAULT_PIDS_LIMIT, ServiceSpec
from envkit.stackfile import load_stack_file


def _svc(**kw: Any) -> ServiceSpec:
    return ServiceSpec(name="web", image="x", **kw)


def test_defaults_add_no_capability_and_limit_processes() -> None:
    svc = _svc()
    assert (svc.cap_add, svc.group_add, svc.read_only) == ((), (), False)
    assert (svc.pids_limit, svc.mem_limit, svc.user) == (DEFAULT_PIDS_LIMIT, None, None)


def test_capabilities_are_normalised_and_checked() -> None:
    assert _svc(cap_add=["cap_chown", "SETUID", "setgid"]).cap_add == (
        "CHOWN", "SETGID", "SETUID")
    assert _svc(cap_add="NET_BIND_SERVICE").cap_add == ("NET_BIND_SERVICE",)
    with pytest.raises(SpecError, match=r"field 'cap_add' = 'CHOWNN': not a Linux capability"):
        _svc(cap_add=["CHOWNN"])
    with pytest.raises(SpecError, match="every capability") as info:
        _svc(cap_add=["ALL"])
    assert "CHOWN" in info.value.fix  # the fix lists Docker's usual set
    with pytest.raises(SpecError, match="must be a list of capability names"):
        _svc(cap_add=[1])


@pytest.mark.parametrize(("given", "expected"), [
    ("512m", 512 * 1024**2), ("1g", 1024**3), ("64MB", 64 * 1024**2), (8 * 1024**2, 8 * 1024**2),
    (None, None),
])
def test_memory_limits(given: object, expected: int | None) -> None:
    assert _svc(mem_limit=given).mem_limit == expected


@pytest.mark.parametrize(("field", "value", "message"), [
    ("mem_limit", "lots", "not an amount of memory"),
    ("mem_limit", "1m", "below the engine's minimum of 6 MiB"),
    ("mem_limit", True, "not an amount of memory"),
    ("pids_limit", "100", "must be a whole number of processes"),
    ("pids_limit", -5, "must not be negative"),
    ("group_add", [""], "not a group name or an id"),
    ("read_only", "yes", "must be true or false"),
    ("user", "  ", "must be user[:group]"),
])
def test_bad_privilege_values_name_field_and_fix(field: str, value: object,
                                                 message: str) -> None:
    with pytest.raises(SpecError, match=rf"field {field!r} .*{re.escape(message)}") as info:
        _svc(**{field: value})
    assert info.value.fix


def test_no_process_limit_is_none_and_groups_are_strings() -> None:
    assert _svc(pids_limit=None).pids_limit is None
    assert _svc(pids_limit=-1).pids_limit is None
    assert _svc(group_add=["video", 44]).group_add == ("video", "44")


def _create(svc: ServiceSpec) -> dict[str, Any]:
    class _Engine:
        client = docker.DockerClient(base_url="unix:///nonexistent", version="1.41")
        publish_ip = "127.0.0.1"

    args = _create_args(_Engine(), svc, "img", network="net", labels={},  # type: ignore[arg-type]
                        container_name="c", volumes={})
    return args


def test_the_create_request_drops_all_and_adds_back_the_spec_s() -> None:
    args = _create(_svc(cap_add=["CHOWN"], group_add=["video"], read_only=True,
                        tmpfs=["/tmp:size=16m"], pids_limit=64, mem_limit="128m",
                        user="10001:10001"))
    host = args["host_config"]
    assert (host["CapDrop"], host["CapAdd"], host["GroupAdd"]) == (["ALL"], ["CHOWN"], ["video"])
    assert (host["ReadonlyRootfs"], host["PidsLimit"], host["Memory"]) == (
        True, 64, 128 * 1024**2)
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Tmpfs"] == {"/tmp": "size=16m"}
    assert args["user"] == "10001:10001"


def test_a_mknod_device_rule_brings_the_mknod_capability_and_nothing_else_does() -> None:
    assert "CapAdd" not in _create(_svc())["host_config"]
    host = _create(_svc(device_cgroup_rules=["c 81:* rmw"]))["host_config"]
    assert host["CapAdd"] == ["MKNOD"]
    assert "CapAdd" not in _create(_svc(device_cgroup_rules=["c 81:* rw"]))["host_config"]


def test_a_stack_file_says_the_same(tmp_path: Path) -> None:
    path = tmp_path / "s.yml"
    path.write_text(textwrap.dedent("""
        name: s
        services:
          web:
            image: x
            user: '1000:1000'
            cap_add: [CHOWN]
            group_add: [video, 44]
            read_only: true
            tmpfs: [/tmp]
            pids_limit: ${PIDS:-128}
            mem_limit: 256m
    """))
    svc = load_stack_file(path, environ={}).service("web")
    assert (svc.user, svc.cap_add, svc.group_add, svc.read_only, svc.tmpfs) == (
        "1000:1000", ("CHOWN",), ("video", "44"), True, ("/tmp",))
    assert (svc.pids_limit, svc.mem_limit) == (128, 256 * 1024**2)


def test_a_stack_file_refuses_a_bad_capability(tmp_path: Path) -> None:
    path = tmp_path / "s.yml"
    path.write_text("name: s\nservices:\n  web:\n    image: x\n    cap_add: [ALL]\n")
    with pytest.raises(SpecError, match="stack 's', service 'web': field 'cap_add'"):
        load_stack_file(path, environ={})


def test_a_compose_file_maps_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text(textwrap.dedent("""
        services:
          web:
            image: x
            user: "10001"
            cap_drop: [ALL]
            cap_add: [NET_BIND_SERVICE]
            group_add: [video]
            read_only: true
            tmpfs: [/tmp, "/run:size=1m"]
            pids_limit: 200
            mem_limit: 1g
          unlimited:
            image: x
            cap_drop: [NET_RAW]
            pids_limit: -1
    """))
    spec = load_compose(path, environ={})
    web, other = spec.service("web"), spec.service("unlimited")
    assert (web.user, web.cap_add, web.group_add, web.read_only) == (
        "10001", ("NET_BIND_SERVICE",), ("video",), True)
    assert (web.tmpfs, web.pids_limit, web.mem_limit) == (("/tmp", "/run:size=1m"), 200, 1024**3)
    # cap_drop is implied: envkit drops every capability whatever the file says.
    assert (other.cap_add, other.pids_limit) == ((), None)


def test_a_compose_file_with_a_misspelt_capability_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text("services:\n  web:\n    image: x\n    cap_drop: [NET_RAWW]\n")
    with pytest.raises(SpecError, match=r"field 'cap_drop' = 'NET_RAWW': not a Linux "
                                        r"capability \(docker-compose.yml line 4\)"):
        load_compose(path, environ={})


def test_environment_repr_hides_secret_values_but_keeps_them() -> None:
    svc = _svc(environment={"CAMERA_SERVICE_JWT_SECRET": "s3cr3t-value", "LOG": "debug",
                            "DB_PASSWORD": "hunter22"})
    assert "s3cr3t-value" not in repr(svc) and "hunter22" not in repr(svc)
    assert "'LOG': 'debug'" in repr(svc) and "<redacted>" in repr(svc)
    assert svc.environment["CAMERA_SERVICE_JWT_SECRET"] == "s3cr3t-value"
    assert svc.environment == {"CAMERA_SERVICE_JWT_SECRET": "s3cr3t-value", "LOG": "debug",
                               "DB_PASSWORD": "hunter22"}


def test_redact_cuts_secret_values_out_of_text() -> None:
    secrets = _privileges.secret_values([{"API_TOKEN": "abcdef123", "TOKEN_SHORT": "ab",
                                          "NAME": "abcdef123456"}])
    assert secrets == {"abcdef123"}  # short values and plain names are left alone
    assert _privileges.redact("Env=API_TOKEN=abcdef123 x", secrets) == (
        "Env=API_TOKEN=<redacted> x")


def test_a_mapped_device_brings_its_group_but_never_root_s(tmp_path: Path) -> None:
    node, rooted = tmp_path / "video0", tmp_path / "video1"
    node.touch()
    rooted.touch()
    os.chown(node, -1, 4321)
    os.chown(rooted, -1, 0)
    host = _create(_svc(devices=[f"{node}:/dev/video0", f"{rooted}:/dev/video1"],
                        group_add=["video"]))["host_config"]
    assert host["GroupAdd"] == ["video", "4321"]
