"""CLI pieces that need no engine: usage, durations, tables, cameras, ``envkit-camera token``."""

from __future__ import annotations

import argparse
import io
import struct
from types import SimpleNamespace
from typing import Any

import docker.errors
import jwt
import pytest

from envkit import _table, cli, doctor, labels
from envkit.camera import auth, devices
from envkit.camera import cli as camera_cli


@pytest.mark.parametrize("argv", [[], ["nope"], ["gc", "--older-than"], ["images", "bad"],
                                  ["down", "x", "--all"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert cli.main(argv) == cli.EXIT_USAGE


def test_every_command_is_registered() -> None:
    assert {"up", "down", "ps", "gc", "images", "doctor"} <= set(cli.COMMANDS)


def test_tokens_are_the_camera_kits_command_not_the_cores() -> None:
    """``envkit token`` became ``envkit-camera token``: the core knows no JWT."""
    assert "token" not in cli.COMMANDS
    assert cli.main(["token", "s1-cli-default"]) == cli.EXIT_USAGE


@pytest.mark.parametrize("argv", [[], ["token"], ["token", "x", "--role", "root"], ["nope"]])
def test_camera_usage_errors_exit_2(argv: list[str]) -> None:
    assert camera_cli.main(argv) == camera_cli.EXIT_USAGE


def test_plain_table_when_piped() -> None:
    out = io.StringIO()
    _table.render(["A", "LONGER"], [["xx", "1"], ["y", "22"]], stream=out)
    assert out.getvalue().splitlines() == ["A   LONGER", "xx  1", "y   22"]


@pytest.mark.parametrize(("seconds", "text"), [(None, "?"), (5, "5s"), (125, "2m"),
                                               (7300, "2h"), (200000, "2d")])
def test_human_age(seconds: float | None, text: str) -> None:
    assert _table.human_age(seconds) == text


def test_camera_querycap_is_parsed(tmp_path: pytest.TempPathFactory) -> None:
    answer = struct.pack("16s32s32sIII3I", b"uvcvideo", b"Integrated Camera", b"usb", 1, 0, 0,
                         0, 0, 0)

    def fake_ioctl(fd: int, request: int, buf: bytes) -> bytes:
        assert request == devices.VIDIOC_QUERYCAP and len(buf) == 104
        return answer

    check = devices.query_camera("/dev/null", ioctl=fake_ioctl)
    assert (check.status, check.detail) == ("ok", "Integrated Camera (uvcvideo)")


def test_no_cameras_is_a_warning_with_a_fix(tmp_path: object) -> None:
    (check,) = devices.camera_findings("/nonexistent/video*")
    assert check.status == devices.WARN and "v4l2loopback" in check.fix


SECRET = "a-secret-long-enough-for-hs256-keys"


class TokenApi:
    """The two calls ``envkit-camera token`` makes, answering or failing like the engine."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        self.fail = fail

    def containers(self, *, all: bool, filters: Any) -> list[dict[str, Any]]:
        if self.fail is not None:
            raise self.fail
        found = {labels.SESSION: "s1", labels.STACK: "s1-cli-default", labels.SERVICE: "cam"}
        return [{"Names": ["/s1-cam"], "State": "running", "Labels": found, "Ports": []}]

    def networks(self, *, filters: Any) -> list[dict[str, Any]]:
        return []

    def volumes(self, *, filters: Any) -> dict[str, Any]:
        return {"Volumes": None}

    def inspect_container(self, name: str) -> dict[str, Any]:
        return {"Config": {"Env": ["A=1", f"{auth.JWT_SECRET_ENV}={SECRET}"]}}


class FakeKit:
    def __init__(self, api: TokenApi) -> None:
        self.engine = SimpleNamespace(client=SimpleNamespace(api=api))


def run_token(monkeypatch: pytest.MonkeyPatch, api: TokenApi) -> int:
    monkeypatch.setattr(camera_cli.Envkit, "from_env", lambda *a, **k: FakeKit(api))
    return camera_cli.main(["token", "s1-cli-default", "--role", "admin"])


def test_token_is_minted_with_the_stacks_secret(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert run_token(monkeypatch, TokenApi()) == camera_cli.EXIT_OK
    token = capsys.readouterr().out.strip()
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["role"] == "admin"


def test_token_engine_error_is_one_clean_line(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    refused = docker.errors.APIError("400 Client Error: bad filter")
    assert run_token(monkeypatch, TokenApi(fail=refused)) == camera_cli.EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.startswith("envkit: error: Docker refused to list containers: ")
    assert "Traceback" not in err


def test_bad_session_variable_exits_1_naming_it(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENVKIT_SESSION", "x" * 40)
    assert cli.main(["ps"]) == cli.EXIT_FAILURE
    err = capsys.readouterr().err
    assert "ENVKIT_SESSION='" in err and "at most 32" in err and "fix:" in err


def test_doctor_exit_code_follows_failures(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    found = [doctor.Check(name="engine", status=doctor.OK, detail="Docker Engine 1"),
             doctor.Check(name="cameras", status=doctor.WARN, detail="none", fix="attach")]
    monkeypatch.setattr(doctor, "run", lambda kit: found)
    assert cli.cmd_doctor(argparse.Namespace(), object()) == cli.EXIT_OK  # type: ignore[arg-type]
    found.append(doctor.Check(name="free disk", status=doctor.FAIL, detail="1 GiB", fix="prune"))
    assert cli.cmd_doctor(argparse.Namespace(), object()) == cli.EXIT_FAILURE  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "fail  free disk: 1 GiB\n      fix: prune" in out
