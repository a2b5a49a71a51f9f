"""Hostile JSON-RPC frames against the camera service of the worker's default stack.

Issue 14, part 4: malformed, oversized and unauthenticated frames must get the JSON-RPC
2.0 error the spec names (-32700, -32600, -32601, -32602) or the contract's -32001, on a
connection that stays usable, and the service must stay ready and log no traceback.
Frames go through a raw WebSocket (``websockets``), not ``envkit.camera.rpc``, because
that client can only send well-formed requests.

An answer's absence is proven without waiting out a timeout: after each frame a
*sentinel* request follows on the same connection, and the service answers frames in
order, so whatever arrives before the sentinel's answer was the frame's answer.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from typing import Any

import camera_checks as cc
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.warnings import InsecureKeyLengthWarning
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from envkit import Stack, camera
from envkit.camera.auth import JWT_SECRET_ENV, mint_token
from envkit.camera.stack import SERVICE

PARSE, INVALID, NO_METHOD, BAD_PARAMS, INTERNAL = -32700, -32600, -32601, -32602, -32603
AUTH, RATE, DENIED = -32001, -32002, -32003
MAX_FRAME = 1 << 20  # camservice.rpc.MAX_FRAME, documented in the service's README
PROPERTY_EXAMPLES = 300
_sentinels = iter(range(10**9))


@pytest.fixture
def stack(envkit_stack: Stack) -> Iterator[Stack]:
    """The worker's default stack; after the test it must be ready, unrestarted, quiet."""
    service = envkit_stack.container(SERVICE)
    service.reload()
    started = service.attrs["State"]["StartedAt"]
    since = int(time.time()) - 1
    yield envkit_stack
    assert cc.http_json(camera.health_url(envkit_stack))[0] == 200, "/health/ready is not 200"
    service.reload()
    assert service.attrs["State"]["StartedAt"] == started, "the camera service restarted"
    logs = service.logs(since=since).decode(errors="replace")
    assert "Traceback" not in logs, logs[-3000:]


def secret(stack: Stack) -> str:
    return str(stack.spec.service(SERVICE).environment[JWT_SECRET_ENV])


def raw(stack: Stack) -> ClientConnection:
    """A bare WebSocket to the service; ``max_size=None`` so no answer is refused here."""
    return connect(camera.ws_url(stack), open_timeout=10, max_size=None)


def exchange(ws: ClientConnection, frame: str | bytes, *, binary: bool = False) -> list[Any]:
    """Send *frame*, then a sentinel; return the decoded answers that came before it."""
    ws.send(frame, text=not binary if isinstance(frame, bytes) else None)
    sentinel = f"sentinel-{next(_sentinels)}"
    ws.send(json.dumps({"jsonrpc": "2.0", "id": sentinel, "method": "ping"}))
    answers: list[Any] = []
    while True:
        message = json.loads(ws.recv(timeout=30))
        if isinstance(message, dict) and message.get("id") == sentinel:
            return answers
        answers.append(message)


def one_error(ws: ClientConnection, frame: str | bytes, **kw: bool) -> tuple[int, Any]:
    """The (code, id) of the single error answer *frame* gets."""
    answers = exchange(ws, frame, **kw)
    assert len(answers) == 1, (frame[:200], answers)
    answer = answers[0]
    assert answer["jsonrpc"] == "2.0" and "result" not in answer, answer
    return answer["error"]["code"], answer["id"]


