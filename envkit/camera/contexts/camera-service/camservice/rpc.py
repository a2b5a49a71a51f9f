"""JSON-RPC 2.0 framing, error codes, per-connection auth and rate limiting.

Kept apart from the methods so that protocol rules (what is a valid request, when
to answer at all, which error code applies) are decided in one place.  Batches are
answered as JSON-RPC 2.0 says (an empty one with one -32600, at most
MAX_BATCH requests); frames are capped at MAX_FRAME bytes by the WebSocket server.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .auth import Authenticator, AuthError, Session

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
AUTH_REQUIRED = -32001
RATE_LIMITED = -32002
PERMISSION_DENIED = -32003

#: Largest frame the WebSocket server takes; a bigger one closes the connection with 1009.
MAX_FRAME = 1 << 20
#: Most requests in one batch: each one may start FFmpeg, so a batch must stay small.
MAX_BATCH = 50


class RpcError(Exception):
    """An error answer; ``data`` is optional structured detail."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` member of a response."""
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


class TokenBucket:
    """Generous per-connection limiter: it exists to stop runaway loops, not users."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.capacity = float(max(burst, 1))
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        """Consume one token if available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


Handler = Callable[["CallContext", dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    """A registered method and the minimum role it needs (None: no auth needed)."""

    handler: Handler
    role: str | None


@dataclass
class CallContext:
    """What a method handler may know about the caller."""

    connection: Connection
    session: Session | None


class Connection:
    """Per-WebSocket state: the bound session and the rate limiter."""

    def __init__(self, remote: str, rate: float, burst: int) -> None:
        self.remote = remote
        self.session: Session | None = None
        self.bucket = TokenBucket(rate, burst)

    @property
    def authenticated(self) -> bool:
        """Notifications go only to connections with a live session."""
        return self.session is not None and not self.session.expired


class Dispatcher:
    """Turns one text frame into zero or one response text frames."""

    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth
        self.methods: dict[str, Method] = {}

    def register(self, name: str, handler: Handler, role: str | None) -> None:
        """Add a method; ``role`` is the minimum role, None for unauthenticated."""
        self.methods[name] = Method(handler, role)

    async def handle_text(self, conn: Connection, text: str | bytes) -> str | None:
        """Process one frame (a request or a batch); returns the reply or None.

        Never raises: whatever the frame holds, the connection stays usable.
        """
        try:
            message = _parse(text)
        except RpcError as err:
            return _dump(_response(None, error=err))
        if not isinstance(message, list):
            reply = await self._handle_one(conn, message)
            return None if reply is None else _dump(reply)
        if not message:
            empty = RpcError(INVALID_REQUEST, "Invalid Request: empty batch")
            return _dump(_response(None, error=empty))
        if len(message) > MAX_BATCH:
            too_many = RpcError(
                INVALID_REQUEST, f"Invalid Request: batch of {len(message)} > {MAX_BATCH} requests"
            )
            return _dump(_response(None, error=too_many))
        replies = [reply for item in message if (reply := await self._handle_one(conn, item))]
        # A batch of notifications only gets no answer at all (JSON-RPC 2.0, section 6).
        return _dump(replies) if replies else None

    async def _handle_one(self, conn: Connection, message: Any) -> dict[str, Any] | None:
        """One request of a frame or batch: its response object, None for a notification.

        Errors in the envelope are answered even without ``id`` (with ``id: null``): the
        sender cannot have meant a notification it did not manage to write.
        """
        if not isinstance(message, dict):
            not_object = RpcError(INVALID_REQUEST, "Invalid Request: not an object")
            return _response(None, error=not_object)
        has_id = "id" in message
        req_id = message.get("id")
        if has_id and not _valid_id(req_id):
            bad_id = RpcError(INVALID_REQUEST, "Invalid Request: id must be string, number or null")
            return _response(None, error=bad_id)
        try:
            name, params = _request_parts(message)
        except RpcError as err:
            return _response(req_id, error=err)
        try:
            result = await self._call(conn, name, params)
        except RpcError as err:
            return _response(req_id, error=err) if has_id else None
        except Exception as exc:
            log.exception("method %r failed", name)
            internal = RpcError(
                INTERNAL_ERROR, "Internal error", {"reason": f"{type(exc).__name__}: {exc}"}
            )
            return _response(req_id, error=internal) if has_id else None
        return _response(req_id, result=result) if has_id else None

    async def _call(self, conn: Connection, name: str, params: dict[str, Any] | list[Any]) -> Any:
        if isinstance(params, list):
            # A valid envelope, so a notification carrying it still gets no answer.
            raise RpcError(INVALID_PARAMS, "Invalid params: methods take params by name")
        # Malformed requests cost nothing; anything that names a method spends a token.
        if not conn.bucket.take():
            retry = round(1.0 / conn.bucket.rate, 3)
            raise RpcError(RATE_LIMITED, "Rate limit exceeded", {"retry_after": retry})
        method = self.methods.get(name)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {name}")
        params = dict(params)
        session = self._session_for(conn, name, params)
        if method.role is not None:
            _authorize(session, name, method.role)
        return await method.handler(CallContext(conn, session), params)

    def _session_for(self, conn: Connection, name: str, params: dict[str, Any]) -> Session | None:
        """The caller's session: the connection's, or one from a per-call ``auth_token``.

        Pops ``auth_token`` from ``params`` so handlers never see credentials, except
        ``authenticate``, whose whole input it is.
        """
        token = params.pop("auth_token", None)
        if token is None:
            return conn.session
        if name == "authenticate":
            params["auth_token"] = token
            return conn.session
        try:
            return self.auth.validate(token)
        except AuthError as exc:
            raise RpcError(AUTH_REQUIRED, f"Authentication failed: {exc}") from None


def _parse(text: str | bytes) -> Any:
    """Decode one frame; binary frames are taken as UTF-8 JSON too.

    :raises RpcError: PARSE_ERROR for what is not JSON, for NaN and infinite numbers
        (no JSON text can carry them back) and for nesting deeper than the parser's
        recursion limit (about 1000 levels; the frame itself is at most 1 MiB).
    """
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise RpcError(PARSE_ERROR, "Parse error: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RpcError(PARSE_ERROR, f"Parse error: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _valid_id(req_id: Any) -> bool:
    scalar = isinstance(req_id, (str, int, float)) and not isinstance(req_id, bool)
    return req_id is None or scalar


def _request_parts(message: dict[str, Any]) -> tuple[str, dict[str, Any] | list[Any]]:
    """Check the envelope of a request and return its method name and params.

    :raises RpcError: INVALID_REQUEST when ``jsonrpc``, ``method`` or ``params`` is not
        of the spec's type.
    """
    if message.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"')
    name = message.get("method")
    if not isinstance(name, str) or not name:
        raise RpcError(INVALID_REQUEST, "Invalid Request: method must be a non-empty string")
    params = message.get("params", {})
    if not isinstance(params, (dict, list)):
        raise RpcError(INVALID_REQUEST, "Invalid Request: params must be an object or an array")
    return name, params


def _authorize(session: Session | None, name: str, role: str) -> None:
    """Refuse a call to ``name`` unless ``session`` is live and has at least ``role``."""
    if session is None:
        raise RpcError(AUTH_REQUIRED, "Authentication required")
    if session.expired:
        raise RpcError(AUTH_REQUIRED, "Authentication failed: token expired")
    if not session.allows(role):
        raise RpcError(
            PERMISSION_DENIED,
            f"Insufficient permissions: {name} needs role {role}",
            {"required_role": role, "role": session.role},
        )


def _response(req_id: Any, result: Any = None, error: RpcError | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": req_id}
    if error is not None:
        body["error"] = error.to_dict()
    else:
        body["result"] = result
    return body


def _dump(reply: dict[str, Any] | list[dict[str, Any]]) -> str:
    return json.dumps(reply)


def notification(method: str, params: dict[str, Any]) -> str:
    """A server-to-client notification frame (no ``id``)."""
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params})
