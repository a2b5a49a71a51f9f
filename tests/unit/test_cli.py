"""CLI pieces that need no engine: usage errors, durations, tables, camera capability parsing."""

from __future__ import annotations

import io
import struct

import pytest

from envkit import _table, cli, doctor


@pytest.mark.parametrize("argv", [[], ["nope"], ["gc", "--older-than"], ["images", "bad"],
                                  ["down", "x", "--all"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert cli.main(argv) == cli.EXIT_USAGE


def test_every_command_is_registered() -> None:
    assert {"up", "down", "ps", "gc", "images", "doctor"} <= set(cli.COMMANDS)


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
        assert request == doctor.VIDIOC_QUERYCAP and len(buf) == 104
        return answer

    check = doctor._query_camera("/dev/null", ioctl=fake_ioctl)
    assert (check.status, check.detail) == ("ok", "Integrated Camera (uvcvideo)")


def test_no_cameras_is_a_warning_with_a_fix(tmp_path: object) -> None:
    (check,) = doctor._cameras("/nonexistent/video*")
    assert check.status == doctor.WARN and "v4l2loopback" in check.fix
