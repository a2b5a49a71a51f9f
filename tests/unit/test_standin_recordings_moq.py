"""Pure logic of the MediaMTX stand-in: Go's RFC 3339 errors, segment paths, MoQ's log.

The texts asserted are Go's (``time.Parse``, ``os.Remove``) and MediaMTX's
(``recordstore.Path.Encode``, ``certloader``), which the stand-in reproduces.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

CONTEXT = Path(__file__).resolve().parents[2] / "envkit/camera/contexts/mediamtx-standin"
sys.path.insert(0, str(CONTEXT))

from mtxstandin import log, moq, recordings  # noqa: E402
from mtxstandin.config import Conf, ConfError  # noqa: E402
from mtxstandin.gotime import GoTimeError, WallClock, parse_rfc3339  # noqa: E402

LAYOUT = '"2006-01-02T15:04:05Z07:00"'


@pytest.mark.parametrize(("value", "error"), [
    ("", f'parsing time "" as {LAYOUT}: cannot parse "" as "2006"'),
    ("2024/01/02", f'parsing time "2024/01/02" as {LAYOUT}: cannot parse "/01/02" as "-"'),
    ("2024-1-02T03:04:05Z",
     f'parsing time "2024-1-02T03:04:05Z" as {LAYOUT}: cannot parse "1-02T03:04:05Z" as "01"'),
    ("2024-01-02T03:04:05",
     f'parsing time "2024-01-02T03:04:05" as {LAYOUT}: cannot parse "" as "Z07:00"'),
    ("2024-13-01T00:00:00Z", 'parsing time "2024-13-01T00:00:00Z": month out of range'),
    ("2023-02-29T00:00:00Z", 'parsing time "2023-02-29T00:00:00Z": day out of range'),
    ("2024-01-02T03:04:05Zx", 'parsing time "2024-01-02T03:04:05Zx": extra text: "x"'),
    ('"é', f'parsing time "\\"\\xc3\\xa9" as {LAYOUT}: cannot parse "\\"\\xc3\\xa9" as "2006"'),
])
def test_rfc3339_errors_are_go_s(value: str, error: str) -> None:
    with pytest.raises(GoTimeError) as refused:
        parse_rfc3339(value)
    assert str(refused.value) == error


def test_rfc3339_keeps_the_written_wall_clock() -> None:
    assert parse_rfc3339("2024-02-29T23:04:05.1234567+02:00") == \
        WallClock(2024, 2, 29, 23, 4, 5, 123456700, 7200)


def test_segment_paths_are_encoded_as_recordstore_does() -> None:
    when = parse_rfc3339("2024-01-02T03:04:05.000007Z")
    assert recordings.encode("./recordings/cam/%Y-%m-%d_%H-%M-%S-%f.mp4", when) == \
        "./recordings/cam/2024-01-02_03-04-05-000007.mp4"
    assert recordings.encode("%s", parse_rfc3339("1970-01-02T01:00:00+01:00")) == "86400"
    assert recordings.common_path("./recordings/%path/%Y-%m-%d") == "./recordings"
    assert recordings.common_path("%path/x") == ""


def test_deleting_a_segment_answers_go_s_errors(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    conf = Conf()
    conf.paths["all_others"] = {}
    with pytest.raises(ConfError, match=r"^remove \./recordings/cam/2024-01-02_03-04-05-"
                                        r"000000\.mp4: no such file or directory$"):
        recordings.delete_segment(conf, "cam", "2024-01-02T03:04:05Z")
    with pytest.raises(ConfError, match=r"^invalid path name: cannot be empty \(\)$"):
        recordings.delete_segment(conf, "", "2024-01-02T03:04:05Z")
    with pytest.raises(ConfError, match=r"^invalid 'start' parameter: parsing time \"\""):
        recordings.delete_segment(conf, "cam", "")
    segment = tmp_path / "recordings/cam/2024-01-02_03-04-05-000000.mp4"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b"")
    recordings.delete_segment(conf, "cam", "2024-01-02T03:04:05Z")
    assert not segment.exists()
    del conf.paths["all_others"]
    with pytest.raises(ConfError, match=r"^path 'cam' is not configured$"):
        recordings.delete_segment(conf, "cam", "2024-01-02T03:04:05Z")


def test_moq_certificate_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    log.set_level("info")
    moq.check_certificate("auto.key", "auto.crt")
    assert "WAR [MoQ] certificate auto.key not found, generating it from scratch\n" in \
        capsys.readouterr().out
    (tmp_path / "auto.key").write_text("k")
    (tmp_path / "auto.crt").write_text("c")
    moq.check_certificate("auto.key", "auto.crt")
    assert capsys.readouterr().out == ""
    with pytest.raises(OSError, match=r"^open server\.crt: no such file or directory$"):
        moq.check_certificate("server.key", "server.crt")
