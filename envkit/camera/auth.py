"""JWTs for a stack's camera service, minted with the secret the stack was given.

Each stack gets a fresh random secret (there is no built-in one), so tokens of one
worker's stack are worthless against another's.
"""

from __future__ import annotations

import secrets
import time

import jwt

from envkit.errors import EnvkitError

JWT_SECRET_ENV = "CAMERA_SERVICE_JWT_SECRET"
ROLES = ("viewer", "operator", "admin")


def new_secret() -> str:
    """A random HS256 secret for one stack."""
    return secrets.token_urlsafe(32)


def mint_token(secret: str, role: str, *, ttl: float = 3600.0, user_id: str = "envkit") -> str:
    """An HS256 JWT with the contract's claims ``user_id``, ``role``, ``iat``, ``exp``.

    :raises EnvkitError: for a role outside viewer, operator, admin.
    """
    if role not in ROLES:
        raise EnvkitError(f"unknown role {role!r}", fix=f"use one of {', '.join(ROLES)}")
    now = int(time.time())
    claims = {"user_id": user_id, "role": role, "iat": now, "exp": now + int(ttl)}
    return jwt.encode(claims, secret, algorithm="HS256")


def secret_from_env(env: list[str] | None) -> str | None:
    """The JWT secret in a container's ``Config.Env`` list, if it has one."""
    prefix = f"{JWT_SECRET_ENV}="
    for entry in env or []:
        if entry.startswith(prefix):
            return entry[len(prefix):]
    return None