def request(**members: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", **members})


PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
DEEP = 5000  # past CPython's json recursion limit (~1000 levels)

#: (what, frame, code, id of the answer): each must get exactly that error.
ERRORS: list[tuple[str, str | bytes, int, Any]] = [
    ("truncated object", '{"jsonrpc": "2.0", "id": 1, "method": "ping"', PARSE, None),
    ("empty frame", "", PARSE, None),
    ("blank frame", " \n\t", PARSE, None),
    ("single quotes", "{'jsonrpc': '2.0', 'id': 1, 'method': 'ping'}", PARSE, None),
    ("trailing garbage", request(id=1, method="ping") + "}", PARSE, None),
    ("NaN id", '{"jsonrpc": "2.0", "id": NaN, "method": "ping"}', PARSE, None),
    ("Infinity id", '{"jsonrpc": "2.0", "id": -Infinity, "method": "ping"}', PARSE, None),
    ("1e400 id", '{"jsonrpc": "2.0", "id": 1e400, "method": "ping"}', PARSE, None),
    ("deep arrays", '{"jsonrpc":"2.0","id":1,"method":"ping","params":'
     + "[" * DEEP + "]" * DEEP + "}", PARSE, None),
    ("deep objects", '{"jsonrpc":"2.0","id":1,"method":"ping","params":'
     + '{"a":' * DEEP + "1" + "}" * DEEP + "}", PARSE, None),
    ("null", "null", INVALID, None),
    ("number", "42", INVALID, None),
    ("string", '"ping"', INVALID, None),
    ("boolean", "true", INVALID, None),
    ("empty object", "{}", INVALID, None),
    ("empty batch", "[]", INVALID, None),
    ("batch over 50", json.dumps([PING] * 51), INVALID, None),
    ("jsonrpc 1.0", request(id=7, method="ping").replace('"2.0"', '"1.0"'), INVALID, 7),
    ("jsonrpc number", json.dumps({**PING, "jsonrpc": 2.0}), INVALID, 1),
    ("no jsonrpc", json.dumps({"id": 3, "method": "ping"}), INVALID, 3),
    ("no jsonrpc, no id", json.dumps({"method": "ping"}), INVALID, None),
    ("no method", request(id=4), INVALID, 4),
    ("method number", request(id=5, method=5), INVALID, 5),
    ("method empty", request(id=6, method=""), INVALID, 6),
    ("method null, no id", request(method=None), INVALID, None),
    ("id object", request(id={"a": 1}, method="ping"), INVALID, None),
    ("id array", request(id=[1], method="ping"), INVALID, None),
    ("id true", request(id=True, method="ping"), INVALID, None),
    ("params number", request(id=8, method="ping", params=5), INVALID, 8),
    ("params string", request(id=9, method="ping", params="x"), INVALID, 9),
    ("params null", request(id=10, method="ping", params=None), INVALID, 10),
    ("params number, no id", request(method="ping", params=5), INVALID, None),
    ("unknown method", request(id=11, method="no_such_method"), NO_METHOD, 11),
    ("reserved rpc. method", request(id="r", method="rpc.discover"), NO_METHOD, "r"),
    ("method case", request(id=12, method="PING"), NO_METHOD, 12),
    ("array params", request(id=13, method="ping", params=[1]), BAD_PARAMS, 13),
    ("empty array params", request(id=14, method="get_camera_list", params=[]), BAD_PARAMS, 14),
    ("no auth", request(id=15, method="get_camera_list"), AUTH, 15),
    ("no auth, null id", request(id=None, method="ping"), AUTH, None),
    ("no auth, operator method", request(id=16, method="take_snapshot",
                                         params={"device": "/dev/video0"}), AUTH, 16),
]


def test_each_malformed_frame_gets_its_spec_error_on_one_surviving_connection(
    stack: Stack,
) -> None:
    wrong = []
    with raw(stack) as ws:
        for what, frame, code, req_id in ERRORS:
            got = one_error(ws, frame)
            if got != (code, req_id):
                wrong.append(f"{what}: expected {(code, req_id)}, got {got}")
        # The same connection still authenticates and serves.
        authed = exchange(ws, request(id="a", method="authenticate",
                                      params={"auth_token": camera.token(stack, "viewer")}))
        assert authed[0]["result"]["authenticated"] is True, authed
        assert exchange(ws, request(id="p", method="ping"))[0]["result"] == "pong"
    assert not wrong, "\n".join(wrong)


def test_notifications_get_no_answer_even_when_they_fail(stack: Stack) -> None:
    with raw(stack) as ws:
        for frame in (request(method="no_such_method"), request(method="get_camera_list"),
                      request(method="ping", params=[1]),
                      json.dumps([{"jsonrpc": "2.0", "method": "ping"}] * 3)):
            assert exchange(ws, frame) == [], frame


def test_batches_answer_each_request_in_order_and_leave_out_notifications(
    stack: Stack,
) -> None:
    token = camera.token(stack, "viewer")
    mixed = [
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"auth_token": token}},
        {"jsonrpc": "2.0", "method": "ping"},  # a notification: no answer
        5,
        {"jsonrpc": "2.0", "id": 2, "method": "no_such_method"},
        {"jsonrpc": "1.0", "id": 3, "method": "ping"},
        {"jsonrpc": "2.0", "id": 4, "method": "get_camera_list"},  # no session yet
        [],
    ]
    with raw(stack) as ws:
        (batch,) = exchange(ws, json.dumps(mixed))
        assert [a["id"] for a in batch] == [1, None, 2, 3, 4, None], batch
        assert batch[0]["result"] == "pong"
        assert [a["error"]["code"] for a in batch[1:]] == [INVALID, NO_METHOD, INVALID, AUTH,
                                                           INVALID], batch
        (junk,) = exchange(ws, "[1, 2, 3]")
        assert [(a["id"], a["error"]["code"]) for a in junk] == [(None, INVALID)] * 3
        (full,) = exchange(ws, json.dumps([{**PING, "id": i} for i in range(50)]))
        assert [a["id"] for a in full] == list(range(50))


