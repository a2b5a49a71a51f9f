"""JSON-RPC 2.0 framing, error codes, per-connection auth and rate limiting.

Kept apart from the methods so that protocol rules (what is a valid request, when
to answer at all, which error code applies) are decided in one place.  Batches are
not supported: a JSON array is answered with -32600.
"""

from __future__ import annotations

import json
import logging
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
        """Process one message; returns the response or None for notifications."""
        try:
            message = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            return _encode(None, error=RpcError(PARSE_ERROR, f"Parse error: {exc}"))
        if not isinstance(message, dict):
            kind = "not an object"
            if isinstance(message, list):
                kind = "batch requests are not supported"
            return _encode(None, error=RpcError(INVALID_REQUEST, f"Invalid Request: {kind}"))
        req_id = message.get("id")
        has_id = "id" in message
        valid_id = req_id is None or (
            isinstance(req_id, (str, int, float)) and not isinstance(req_id, bool)
        )
        if has_id and not valid_id:
            return _encode(None, error=RpcError(INVALID_REQUEST, "Invalid Request: bad id"))
        try:
            result = await self._call(conn, message)
        except RpcError as err:
            return _encode(req_id, error=err) if has_id else None
        except Exception as exc:
            log.exception("method %r failed", message.get("method"))
            internal = RpcError(
                INTERNAL_ERROR, "Internal error", {"reason": f"{type(exc).__name__}: {exc}"}
            )
            return _encode(req_id, error=internal) if has_id else None
        return _encode(req_id, result=result) if has_id else None

    async def _call(self, conn: Connection, message: dict[str, Any]) -> Any:
        name, params = _request_parts(message)
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


def _request_parts(message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check the envelope of a request and return its method name and params.

    :raises RpcError: INVALID_REQUEST or INVALID_PARAMS saying which member is wrong.
    """
    if message.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"')
    name = message.get("method")
    if not isinstance(name, str) or not name:
        raise RpcError(INVALID_REQUEST, "Invalid Request: method must be a non-empty string")
    params = message.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: params must be an object")
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


def _encode(req_id: Any, result: Any = None, error: RpcError | None = None) -> str:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": req_id}
    if error is not None:
        body["error"] = error.to_dict()
    else:
        body["result"] = result
    return json.dumps(body)


def notification(method: str, params: dict[str, Any]) -> str:
    """A server-to-client notification frame (no ``id``)."""
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params})
