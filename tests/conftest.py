"""Shared test configuration: integration tests need the engine and never skip silently."""

from __future__ import annotations

pytest_plugins = ["pytester"]
