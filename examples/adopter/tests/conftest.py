"""Fixtures over envkit's ``envkit_stack`` (the stack of ``stack.yml``, one per worker)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def jwt_secret(envkit_stack: Any) -> str:
    """The secret envkit generated for this stack's ``${secret:jwt}``."""
    return str(envkit_stack.spec.service("app").environment["APP_JWT_SECRET"])


@pytest.fixture(scope="session")
def ws_url(envkit_stack: Any) -> str:
    """The app's WebSocket, e.g. ``ws://127.0.0.1:49153/``."""
    return str(envkit_stack.url("app", 8002, scheme="ws", path="/"))
