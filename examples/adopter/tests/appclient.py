"""The team's client helpers: tokens as its clients mint them, JSON over HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import jwt


def make_token(secret: str, sub: str = "tester", ttl: float = 300.0) -> str:
    """An HS256 JWT for the app, valid for *ttl* seconds (negative: already expired)."""
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + int(ttl)}, secret, algorithm="HS256")


def get_json(url: str) -> tuple[int, Any]:
    """GET *url*; return the status and the decoded JSON body (error statuses included)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
