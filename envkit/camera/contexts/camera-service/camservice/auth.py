"""JWT (HS256) validation and the viewer < operator < admin role ladder.

Tokens are minted by the test harness with the shared secret; the service only
validates them.  Roles are ordered so that a method declares its minimum role and
a single comparison decides access.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt

ROLES: dict[str, int] = {"viewer": 1, "operator": 2, "admin": 3}
PERMISSIONS: dict[str, list[str]] = {
    "viewer": ["view"],
    "operator": ["view", "control"],
    "admin": ["view", "control", "admin"],
}
REQUIRED_CLAIMS = ("user_id", "role", "iat", "exp")


class AuthError(Exception):
    """The token is missing, malformed, expired or carries an unknown role."""


@dataclass
class Session:
    """What an authenticated connection (or a single call) is allowed to do."""

    user_id: str
    role: str
    expires_at: float
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def expired(self) -> bool:
        """Sessions die with their token: an expired token must not keep access."""
        return time.time() >= self.expires_at

    def allows(self, minimum_role: str) -> bool:
        """True if this session's role is at least ``minimum_role``."""
        return ROLES[self.role] >= ROLES[minimum_role]

    def describe(self) -> dict[str, Any]:
        """The result of the ``authenticate`` method."""
        expires = datetime.fromtimestamp(self.expires_at, tz=UTC)
        return {
            "authenticated": True,
            "role": self.role,
            "permissions": list(PERMISSIONS[self.role]),
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
            "session_id": self.session_id,
        }


class Authenticator:
    """Validates tokens against the configured HS256 secret."""

    def __init__(self, secret: str, leeway: float = 5.0) -> None:
        self._secret = secret
        self._leeway = leeway

    def validate(self, token: Any) -> Session:
        """Return a new ``Session`` for ``token`` or raise ``AuthError`` saying why."""
        if not isinstance(token, str) or not token:
            raise AuthError("auth_token must be a non-empty string")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                leeway=self._leeway,
                options={"require": ["exp", "iat"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        missing = [name for name in REQUIRED_CLAIMS if name not in claims]
        if missing:
            raise AuthError(f"token lacks claims: {', '.join(missing)}")
        role = claims["role"]
        if role not in ROLES:
            raise AuthError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
        try:
            expires_at = float(claims["exp"])
        except (TypeError, ValueError):
            raise AuthError("exp claim is not a number") from None
        if expires_at <= time.time():
            # The leeway forgives clock skew on iat; a session born expired would be
            # reported as authenticated and then refuse every call.
            raise AuthError("token expired")
        return Session(user_id=str(claims["user_id"]), role=role, expires_at=expires_at)