def test_binary_frames_are_read_as_json_and_bad_utf8_text_closes_with_1007(
    stack: Stack,
) -> None:
    with raw(stack) as ws:
        (answer,) = exchange(ws, request(id=1, method="no_such_method").encode(), binary=True)
        assert answer["error"]["code"] == NO_METHOD
        for junk in (b"\xff\xfe\x00", b"\x00" * 64, bytes(range(256))):
            assert one_error(ws, junk, binary=True) == (PARSE, None)
        with pytest.raises(ConnectionClosed) as closed:
            ws.send(b'{"jsonrpc": "2.0", "id": 1, "method": "\xff"}', text=True)
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007, closed.value


def test_frames_up_to_the_cap_are_served_and_bigger_ones_close_with_1009(
    stack: Stack,
) -> None:
    token = camera.token(stack, "viewer")
    head = request(id=1, method="ping", params={"auth_token": token, "pad": ""})
    pad = MAX_FRAME - len(head.encode())
    with raw(stack) as ws:
        (answer,) = exchange(ws, head.replace('"pad": ""', f'"pad": "{"x" * pad}"'))
        assert answer["result"] == "pong", answer  # exactly MAX_FRAME bytes: served
    for size in (MAX_FRAME + 1, 8 * MAX_FRAME):
        with raw(stack) as ws, pytest.raises(ConnectionClosed) as closed:
            # The service may close before the client has sent it all: either call raises.
            ws.send(head.replace('"pad": ""', f'"pad": "{"x" * (size - len(head))}"'))
            ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value
    with raw(stack) as ws:  # a new connection is served as before
        assert one_error(ws, request(id=2, method="ping")) == (AUTH, 2)


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"user_id": "mallory", "role": "admin", "iat": now, "exp": now + 600, **changes}
    return {k: v for k, v in claims.items() if v is not None}


def bad_tokens(stack: Stack) -> dict[str, Any]:
    """Tokens that must all be refused with -32001, by what is wrong with them."""
    key = secret(stack)
    now = int(time.time())
    return {
        "not a string": 12345,
        "empty": "",
        "garbage": "not-a-jwt",
        "three junk segments": "a.b.c",
        "wrong secret": jwt.encode(_claims(), "x" * 43, algorithm="HS256"),
        "alg none": jwt.encode(_claims(), None, algorithm="none"),
        "alg none, signature kept": jwt.encode(_claims(), None, algorithm="none")
        + mint_token(key, "admin").rsplit(".", 1)[1],
        "HS512 with the right secret": _hs512(key),
        "expired an hour ago": jwt.encode(_claims(exp=now - 3600), key, algorithm="HS256"),
        "expired 2 s ago (inside the leeway)": jwt.encode(_claims(exp=now - 2), key,
                                                          algorithm="HS256"),
        "no exp": jwt.encode(_claims(exp=None), key, algorithm="HS256"),
        "no role": jwt.encode(_claims(role=None), key, algorithm="HS256"),
        "unknown role": jwt.encode(_claims(role="root"), key, algorithm="HS256"),
        "issued in an hour": jwt.encode(_claims(iat=now + 3600), key, algorithm="HS256"),
        "payload tampered": _tampered(mint_token(key, "viewer")),
    }


