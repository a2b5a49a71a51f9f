"""The service itself, reached through the ephemeral ports envkit published."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from appclient import get_json, make_token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

POLICY_VIOLATION = 1008


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def test_health_runs_pypi_versions_newer_than_debian(envkit_stack: Any) -> None:
    status, body = get_json(envkit_stack.url("app", 8003, path="/health"))
    assert status == 200, body
    assert body["mediamtx"] == "reachable"  # found by its alias on the stack's network
    # bookworm ships websockets 10.4 and PyJWT 2.6: these came from service/requirements.txt.
    assert _version(body["websockets"]) >= (14, 0), body
    assert _version(body["jwt"]) >= (2, 8), body


def test_echo_with_a_valid_token(ws_url: str, jwt_secret: str) -> None:
    with connect(ws_url, open_timeout=10) as ws:
        ws.send(make_token(jwt_secret, sub="alice"))
        assert json.loads(ws.recv(timeout=10)) == {"authenticated": "alice"}
        for message in ("hello", "second message", b"\x00\x01binary"):
            ws.send(message)
            assert ws.recv(timeout=10) == message


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("not-a-jwt", id="garbage"),
        pytest.param(make_token("some-other-secret-of-enough-length-32b"), id="wrong-secret"),
    ],
)
def test_bad_token_is_refused(ws_url: str, token: str) -> None:
    with connect(ws_url, open_timeout=10) as ws:
        ws.send(token)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == POLICY_VIOLATION


def test_expired_token_is_refused(ws_url: str, jwt_secret: str) -> None:
    with connect(ws_url, open_timeout=10) as ws:
        ws.send(make_token(jwt_secret, ttl=-60))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == POLICY_VIOLATION
