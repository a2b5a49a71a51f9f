"""envkit: a private, ephemeral container stack per pytest-xdist worker.

Public names live here and nowhere else; nothing in this package touches Docker or
reads the environment at import.
"""

from __future__ import annotations

from envkit.errors import (
    DeviceNotFoundError,
    EngineError,
    EngineUnavailableError,
    EnvkitError,
    ImageBuildError,
    ImageError,
    ReadinessTimeoutError,
    SpecError,
    StackNotFoundError,
    StackStateError,
)
from envkit.readiness import Exec, Healthy, Http, LogLine, Tcp
from envkit.runtime import Stack, StackState
from envkit.spec import Build, Device, Port, ServiceSpec, StackSpec

__all__ = [
    "Build",
    "Device",
    "DeviceNotFoundError",
    "EngineError",
    "EngineUnavailableError",
    "EnvkitError",
    "Exec",
    "Healthy",
    "Http",
    "ImageBuildError",
    "ImageError",
    "LogLine",
    "Port",
    "ReadinessTimeoutError",
    "ServiceSpec",
    "SpecError",
    "Stack",
    "StackNotFoundError",
    "StackSpec",
    "StackState",
    "StackStateError",
    "Tcp",
]