def _hs512(key: str) -> str:
    """Right secret, algorithm the service does not allow (PyJWT warns: the key is short)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(_claims(), key, algorithm="HS512")


def _tampered(token: str) -> str:
    """The viewer token with its payload rewritten to admin, signature left as it was."""
    head, _, sig = token.split(".")
    forged = jwt.encode(_claims(), "irrelevant" * 4, algorithm="HS256").split(".")[1]
    return f"{head}.{forged}.{sig}"


def test_bad_tokens_get_32001_and_leave_the_connection_unauthenticated(stack: Stack) -> None:
    wrong = []
    with raw(stack) as ws:
        for what, token in bad_tokens(stack).items():
            via_login = one_error(ws, request(id=1, method="authenticate",
                                              params={"auth_token": token}))
            per_call = one_error(ws, request(id=2, method="get_camera_list",
                                             params={"auth_token": token}))
            after = one_error(ws, request(id=3, method="get_camera_list"))
            if (via_login, per_call, after) != ((AUTH, 1), (AUTH, 2), (AUTH, 3)):
                wrong.append(f"{what}: {via_login}, {per_call}, {after}")
        authed = exchange(ws, request(id=4, method="authenticate",
                                      params={"auth_token": camera.token(stack, "operator")}))
        assert authed[0]["result"]["role"] == "operator", authed
    assert not wrong, "\n".join(wrong)


def test_a_bound_session_ends_when_its_token_expires(stack: Stack) -> None:
    token = mint_token(secret(stack), "admin", ttl=2)
    with raw(stack) as ws:
        (authed,) = exchange(ws, request(id=1, method="authenticate",
                                         params={"auth_token": token}))
        expires = authed["result"]["expires_at"]
        (pong,) = exchange(ws, request(id=2, method="ping"))
        assert pong.get("result") == "pong", (pong, expires)
        time.sleep(3.1)
        (late,) = exchange(ws, request(id=3, method="ping"))
        assert late["error"]["code"] == AUTH and "expired" in late["error"]["message"], late


# -- property: any frame ---------------------------------------------------------------

METHODS = ["ping", "authenticate", "get_camera_list", "get_camera_status", "get_streams",
           "take_snapshot", "start_recording", "stop_recording", "rpc.x", ""]
SCALARS = (st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=16))
VALUES = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                      | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
PARAMS = st.dictionaries(st.sampled_from(["device", "filename", "duration", "auth_token"]),
                         VALUES, max_size=3) | VALUES
ENVELOPES = st.fixed_dictionaries({}, optional={
    "jsonrpc": st.sampled_from(["2.0", "1.0", ""]) | VALUES,
    "id": st.integers() | st.text(max_size=8) | VALUES,
    "method": st.sampled_from(METHODS) | VALUES,
    "params": PARAMS,
})
NOTIFICATIONS = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0"), "method": st.sampled_from(METHODS[:-1]) | st.text(min_size=1)},
    optional={"params": PARAMS.filter(lambda p: isinstance(p, (dict, list)))})
FRAMES = st.one_of(
    st.tuples(st.just("notification"), NOTIFICATIONS.map(json.dumps)),
    st.tuples(st.just("envelope"), ENVELOPES.map(json.dumps)),
    st.tuples(st.just("batch"), st.lists(ENVELOPES | VALUES, max_size=5).map(json.dumps)),
    st.tuples(st.just("json value"), VALUES.map(json.dumps)),
    st.tuples(st.just("text"), st.text(max_size=200)),
    st.tuples(st.just("binary"), st.binary(max_size=200)),
)


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


def expected_answers(frame: str | bytes) -> int:
    """How many answer frames the spec wants for *frame*: 0 only for notifications."""
    try:
        message = json.loads(frame, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError):
        return 1
    if isinstance(message, list):
        return int(not message or len(message) > 50 or not all(map(_notification, message)))
    return int(not _notification(message))


def _notification(item: Any) -> bool:
    """A well-formed request without ``id``: the one thing that is never answered."""
    return (isinstance(item, dict) and "id" not in item and item.get("jsonrpc") == "2.0"
            and isinstance(item.get("method"), str) and item["method"] != ""
            and isinstance(item.get("params", {}), (dict, list)))


def _check_response(answer: Any) -> int:
    assert isinstance(answer, dict) and answer.get("jsonrpc") == "2.0" and "id" in answer
    assert ("result" in answer) != ("error" in answer), answer
    if "result" in answer:
        return 0
    code = int(answer["error"]["code"])
    # Unauthenticated throughout: no -32603 (a bug) and no -32003 (a role was granted).
    assert code in (PARSE, INVALID, NO_METHOD, BAD_PARAMS, AUTH, RATE), answer
    return code


def test_any_frame_gets_a_spec_answer_or_none_for_notifications(stack: Stack) -> None:
    """Property over arbitrary frames (fixed count, derandomized): see ``FRAMES``."""
    kinds: dict[str, int] = {}
    codes: dict[int, int] = {}
    silent = [0]
    with raw(stack) as ws:

        @settings(max_examples=PROPERTY_EXAMPLES, derandomize=True, database=None,
                  deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(FRAMES)
        def one_frame(case: tuple[str, str | bytes]) -> None:
            kind, frame = case
            kinds[kind] = kinds.get(kind, 0) + 1
            answers = exchange(ws, frame, binary=kind == "binary")
            assert len(answers) == expected_answers(frame), (frame, answers)
            silent[0] += not answers
            for answer in answers:
                for item in answer if isinstance(answer, list) else [answer]:
                    code = _check_response(item)
                    codes[code] = codes.get(code, 0) + 1

        one_frame()
    print(f"frames tried: {sum(kinds.values())} {kinds}; unanswered: {silent[0]}; "
          f"error codes: {codes}")
    assert sum(kinds.values()) >= PROPERTY_EXAMPLES // 2, kinds
