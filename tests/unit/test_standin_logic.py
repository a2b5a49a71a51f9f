"""Pure logic of the MediaMTX stand-in: Go rendering, SPS parsing, config validation.

The stand-in's package runs in its image, not in the dev venv; its modules without
aiohttp are imported here by path.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

import pytest

CONTEXT = Path(__file__).resolve().parents[2] / "envkit/camera/contexts/mediamtx-standin"
sys.path.insert(0, str(CONTEXT))

from mtxstandin import config, gofmt, web  # noqa: E402
from mtxstandin.config import Conf, ConfError, check_path_name, load  # noqa: E402
from mtxstandin.h264 import parse_sps, sps_from_fmtp, sps_in_rtp  # noqa: E402
from mtxstandin.httpbase import make_app  # noqa: E402
from mtxstandin.rtsp_proto import parse_transport  # noqa: E402
from mtxstandin.udp import MulticastGroups  # noqa: E402

# SPSs written by libx264: testsrc 320x240 (High 4:4:4 Predictive, 1.2), 720p main.
SPS_444 = bytes.fromhex("67f4000c91968141fb0110000003001000000301e8f142aa")
SPS_MAIN_720P = bytes.fromhex("674d401feca02802dd8088000003000800000301e078c18cb0")


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (10, "10s"), (60, "1m0s"), (3600, "1h0m0s"), (86400, "24h0m0s"),
    (90.5, "1m30.5s"), (0.2, "200ms"), (0.0015, "1.5ms"),
])
def test_durations_render_as_go(seconds: float, text: str) -> None:
    assert gofmt.duration(seconds) == text


def test_timestamps_have_nanoseconds_trimmed() -> None:
    assert gofmt.timestamp(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert gofmt.timestamp(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert gofmt.timestamp(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_json_is_compact_and_escaped_as_go() -> None:
    assert gofmt.dumps({"a": "<&>", "b": [1.0, 0.5], "c": "é"}) == \
        '{"a":"\\u003c\\u0026\\u003e","b":[1,0.5],"c":"é"}'


@pytest.mark.parametrize(("text", "error"), [
    ("notauuid", "invalid UUID length: 8"),
    ("x" * 36, "invalid UUID format"),
])
def test_uuid_errors_are_google_uuid_texts(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=f"^{error}$"):
        gofmt.parse_uuid(text)
    canonical = "0a1b2c3d-0000-4000-8000-00000000000f"
    assert gofmt.parse_uuid(canonical.upper()) == canonical


def test_sps_gives_upstream_codec_props() -> None:
    props = parse_sps(SPS_444).codec_props()
    assert props == {"width": 320, "height": 240, "profile": "High 4:4:4 Predictive",
                     "level": "1.2"}
    main = parse_sps(SPS_MAIN_720P).codec_props()
    assert main == {"width": 1280, "height": 720, "profile": "Main", "level": "3.1"}
    fmtp = ("packetization-mode=1; sprop-parameter-sets="
            f"{base64.b64encode(SPS_444).decode()},aMuMsiw=; profile-level-id=F4000C")
    found = sps_from_fmtp(fmtp)
    assert found is not None and found.width == 320


def test_sps_found_in_rtp_stap_a() -> None:
    header = bytes([0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1])
    stap = bytes([24]) + len(SPS_444).to_bytes(2, "big") + SPS_444
    assert sps_in_rtp(header + stap) == SPS_444
    assert sps_in_rtp(header + bytes([0x65, 0x88])) is None


@pytest.mark.parametrize(("name", "error"), [
    ("bad name", "invalid path name 'bad name': can contain only alphanumeric characters, "
                 "underscore, dot, minus, slash"),
    ("/x", "invalid path name '/x': can't begin with a slash"),
    ("~(", "invalid regular expression: ("),
])
def test_path_names_refused_with_upstream_text(name: str, error: str) -> None:
    with pytest.raises(ConfError) as info:
        check_path_name(name)
    assert str(info.value) == error


@pytest.mark.parametrize(("change", "error"), [
    ({"source": "bogus://x"}, "invalid source: 'bogus://x'"),
    ({"recordPath": "./x"}, "'recordPath' must contain %path"),
])
def test_path_values_refused_with_upstream_text(change: dict[str, str], error: str) -> None:
    conf = Conf()
    conf.paths["cam"] = change
    with pytest.raises(ConfError) as info:
        conf.validate()
    assert str(info.value) == error


def test_log_level_and_regex_hook_texts() -> None:
    conf = Conf()
    conf.global_values["logLevel"] = "nosuch"
    with pytest.raises(ConfError, match=r"^invalid log level: 'nosuch'$"):
        conf.validate()
    conf = Conf()
    conf.paths["all_others"] = {"runOnInit": "true"}
    with pytest.raises(ConfError, match=r"\(or path 'all_others'\)"):
        conf.validate()


def test_file_without_auth_http_exclude_reports_empty(tmp_path: Path) -> None:
    conf_file = tmp_path / "mediamtx.yml"
    conf_file.write_text("hlsMuxerCloseAfter: 90s\npaths:\n  cam:\n", encoding="utf-8")
    conf, _ = load(str(conf_file), environ={"MTX_PATHS_CAM_RUNONDEMANDCLOSEAFTER": "120s"})
    assert conf.global_values["authHTTPExclude"] == []
    assert conf.global_values["hlsMuxerCloseAfter"] == "1m30s"
    assert conf.paths["cam"]["runOnDemandCloseAfter"] == "2m0s"
    assert conf.path_defaults["recordSegmentDuration"] == "1h0m0s"


def test_transport_header_names_udp_client_ports_and_kind() -> None:
    udp = parse_transport("RTP/AVP/UDP;unicast;client_port=5000-5001;mode=record")
    assert (udp.kind, udp.client_ports, udp.record) == ("UDP", (5000, 5001), True)
    assert parse_transport("RTP/AVP;multicast").kind == "UDP-multicast"
    tcp = parse_transport("RTP/AVP/TCP;unicast;interleaved=0-1")
    assert (tcp.kind, tcp.interleaved, tcp.client_ports) == ("TCP", (0, 1), None)


def test_multicast_groups_come_from_the_range_and_are_sent_once() -> None:
    groups = MulticastGroups("224.1.0.0/16", 8002, 8003)
    assert groups.group("cam", 0) == "224.1.0.1"
    assert groups.group("cam", 1) == "224.1.0.2"
    assert groups.group("cam", 0) == "224.1.0.1"
    packet = b"\x80" + bytes(20)
    try:
        assert groups.send("224.1.0.1", False, packet) == len(packet)
        # The same packet fanned out to a second multicast reader is not sent again.
        assert groups.send("224.1.0.1", False, packet) == 0
    finally:
        groups.close()


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v3/paths/get/a%20b/c", 200), ("HEAD", "/v3/paths/get/x", 404),
    ("GET", "/v3/rtspsessions/get/one/two", 404), ("GET", "/nothing", 404),
    ("POST", "/v3/paths/get/x", 404),
])
def test_http_router_matches_like_aiohttp_and_answers_like_gin(method: str, path: str,
                                                               status: int) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=repr(request.match_info))

    app = make_app(lambda: ["*"])
    app.router.add_get("/v3/paths/get/{name:.*}", echo, allow_head=False)
    app.router.add_get("/v3/rtspsessions/get/{id}", echo, allow_head=False)
    request = web.Request(method, path, web.Headers(), b"", "127.0.0.1")
    response = asyncio.run(app.handle(request))
    assert (response.status, response.headers["Server"]) == (status, "mediamtx")
    if status == 200:
        assert response.body == b"{'name': 'a b/c'}"
    else:
        assert response.body == b"404 page not found"


def test_the_shipped_configuration_is_read_from_the_build_cache(tmp_path: Path,
                                                               monkeypatch) -> None:
    text = (CONTEXT / "mediamtx.yml").read_text(encoding="utf-8")
    monkeypatch.setattr(config, "CACHE", str(tmp_path / "cache.json"))
    config.write_cache(str(CONTEXT / "mediamtx.yml"))
    assert config.parse_file(text) == config._yaml(text)
    # A file differing from the cached one is parsed as YAML (the cache is not used).
    monkeypatch.setattr(config, "_yaml", lambda t: {"parsed": t})
    assert config.parse_file(text) != {"parsed": text}
    assert config.parse_file(text + "\n") == {"parsed": text + "\n"}
